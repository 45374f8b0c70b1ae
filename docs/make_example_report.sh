#!/bin/sh
# Regenerates the example report in reports/: this machine's smoke run (CPU, synthetic regime, tiny
# model), its HTML report and a screenshot of the report's first screen at 1400×900.
#   . .venv/bin/activate && sh docs/make_example_report.sh
# Needs chromium for the screenshot (apt-get install -y chromium); takes ~3 minutes on 2 cores.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
eitp-bench run smoke --store "$work/smoke.sqlite" --out "$work/run"
eitp-bench report --store "$work/smoke.sqlite" --suite smoke \
    --title "Example report — smoke run on this machine's CPU (synthetic regime, tiny model): checks the pipeline, not EIT-P" \
    --out "$repo/reports/example-smoke-cpu.html"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/chromium" \
    --window-size=1400,900 --screenshot="$work/first-screen.png" "file://$repo/reports/example-smoke-cpu.html" 2>/dev/null
# 64 colours: the first screen is text, badges and rules; a palette PNG is a fraction of the size
python -c "import sys; from PIL import Image; Image.open(sys.argv[1]).convert('RGB').quantize(64).save(sys.argv[2], optimize=True)" \
    "$work/first-screen.png" "$repo/reports/example-smoke-cpu-first-screen.png"
echo "wrote reports/example-smoke-cpu.html and reports/example-smoke-cpu-first-screen.png"

"""Wall time of `eitp-bench run smoke` against one bare `import torch, transformers`.

    python benchmarks/smoke_walltime.py                 # the smoke suite as shipped
    python benchmarks/smoke_walltime.py --set repetitions=1
    python benchmarks/smoke_walltime.py --workers subprocess   # workers as plain processes (the old way)

Times one bare `python -c "import torch, transformers"` (what every worker paid before the
forkserver), then runs the real command in a subprocess, and prints both, their ratio (target:
smoke <= 6x one import), repetitions, and the slowest repetitions from the records' timestamps.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from eitp_bench.records import RunRecord


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", default="smoke")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--workers", choices=["forkserver", "subprocess"], default="forkserver",
                   help="subprocess: each worker a fresh `python` that imports torch itself")
    args = p.parse_args()
    env = dict(os.environ)
    if args.workers == "subprocess":
        env["EITP_BENCH_WORKER_PYTHON"] = sys.executable
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch, transformers"], check=True)
    one_import = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "eitp_bench.cli", "run", args.suite, "--out", str(out), "--quiet",
               "--store", str(Path(tmp) / "results.sqlite")]
        for o in args.overrides:
            cmd += ["--set", o]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        records = [RunRecord.model_validate_json(f.read_text()) for f in out.glob("*-*.json")]
    per_rep: dict[tuple, list[RunRecord]] = {}
    for r in records:
        per_rep.setdefault((r.repetition, r.arm), []).append(r)
    spans = []
    for key, recs in per_rep.items():
        start = min(datetime.fromisoformat(r.started_at) for r in recs)
        end = max(datetime.fromisoformat(r.finished_at) for r in recs if r.finished_at)
        spans.append(((end - start).total_seconds(), key))
    ok = sum(r.status == "ok" for r in records)
    print(f"eitp-bench run {args.suite} {' '.join(args.overrides)} ({args.workers} workers): exit {proc.returncode}, "
          f"wall {wall:.1f} s")
    print(f"one bare `import torch, transformers`: {one_import:.1f} s; smoke / import = {wall / one_import:.1f}x"
          f" (target <= 6x); {os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{len(per_rep)} repetitions, {len(records)} records ({ok} ok)")
    print("work inside each worker (excludes ~process start and imports):")
    for secs, (rep, arm) in sorted(spans, reverse=True):
        print(f"  r{rep} {arm:16s} {secs:6.1f} s")
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)


if __name__ == "__main__":
    main()

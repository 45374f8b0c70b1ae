"""Open generated reports in headless Chromium: they render offline with no console errors, the answer
is on the first screen, nothing is wider than the window, and no plot or cell shows raw source.

The layout checks run a small probe script in a copy of the page (the report itself has no script):
it measures with every section closed (what a reader sees first), then opens every <details> and
measures every element, and writes its findings into the DOM, which --dump-dom returns.
"""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from synthetic_store import eitp_records, frames_from_records

from eitp_bench import names
from eitp_bench.records import Metric
from eitp_bench.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")]
SIZES = {"desktop": (1400, 900), "narrow": (800, 1200)}

PROBE = """
<script>
window.addEventListener("load", () => {
  const top = (id) => { const el = document.getElementById(id); return el ? el.getBoundingClientRect().top + window.scrollY : null; };
  const out = {viewport: document.documentElement.clientWidth, summary_top: top("summary-1"),
               table_top: top("verdict-table-1")};
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const vw = document.documentElement.clientWidth;
  out.body = [document.body.scrollWidth, document.body.clientWidth, document.documentElement.scrollWidth];
  out.wrappers = [...document.querySelectorAll(".scroll")].filter((w) => w.scrollWidth > w.clientWidth + 1)
    .map((w) => [w.scrollWidth, w.clientWidth, (w.querySelector("table") || {}).className]);
  out.too_wide = [...document.querySelectorAll("body *")].filter((el) => el.getBoundingClientRect().right > vw + 1)
    .slice(0, 10).map((el) => el.tagName + "." + el.getAttribute("class") + " " + Math.round(el.getBoundingClientRect().right));
  out.svg_text = [...document.querySelectorAll("svg text")].map((t) => t.textContent);
  out.cells = [...document.querySelectorAll("td")].map((td) => td.textContent);
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def chromium(tmp_path, *args):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--hide-scrollbars",
             "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def with_curves(records):
    """Training records with a validation curve (what the train workload records), for the curve pictures."""
    for r in records:
        if r.task == "train" and r.status == "ok":
            final = next(m.value for m in r.metrics if m.name == "final_val_loss")
            joules = next(m.value for m in r.metrics if m.name.startswith("train_joules") and "per_step" not in m.name)
            for step in (25, 50, 75, 100):
                r.metrics += [Metric(name=names.at(names.CURVE_VAL_LOSS, step), value=final + 1.0 - step / 100, unit="nats/token"),
                              Metric(name=names.at(names.CURVE_JOULES, step), value=joules * step / 100, unit="J")]
    return records


def suite_config(name: str) -> dict:
    from eitp_bench.suite import load_suite

    return load_suite(name).model_dump(mode="json")


def smoke_report(path):
    frames = frames_from_records(with_curves(eitp_records(n_reps=6, seed=3, suite="smoke")))
    frames["configs"] = {"cfg1": suite_config("smoke")}
    return write_report(frames, path, n_resamples=500)


def paper_report(path):
    frames = frames_from_records(with_curves(eitp_records(n_reps=10, seed=5, suite="standard", speedup=5.0)))
    frames["configs"] = {"cfg1": suite_config("standard")}  # pretrained GPT-2 small on WikiText-2: the paper's regime
    return write_report(frames, path, n_resamples=500)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reports")
    return {"smoke": smoke_report(folder / "smoke.html"), "paper": paper_report(folder / "paper.html")}


@pytest.fixture(scope="module")
def report_path(reports):
    return reports["smoke"]


def probe(report, tmp_path, size) -> dict:
    page = tmp_path / f"probe-{report.stem}-{size[0]}.html"
    page.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    run = chromium(tmp_path, f"--window-size={size[0]},{size[1]}", "--dump-dom", page.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, flags=re.S)
    assert found, "the probe did not run"
    import html

    return json.loads(html.unescape(found.group(1)))


@pytest.mark.parametrize("which", ["smoke", "paper"])
@pytest.mark.parametrize("size", list(SIZES))
def test_answer_first_nothing_too_wide_no_raw_source(reports, tmp_path, which, size):
    width, height = SIZES[size]
    found = probe(reports[which], tmp_path, (width, height))
    # the answer: the summary line and the verdict table start on the first screen (900 px)
    assert found["summary_top"] is not None and found["summary_top"] < 900, found
    assert found["table_top"] is not None and found["table_top"] < 900, found
    # nothing wider than the window, with every section open
    body_scroll, body_client, doc_scroll = found["body"]
    assert body_scroll <= body_client and doc_scroll <= found["viewport"], found["too_wide"]
    assert found["wrappers"] == [], found["wrappers"]
    assert found["too_wide"] == []
    # plots: mathtext rendered, never its source; cells: no Python reprs
    assert found["svg_text"], "no plot text found"
    assert not [t for t in found["svg_text"] if "mathdefault" in t or re.search(r"\$.*\\", t)]
    reprs = [c for c in found["cells"] if re.search(r"\{'|\['|\bNone\b|\[\]|\bnan\b", c)]
    assert reprs == []
    # keep a screenshot of the first screen for a person to look at
    shot = tmp_path / f"{which}-{width}x{height}.png"
    run = chromium(tmp_path, f"--window-size={width},{height}", f"--screenshot={shot}", reports[which].as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]


def test_probe_can_fail(tmp_path):
    """The layout probe sees a too-wide element and a late summary (so its passing means something)."""
    page = tmp_path / "wide.html"
    page.write_text('<html><body><div style="height:1200px"></div><p id="summary-1">late</p>'
                    '<div class="scroll" style="overflow-x:auto"><table><tr><td style="min-width:3000px">'
                    "{'a': None}</td></tr></table></div></body></html>")
    found = probe(page, tmp_path, (800, 1200))
    assert found["summary_top"] > 900 and found["table_top"] is None
    assert found["wrappers"] and found["cells"] == ["{'a': None}"]


def test_dom_has_the_verdict_table_and_figures(report_path, tmp_path):
    run = chromium(tmp_path, "--dump-dom", report_path.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert '<table class="verdicts">' in dom and '<table class="answer" id="verdict-table-1">' in dom
    assert dom.count("<svg") >= 8
    # smoke: every verdict is a verdict here, about this setting, never a bare badge
    assert re.search(r'class="badge bad">REFUTED here<', dom)
    assert not re.search(r'class="badge \w+">(REFUTED|VERIFIED)<', dom)
    assert "This smoke run checks that every stage" in dom
    assert console_messages(run.stderr) == []


def test_paper_regime_verdicts_are_not_qualified(reports, tmp_path):
    dom = chromium(tmp_path, "--dump-dom", reports["paper"].as_uri()).stdout
    assert re.search(r'class="badge ok">VERIFIED<', dom)  # inference-speedup: 5× against ≥ 4×
    assert "here —" not in dom and "says nothing about the paper" not in dom
    assert "the paper&#39;s regime, small model, bf16 on cuda, 10 rounds per arm" in dom or \
        "the paper's regime, small model, bf16 on cuda, 10 rounds per arm" in dom


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "Failed to load resource" in line or "net::ERR" in line]


def test_console_check_can_fail(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<html><body><script>console.error("boom")</script></body></html>')
    assert any("boom" in line for line in console_messages(chromium(tmp_path, "--dump-dom", page.as_uri()).stderr))


def test_screenshot_is_not_blank(report_path, tmp_path):
    from matplotlib import image

    shot = tmp_path / "shot.png"
    run = chromium(tmp_path, "--window-size=1300,1800", f"--screenshot={shot}", report_path.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    pixels = image.imread(shot)[..., :3]
    ink = np.mean(pixels.min(axis=-1) < 0.8)  # fraction of clearly non-white pixels: text, tables, plots
    assert 0.02 < ink < 0.8
    red = np.mean((pixels[..., 0] > 0.6) & (pixels[..., 1] < 0.3) & (pixels[..., 2] < 0.3))
    assert red > 1e-4  # the red REFUTED badges are drawn

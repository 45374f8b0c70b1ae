"""Open a generated report in headless Chromium: it renders, offline, with no console errors."""

import re
import shutil
import subprocess

import numpy as np
import pytest
from synthetic_store import eitp_records, frames_from_records

from eitp_bench.report import write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")]


def chromium(tmp_path, *args):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-logging=stderr", "--v=0"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    return write_report(frames_from_records(eitp_records(n_reps=6, seed=3)), path, n_resamples=1000)


def test_dom_has_the_verdict_table_and_figures(report_path, tmp_path):
    run = chromium(tmp_path, "--dump-dom", report_path.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    assert '<table class="verdicts">' in dom
    assert dom.count("<svg") >= 8
    assert re.search(r'class="badge bad">REFUTED<', dom)
    assert console_messages(run.stderr) == []


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

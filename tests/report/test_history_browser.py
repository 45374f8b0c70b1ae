"""The history site in headless Chromium: on 30 nightly runs with a planted 10 % slowdown from night 20,
the index shows that regression first, on the first screen (1400×900); no element of the index or of a
series page (all details open) or of a run page is wider than the window; nothing is fetched from outside."""

import json
import re
import html

import pytest
from nightly_store import nightly_records
from test_browser import CHROMIUM, chromium, console_messages

from eitp_bench.analysis.history import store_history
from eitp_bench.report.history_site import write_site
from eitp_bench.store import Store

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")]

PROBE = """
<script>
window.addEventListener("load", () => {
  const first = document.getElementById("change-1");
  const out = {first_top: first ? first.getBoundingClientRect().top + window.scrollY : null,
               first_bottom: first ? first.getBoundingClientRect().bottom + window.scrollY : null,
               first_text: first ? first.textContent : null, first_class: first ? first.className : null};
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const vw = document.documentElement.clientWidth;
  out.viewport = vw; out.doc_scroll = document.documentElement.scrollWidth;
  out.too_wide = [...document.querySelectorAll("body *")].filter((el) => el.getBoundingClientRect().right > vw + 1)
    .slice(0, 10).map((el) => el.tagName + "." + el.getAttribute("class") + " " + Math.round(el.getBoundingClientRect().right));
  out.svgs = document.querySelectorAll("svg").length;
  const pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("history")
    with Store.open(str(folder / "nightly.sqlite")) as store:
        store.add_many(nightly_records(30, slow_from=20))
    store = Store.open(str(folder / "nightly.sqlite"), read_only=True)
    found = store_history(store)
    root = folder / "site"
    write_site(found, store, root)
    page = next(p for p in found.summaries if p.metric == "tokens_per_s")
    run_page = sorted((root / "runs").iterdir())[-1]
    return {"index": root / "index.html", "series": root / "series" / f"{page.slug}.html", "runs": run_page}


def probe(page, tmp_path, size=(1400, 900)) -> dict:
    copy = page.with_name(f"probe-{page.name}")  # beside the page: its relative links still resolve
    copy.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    run = chromium(tmp_path, f"--window-size={size[0]},{size[1]}", "--dump-dom", copy.as_uri())
    copy.unlink()
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_messages(run.stderr) == []  # no failed load: nothing external, no broken file
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, flags=re.S)
    assert found, "the probe did not run"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.parametrize("size", [(1400, 900), (800, 1200)])
def test_index_shows_the_planted_regression_first_on_the_first_screen(site, tmp_path, size):
    found = probe(site["index"], tmp_path, size)
    assert found["first_class"] == "regression" and "generate/baseline/tokens_per_s" in found["first_text"]
    assert "2026-01-20" in found["first_text"]  # night 20
    assert found["first_bottom"] is not None and found["first_bottom"] < 900, found
    assert found["doc_scroll"] <= found["viewport"] and found["too_wide"] == [], found["too_wide"]


@pytest.mark.parametrize("size", [(1400, 900), (800, 1200)])
def test_series_page_fits_the_window(site, tmp_path, size):
    found = probe(site["series"], tmp_path, size)
    assert found["svgs"] == 1
    assert found["doc_scroll"] <= found["viewport"] and found["too_wide"] == [], found["too_wide"]


def test_run_page_fits_the_window(site, tmp_path):
    found = probe(site["runs"], tmp_path, (800, 1200))
    assert found["doc_scroll"] <= found["viewport"] and found["too_wide"] == [], found["too_wide"]


def test_probe_sees_a_late_regression_and_a_wide_element(tmp_path):
    page = tmp_path / "late.html"
    page.write_text('<html><body><div style="height:1200px;width:3000px"></div>'
                    "<table><tr class='regression' id='change-1'><td>x</td></tr></table></body></html>")
    found = probe(page, tmp_path)
    assert found["first_top"] > 900 and found["too_wide"]

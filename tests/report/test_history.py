"""The nightly history site: the planted slowdown found where regress finds it and shown first, the
store read one metric name at a time giving the pages of a whole read, pages rebuilt only for series and
nights with new runs, and bad input answered in one line."""

import json
import os
import re

import pandas as pd
import pytest
from nightly_store import nightly_records
from synthetic_store import frames_from_records

from store_backends import pg_url, store_url  # noqa: F401  (fixtures)

from eitp_bench import cli
from eitp_bench.analysis.frames import load_frames
from eitp_bench.analysis.history import build_history, noise_segments, store_history, summary_of
from eitp_bench.analysis.history_commits import CommitIndex
from eitp_bench.analysis.regress import confirmed, find_changes
from eitp_bench.report.history_site import SITE_FORMAT, write_site
from eitp_bench.store import Store


def store_of(path, records):
    store = Store.open(str(path))
    store.add_many(records)
    store.close()
    return path


def site_of(store_path, out):
    """`eitp-bench history`'s own steps: the store read one metric name at a time, then the site."""
    store = Store.open(str(store_path), read_only=True)
    return write_site(store_history(store), store, out)


def run_link_targets(site, page_text: str, prefix: str = "../") -> list[tuple]:
    """(run page file, run id) of every run link of a page; each must exist and hold its anchor."""
    links = re.findall(rf"href='{re.escape(prefix)}runs/([^'#]+)\.html#run-([^']+)'", page_text)
    for page, run_id in links:
        target = site / "runs" / f"{page}.html"
        assert target.exists() and f"id='run-{run_id}'" in target.read_text(), (page, run_id)
    return links


@pytest.fixture(scope="module")
def planted():
    return load_frames(frames_from_records(nightly_records(30, slow_from=20)))


def test_history_finds_the_planted_slowdown_as_regress_does(planted):
    found = build_history(planted)
    first, page = found.confirmed_first()[0]
    assert (first.kind, first.arm, first.metric, first.task) == ("regression", "baseline", "tokens_per_s", "generate")
    assert first.started_at.startswith("2026-01-20")  # night 20: the first slow night
    assert first.relative == pytest.approx(-0.10, abs=0.02)
    # the same confirmed changes as `eitp-bench regress`
    ours = sorted((c.series, c.run_id) for c, _ in found.confirmed_first())
    theirs = sorted((c.series, c.run_id) for c in confirmed(find_changes(planted.metrics, provenance=planted.provenance)))
    assert ours == theirs
    (panel,) = page.panels
    assert len(panel.points) == 30 and panel.points[-1].git_commit.startswith("0030")
    # two noise bands, split at the change, each around its level
    low, high = panel.segments
    assert (low.start, low.stop, high.start, high.stop) == (0, 19, 19, 30)
    assert low.median == pytest.approx(100, rel=0.02) and high.median == pytest.approx(90, rel=0.02)
    assert low.low < low.median < low.high


def test_no_regression_without_a_plant():
    found = build_history(load_frames(frames_from_records(nightly_records(30, slow_from=None))))
    assert [c for c, _ in found.confirmed_first() if c.kind == "regression"] == []


def test_noise_band_is_median_and_robust_sd():
    (seg,) = noise_segments([1.0, 2.0, 3.0, 4.0, 100.0], [])
    assert seg.median == 3.0
    assert seg.high - seg.median == pytest.approx(2 * 1.4826 * 1.0)  # MAD of |x − 3| = 1: the outlier barely moves it


def test_profiles_side_by_side_on_one_page():
    records = nightly_records(12, slow_from=None, profile="hp-a") + nightly_records(12, slow_from=None, profile="hp-b", seed=1)
    found = build_history(load_frames(frames_from_records(records)))
    page = next(p for p in found.pages if p.metric == "tokens_per_s")
    assert [p.label for p in page.panels] == ["hp-a", "hp-b"] and all(len(p.points) == 12 for p in page.panels)


def test_site_index_lists_the_regression_first_and_points_link_to_runs(tmp_path):
    path = store_of(tmp_path / "nightly.sqlite", nightly_records(30, slow_from=20))
    site = tmp_path / "site"
    result = site_of(path, site)
    index = result.index.read_text()
    first_row = re.search(r"<tr class='(\w+)' id='change-1'>(.*?)</tr>", index).groups()
    assert first_row[0] == "regression" and "generate/baseline/tokens_per_s" in first_row[1]
    assert "0020c0ffee" in first_row[1]  # the commit of the first slow night
    assert "(90 runs)" in index  # counted in SQL
    assert len(run_link_targets(site, first_row[1], prefix="")) == 1
    assert "http" not in index.replace("http-equiv", "").replace("http://www.w3.org/2000/svg", "")  # no external URL
    found = store_history(Store.open(str(path), read_only=True))
    page = next(p for p in found.summaries if p.metric == "tokens_per_s")
    series = (site / "series" / f"{page.slug}.html").read_text()
    assert series.count("<svg") == 1 and "confirmed regression" in series and "noise band" in series
    svg = series[series.index("<svg"):series.index("</svg>")]
    points = run_link_targets(site, svg)
    assert len(points) == 30 and len({r for _, r in points}) == 30  # every point links to its own run
    assert len({p for p, _ in points}) == 30  # one run page per night (one profile)
    run_page = (site / "runs" / f"{points[-1][0]}.html").read_text()
    assert "tokens_per_s" in run_page and "0030c0ffee" in run_page  # its metric and its commit
    assert "id='run-" in run_page and run_page.count("<tr id='run-") == 3  # train, lm, generate that night


@pytest.mark.parametrize("records", ["planted", "profiles", "fleet"])
def test_store_history_reads_the_pages_of_a_whole_read(store_url, records):
    """store_history (one metric name at a time, then the pages' names again) gives build_history's
    pages, summaries and changes (regress's own): on a planted slowdown, on profiles side by side, and on
    a fleet with several boards per profile, power-limit changes, a run without a profile, failed runs
    and NaN values."""
    from test_regress_by_metric import _nightly_records

    made = {"planted": lambda: nightly_records(30, slow_from=20),
            "profiles": lambda: nightly_records(12, slow_from=None, profile="hp-a")
            + nightly_records(12, slow_from=None, profile="hp-b", seed=1),
            "fleet": _nightly_records}[records]()
    with Store.open(store_url) as store:
        store.add_many(made)
    store = Store.open(store_url, read_only=True)
    whole = build_history(load_frames(store))
    by_name = store_history(store)
    assert repr(by_name.changes) == repr(whole.changes)
    assert by_name.summaries == [summary_of(p) for p in whole.pages]
    commits = CommitIndex()
    commits.update(store)
    pages = {p.slug: p for p in by_name.pages(store, {s.slug for s in by_name.summaries}, commits)}
    assert pages == {p.slug: p for p in whole.pages}
    for page in pages.values():  # the figure's x: each point's start, parsed once per metric
        for panel in page.panels:
            assert panel.seconds == [pd.Timestamp(p.started_at).timestamp() for p in panel.points]
    # the pages drawn from the first pass's spilled rows are those of a second read of the store
    read_again = store_history(store, spill=False)
    assert read_again.spilled is None and by_name.spilled is not None
    assert {p.slug: p for p in read_again.pages(store, set(pages), commits)} == pages
    assert [s.fingerprint() for s in by_name.summaries] == [p.fingerprint() for p in whole.pages]
    assert [(c.run_id, page.slug) for c, page in by_name.confirmed_first()] == \
        [(c.run_id, page.slug) for c, page in whole.confirmed_first()]
    if records == "fleet":
        assert any(len(p.panels) > 3 for p in whole.pages)  # boards and states split into panels
        assert any(c.confirmed for c in whole.changes)
    # only the pages asked for are built, reading only their metric names
    one = by_name.summaries[0]
    assert [p.slug for p in by_name.pages(store, {one.slug}, commits)] == [one.slug]


def test_rebuild_rewrites_only_series_with_new_runs(tmp_path):
    path = store_of(tmp_path / "nightly.sqlite", nightly_records(12, slow_from=None))
    site = tmp_path / "site"
    first = site_of(path, site)
    assert (first.written, first.skipped, first.run_pages) == (6, 0, 12)  # train: 3 metrics, lm 1, generate 2
    again = site_of(path, site)
    assert again.written == 0 and again.skipped == 6 and again.run_pages == 0
    # one more night of generate only: its two pages change and one run page is new; the rest is left alone
    store_of(path, [r for r in nightly_records(1, slow_from=None, first_night=12, seed=9) if r.task == "generate"])
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*.html")}
    third = site_of(path, site)
    assert third.written == 2 and third.skipped == 4 and third.run_pages == 1
    changed = sorted(p.parent.name for p, t in before.items() if p.stat().st_mtime_ns != t)
    assert changed == ["series", "series", "site"]  # two series pages and the index; no old run page
    assert len(list((site / "runs").iterdir())) == 13
    manifest = json.loads((site / "manifest.json").read_text())
    assert sorted(e["count"] for e in manifest["series"].values()) == [12, 12, 12, 12, 13, 13]
    assert sorted(n for n, _ in manifest["runs"].values()) == [1] + [3] * 12  # runs per night page
    # a deleted page is written again even though the manifest says it is current
    victim = sorted((site / "series").iterdir())[0]
    victim.unlink()
    assert site_of(path, site).written == 1 and victim.exists()


def test_an_older_site_is_rebuilt_once_and_its_per_run_pages_removed(tmp_path):
    path = store_of(tmp_path / "nightly.sqlite", nightly_records(8, slow_from=None))
    site = tmp_path / "site"
    (site / "runs").mkdir(parents=True)
    old_pages = [site / "runs" / f"run-{i}.html" for i in range(24)]
    for page in old_pages:
        page.write_text("an old run page")
    (site / "manifest.json").write_text(json.dumps({"format": SITE_FORMAT - 1, "series": {}}))
    result = site_of(path, site)
    assert result.runs_removed == 24 and not any(p.exists() for p in old_pages)
    assert result.written == 6 and result.run_pages == 8
    assert site_of(path, site).runs_removed == 0


def test_pages_of_series_and_nights_no_longer_stored_are_removed(tmp_path):
    """A site rebuilt from a store without some of its series and nights (pointed at another store) removes
    the pages its last build listed for them, and nothing it did not write; the pages kept are current."""
    records = nightly_records(6, slow_from=None)
    full = store_of(tmp_path / "full.sqlite", records)
    site = tmp_path / "site"
    assert site_of(full, site).written == 6
    own = [site / "notes.html", site / "series" / "notes.html", site / "runs" / "notes.html"]
    for page in own:  # the user's own files in the site's folders: never the site's to remove
        page.write_text("mine")
    manifest = json.loads((site / "manifest.json").read_text())
    manifest["series"]["../../outside"] = ["a hand-edited entry"]  # names nothing the site wrote
    (site / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "outside.html").write_text("not the site's")
    first_night = records[0].started_at[:10]
    fewer = store_of(tmp_path / "fewer.sqlite",
                     [r for r in records if r.task == "generate" and r.started_at[:10] != first_night])
    result = site_of(fewer, site)
    kept = json.loads((site / "manifest.json").read_text())
    assert sorted(p.stem for p in (site / "series").glob("*.html")) == sorted([*kept["series"], "notes"])
    assert sorted(p.stem for p in (site / "runs").glob("*.html")) == sorted([*kept["runs"], "notes"])
    assert len(kept["series"]) == 2 and len(kept["runs"]) == 5  # generate's 2 series; 5 of the 6 nights
    assert result.stale_removed == (6 - 2) + (6 - 5)
    assert all(page.read_text() == "mine" for page in own) and (tmp_path / "outside.html").exists()
    assert site_of(fewer, site).stale_removed == 0


def test_commits_are_read_once_per_run(tmp_path):
    """The commit index reads only the runs stored since its newest, and starts again on another store."""
    path = store_of(tmp_path / "nightly.sqlite", nightly_records(4, slow_from=None))
    store = Store.open(str(path), read_only=True)
    index = CommitIndex()
    assert index.update(store) == 12 and index.update(store) == 0
    index.save(tmp_path / "c.npz")
    store_of(path, nightly_records(1, slow_from=None, first_night=4, seed=3))
    again = CommitIndex.load(tmp_path / "c.npz")
    assert again.update(Store.open(str(path), read_only=True)) == 3
    assert again.of([1, 12, 13, 10**6]) == ["0001c0ffee", "0004c0ffee", "0005c0ffee", ""]
    other = store_of(tmp_path / "other.sqlite", nightly_records(2, slow_from=None, seed=5))
    assert again.update(Store.open(str(other), read_only=True)) == 6  # its seq 15 is not this store's: rebuilt
    assert CommitIndex.load(tmp_path / "missing.npz").update(store) == 15  # no file: every run


def test_cli_writes_the_site_from_a_store(tmp_path, capsys):
    path = store_of(tmp_path / "nightly.sqlite", nightly_records(30, slow_from=20))
    assert cli.main(["history", "--store", str(path), "--out", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out
    assert "1 confirmed regression(s)" in out and (tmp_path / "site" / "index.html").exists()


@pytest.mark.parametrize("content", [b"\x00garbage" * 500, b"SQLite format 3\x00garbage"])
def test_cli_corrupt_store_is_one_line_exit_2(tmp_path, capsys, content):
    (tmp_path / "bad.sqlite").write_bytes(content)
    assert cli.main(["history", "--store", str(tmp_path / "bad.sqlite"), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eitp-bench: error:") and "bad.sqlite" in err and "Traceback" not in err


def test_a_run_with_damaged_provenance_shows_no_commit(tmp_path, capsys):
    """A provenance edited into malformed JSON: the site is still written, that run without a commit."""
    import sqlite3

    path = store_of(tmp_path / "nightly.sqlite", nightly_records(8, slow_from=None))
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE runs SET provenance_json = '{not json' WHERE seq = 24")  # night 8's generate run
    assert cli.main(["history", "--store", str(path), "--out", str(tmp_path / "site")]) == 0
    runs = {p.name: p.read_text() for p in (tmp_path / "site" / "runs").iterdir()}
    last = runs[max(runs)]
    assert "0008c0ffee" in last and last.count("0008c0ffee") == 2  # train and lm; not the damaged run


def test_cli_no_store_is_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["history", "--store", str(tmp_path / "missing.sqlite"), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eitp-bench: error:") and "Traceback" not in err


def test_cli_empty_store_is_one_line_exit_2(tmp_path, capsys):
    path = store_of(tmp_path / "empty.sqlite", [])
    assert cli.main(["history", "--store", str(path), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert "no runs" in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permissions")
def test_cli_unwritable_out_is_one_line_exit_2(tmp_path, capsys):
    path = store_of(tmp_path / "nightly.sqlite", nightly_records(8, slow_from=None))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert cli.main(["history", "--store", str(path), "--out", str(locked / "site")]) == 2
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert "cannot write the history site" in err and "Traceback" not in err


def test_cli_out_is_a_file_is_one_line_exit_2(tmp_path, capsys):
    path = store_of(tmp_path / "nightly.sqlite", nightly_records(8, slow_from=None))
    (tmp_path / "file").write_text("x")
    assert cli.main(["history", "--store", str(path), "--out", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the history site" in err and "Traceback" not in err


def test_odd_names_are_text_and_safe_file_names(tmp_path):
    """Suite, arm and profile names with markup, mathtext and slashes: escaped on the pages, drawn as text
    in the figures, and the page file names stay inside series/."""
    odd = "nightly $\\alpha_$ <script>x</script> ../../etc"
    records = nightly_records(12, slow_from=8, suite=odd, arm="arm/$\\beta_$", profile="hp-<i>$x_$")
    result = site_of(store_of(tmp_path / "odd.sqlite", records), tmp_path / "site")
    assert result.written == 6
    assert sorted(p.parent.name for p in (tmp_path / "site").rglob("*.html") if p.parent.name != "runs") == \
        ["series"] * 6 + ["site"]
    runs = list((tmp_path / "site" / "runs").iterdir())
    assert len(runs) == 12 and all(re.fullmatch(r"2026-01-\d\d-[A-Za-z0-9_.-]+-[0-9a-f]{6}\.html", p.name) for p in runs)
    for page in [result.index, *(tmp_path / "site" / "series").iterdir(), *runs]:
        text = page.read_text()
        assert "<script>x" not in text and "<i>" not in text and "&lt;script&gt;x" in text


def test_trend_svg_draws_points_dates_band_and_changes():
    """The hand-drawn figure: a linked circle per point at its time and value, dates under the axis,
    the noise band, a solid red line at the confirmed regression and a dotted one at a candidate;
    every text escaped."""
    from eitp_bench.analysis.history import Panel, Point
    from eitp_bench.analysis.regress import Change
    from eitp_bench.report.history_svg import nice_ticks, trend

    points = [Point(f"r{i}", f"2026-03-{i + 1:02d}T00:00:00+00:00", 100.0 if i < 5 else 80.0) for i in range(10)]

    def change(index, confirmed):
        return Change("s", "t", "a", "tokens_per_s", "hp", index, f"r{index}", points[index].started_at, 100.0, 80.0,
                      -0.2, 0.001, 0.002, "regression", confirmed)

    changes = [change(2, False), change(5, True)]
    panel = Panel("hp <b>", "hp", points, changes, noise_segments([p.value for p in points], changes))
    hrefs = [f"../runs/x.html#run-r{i}" for i in range(10)]
    svg = trend(panel, unit="tok/s <i>", title="hp <b>", hrefs=hrefs)
    # the seconds parsed once per metric (as _pages gives them) draw the same figure
    panel.seconds = [1772323200.0 + 86400 * i for i in range(10)]  # 2026-03-01 + i days, UTC
    assert trend(panel, unit="tok/s <i>", title="hp <b>", hrefs=hrefs) == svg
    circles = re.findall(r"<a href='\.\./runs/x\.html#run-r(\d)'><circle cx='([\d.]+)' cy='([\d.]+)'", svg)
    assert [int(i) for i, _, _ in circles] == list(range(10))
    xs, ys = [float(x) for _, x, _ in circles], [float(y) for _, _, y in circles]
    assert xs == sorted(xs) and len(set(xs)) == 10 and xs[1] - xs[0] == pytest.approx(xs[9] - xs[8], abs=0.2)
    assert ys[0] == ys[4] < ys[5] == ys[9]  # 100 above 80 (SVG y grows downwards)
    assert re.findall(r">(2026-03-\d\d)<", svg) == ["2026-03-01", "2026-03-04", "2026-03-07", "2026-03-10"]  # dates
    assert "noise band" in svg and svg.count("fill-opacity='0.15'") == 2  # a band per stretch
    assert "confirmed regression" in svg and "-20.0 %" in svg and "stroke-dasharray" in svg
    assert "<b>" not in svg and "<i>" not in svg and "hp &lt;b&gt;" in svg and "tok/s &lt;i&gt;" in svg
    assert nice_ticks(0.0, 1.0) == [0.0, 0.5, 1.0] and nice_ticks(87.0, 102.0) == [90.0, 95.0, 100.0]  # 1-2-5 steps


def test_the_site_is_the_same_from_sqlite_and_postgresql(pg_url, tmp_path):
    """Every page (run pages, commits, anchors) written from a PostgreSQL store is the page written from a
    SQLite store of the same runs, first build and after one more night."""
    records = nightly_records(12, slow_from=8)
    extra = nightly_records(1, slow_from=8, first_night=12, seed=4)
    sqlite = store_of(tmp_path / "nightly.sqlite", records)
    with Store.open(pg_url) as store:
        store.add_many(records)
    for more in ([], extra):
        if more:
            store_of(sqlite, more)
            with Store.open(pg_url) as store:
                store.add_many(more)
        lite, pg = site_of(sqlite, tmp_path / "lite"), site_of(pg_url, tmp_path / "pg")
        assert (lite.written, lite.run_pages) == (pg.written, pg.run_pages) and lite.run_pages in (12, 1)
        pages = sorted(p.relative_to(tmp_path / "lite") for p in (tmp_path / "lite").rglob("*.html"))
        assert pages == sorted(p.relative_to(tmp_path / "pg") for p in (tmp_path / "pg").rglob("*.html"))
        for page in pages:
            assert (tmp_path / "lite" / page).read_text() == (tmp_path / "pg" / page).read_text(), page
    assert "(39 runs)" in (tmp_path / "pg" / "index.html").read_text()  # 13 nights × 3, counted in SQL


def test_run_page_names_are_safe_and_distinct():
    from eitp_bench.report.history_site import run_href, run_page

    names = [run_page("2026-01-01", p) for p in (None, "no-profile", "a/b", "a b", "a-b", "../../x", "é")]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"2026-01-01-[A-Za-z0-9_.-]+-[0-9a-f]{6}", n) for n in names)
    assert run_href("r/1<x>", "2026-01-01T23:59:00+00:00", None) == f"runs/{names[0]}.html#run-r_1_x_"


def test_the_scratch_rows_are_removed_and_a_killed_builds_cleared(tmp_path):
    """The rows kept between the analysis and the drawing live in a scratch folder: emptied first (what
    a killed build left there), removed when the history is dropped."""
    import gc

    path = store_of(tmp_path / "nightly.sqlite", nightly_records(8, slow_from=None))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "left-by-a-killed-build.pkl").write_text("x")
    found = store_history(Store.open(str(path), read_only=True), spill_dir=scratch)
    assert sorted(p.name for p in scratch.iterdir()) == [f"{i}.pkl" for i in range(6)]  # one per metric name
    del found
    gc.collect()
    assert not scratch.exists()


def test_a_site_built_from_this_very_store_is_left_alone(tmp_path, capsys):
    """Nothing stored since the last build (same settings, every page there): nothing is analysed or
    written. A new night, other settings or a missing page make it build again."""
    path = store_of(tmp_path / "nightly.sqlite", nightly_records(10, slow_from=None))
    site = tmp_path / "site"
    args = ["history", "--store", str(path), "--out", str(site)]
    assert cli.main(args) == 0 and "6 written" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*")}
    assert cli.main(args) == 0 and "is current" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*")} == before
    assert cli.main([*args, "--threshold", "10%"]) == 0 and "6 unchanged" in capsys.readouterr().out
    assert cli.main([*args, "--threshold", "10%"]) == 0 and "is current" in capsys.readouterr().out
    sorted((site / "runs").iterdir())[0].unlink()
    assert cli.main([*args, "--threshold", "10%"]) == 0 and "1 run pages written" in capsys.readouterr().out
    store_of(path, nightly_records(1, slow_from=None, first_night=10, seed=2))
    assert cli.main([*args, "--threshold", "10%"]) == 0 and "6 written" in capsys.readouterr().out


def test_run_pages_read_a_few_nights_at_a_time_are_the_same(tmp_path, monkeypatch):
    from eitp_bench.report import history_site
    from eitp_bench.store import queries as store_queries

    path = store_of(tmp_path / "nightly.sqlite", nightly_records(9, slow_from=None))
    site_of(path, tmp_path / "whole")
    real_pages, real_rows = history_site._write_run_pages, store_queries.group_run_rows
    reads = []
    monkeypatch.setattr(history_site, "_write_run_pages", lambda *a, **k: real_pages(*a, dates_per_read=2))
    monkeypatch.setattr(store_queries, "group_run_rows", lambda s, dates, c: reads.append(dates) or real_rows(s, dates, c))
    assert site_of(path, tmp_path / "chunked").run_pages == 9
    assert [len(d) for d in reads] == [2, 2, 2, 2, 1]
    for page in (tmp_path / "whole" / "runs").iterdir():
        assert (tmp_path / "chunked" / "runs" / page.name).read_text() == page.read_text()

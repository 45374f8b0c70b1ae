"""The nightly history site: the planted slowdown found where regress finds it and shown first, pages
rebuilt only for series with new runs, and bad input answered in one line."""

import json
import os
import re

import pytest
from nightly_store import nightly_records
from synthetic_store import frames_from_records

from eitp_bench import cli
from eitp_bench.analysis.frames import load_frames
from eitp_bench.analysis.history import build_history, noise_segments
from eitp_bench.analysis.regress import confirmed, find_changes
from eitp_bench.report.history_site import write_site


def store_of(path, records):
    from eitp_bench.store import Store

    store = Store.open(str(path))
    store.add_many(records)
    store.close()
    return path


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


def test_site_index_lists_the_regression_first_and_points_link_to_runs(planted, tmp_path):
    found = build_history(planted)
    result = write_site(found, planted, tmp_path / "site")
    index = result.index.read_text()
    first_row = re.search(r"<tr class='(\w+)' id='change-1'>(.*?)</tr>", index).groups()
    assert first_row[0] == "regression" and "generate/baseline/tokens_per_s" in first_row[1]
    assert "http" not in index.replace("http-equiv", "")  # self-contained: no external URL
    page = next(p for p in found.pages if p.metric == "tokens_per_s")
    series = (tmp_path / "site" / "series" / f"{page.slug}.html").read_text()
    assert series.count("<svg") == 1 and "confirmed regression" in series and "noise band" in series
    links = re.findall(r'xlink:href="\.\./runs/([^"]+)\.html"', series)
    assert len(links) == 30 and all((tmp_path / "site" / "runs" / f"{r}.html").exists() for r in links)
    run_page = (tmp_path / "site" / "runs" / f"{links[-1]}.html").read_text()
    assert "tokens_per_s" in run_page and "0030" in run_page  # its metric and its commit


def test_rebuild_rewrites_only_series_with_new_runs(tmp_path):
    nights = nightly_records(12, slow_from=None)
    frames = load_frames(frames_from_records(nights))
    site = tmp_path / "site"
    first = write_site(build_history(frames), frames, site)
    assert first.written == 6 and first.skipped == 0  # train: 3 metrics, lm: 1, generate: 2
    again = write_site(build_history(frames), frames, site)
    assert again.written == 0 and again.skipped == 6 and again.run_pages == 0
    # one more night of generate only: its two pages change, the other four are left alone
    extra = [r for r in nightly_records(1, slow_from=None, first_night=12, seed=9) if r.task == "generate"]
    more = load_frames(frames_from_records(nights + extra))
    before = {p.name: p.stat().st_mtime_ns for p in (site / "series").iterdir()}
    third = write_site(build_history(more), more, site)
    assert third.written == 2 and third.skipped == 4 and third.run_pages == 1
    manifest = json.loads((site / "manifest.json").read_text())
    assert sorted(e["count"] for e in manifest["series"].values()) == [12, 12, 12, 12, 13, 13]
    # a deleted page is written again even though the manifest says it is current
    victim = sorted(before)[0]
    (site / "series" / victim).unlink()
    assert write_site(build_history(more), more, site).written == 1


def test_cli_writes_the_site_from_a_store(tmp_path, capsys):
    path = store_of(tmp_path / "nightly.sqlite", nightly_records(30, slow_from=20))
    assert cli.main(["history", "--store", str(path), "--out", str(tmp_path / "site")]) == 0
    out = capsys.readouterr().out
    assert "1 confirmed regression(s)" in out and (tmp_path / "site" / "index.html").exists()


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
    frames = load_frames(frames_from_records(records))
    result = write_site(build_history(frames), frames, tmp_path / "site")
    assert result.written == 6
    assert sorted(p.parent.name for p in (tmp_path / "site").rglob("*.html") if p.parent.name != "runs") == \
        ["series"] * 6 + ["site"]
    for page in [result.index, *(tmp_path / "site" / "series").iterdir()]:
        text = page.read_text()
        assert "<script>x" not in text and "<i>" not in text and "&lt;script&gt;x" in text

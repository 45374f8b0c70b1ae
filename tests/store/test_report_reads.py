"""The HTML `report` reads only the newest groups' runs when the store holds more, and says so.

`frames.load_report` reads a store (or suite) of at most `max_groups` groups whole: the page must then be
the page a full read gives (`build_report` over `load_frames(store)`), except its "Generated" line. A
store of more groups is read as `load_newest` reads it (the newest groups' configuration × hardware
pairs); the verdicts and the omitted groups must be those of a full read, the page must say which runs
its sections describe and how many were not read, and what it reads must not grow with the groups it
does not show. On both backends.
"""

from __future__ import annotations

import re

import pytest

from eitp_bench.analysis.frames import StoreScope, for_suite, load_frames, load_newest, load_report
from eitp_bench.report.build import build_report, findings_of
from eitp_bench.store import Store
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)
from test_newest_reads import RESAMPLES, _nightlies, _records, _rows_read

GROUPS = 7  # in test_newest_reads._records: cfg-a1 × hp-1 under two power limits, and five other pairs


@pytest.fixture
def stored(store_url):
    with Store.open(store_url) as store:
        store.add_many(_records())
    return store_url


def _page(store_or_frames, **kwargs) -> str:
    """The HTML page; the generation time is the one line allowed to differ."""
    return re.sub(r"Generated \S+", "Generated …", build_report(store_or_frames, n_resamples=RESAMPLES, **kwargs))


@pytest.mark.parametrize("suite, max_groups", [(None, GROUPS), (None, 10), ("b", 5), ("b", 3)])
def test_a_store_of_few_groups_gives_the_page_of_a_full_read(stored, suite, max_groups):
    """At most `max_groups` groups: every run is read, and the page is the one the frames of a full read
    (today's report) give, with no coverage line."""
    store = Store.open(stored, read_only=True)
    frames = load_report(store, suite=suite, max_groups=max_groups)
    assert frames.scope is None and len(frames.runs) == len(for_suite(load_frames(store), suite).runs)
    page = _page(store, suite=suite, max_groups=max_groups)
    assert page == _page(load_frames(store), suite=suite, max_groups=max_groups)
    assert 'id="coverage"' not in page


@pytest.mark.parametrize("suite, max_groups", [(None, 2), (None, 5), ("a", 1), ("b", 2)])
def test_a_store_of_more_groups_judges_the_same_and_says_what_it_read(stored, suite, max_groups):
    store = Store.open(stored, read_only=True)
    frames = load_report(store, suite=suite, max_groups=max_groups)
    assert isinstance(frames.scope, StoreScope)
    full = for_suite(load_frames(store), suite)
    found = findings_of(frames, "eitp", n_resamples=RESAMPLES, max_groups=max_groups, sections=True)
    want = findings_of(full, "eitp", n_resamples=RESAMPLES, max_groups=max_groups)
    # verdicts, omitted groups: those of a full read; the warnings count the runs read (as the page says),
    # NaN values included: the frames hold no null metric row, SQL counted the runs read's
    assert {**found.to_json(), "metrics_not_finite": None} == {**want.to_json(), "metrics_not_finite": None}
    nulls = full.not_finite[full.not_finite["run_id"].isin(set(frames.runs["run_id"]))]
    counts = nulls.groupby(["suite", "task", "arm", "name"], sort=True).size()
    assert len(counts) and found.warnings["not_finite"] == [
        dict(zip(["suite", "task", "arm", "name"], k), n=int(n)) for k, n in counts.items()]
    assert found.omitted_groups  # the scoped path is really exercised
    # the sections describe the runs read, and the page says how many were left unread
    assert found.summary["runs"] == len(frames.runs) < len(full.runs)
    assert found.coverage == {"groups": max_groups, "runs_read": len(frames.runs),
                              "runs_not_read": len(full.runs) - len(frames.runs)}
    page = _page(store, suite=suite, max_groups=max_groups)
    line = re.search(r'<p class="summary" id="coverage">(.*?)</p>', page, re.S).group(1)
    assert f"newest {max_groups} group(s)" in line
    assert f"the {len(frames.runs)} runs of their configuration" in line
    assert f"The other {len(full.runs) - len(frames.runs)} runs of this store were not read" in line
    assert f"{len(want.omitted_groups)} older suite · hardware group(s) not judged here" in page
    assert f"{len(nulls)} metric values were NaN or infinite" in page


def test_json_findings_of_scoped_frames_still_leave_the_sections_unread(stored):
    """`report --json` computes no section (sections=False): the same findings as before."""
    frames = load_newest(Store.open(stored, read_only=True), max_groups=2)
    found = findings_of(frames, "eitp", n_resamples=RESAMPLES, max_groups=2)
    assert found.scoped and found.summary == {} and found.coverage is None


def test_html_reads_do_not_grow_with_the_groups_not_shown(store_url, monkeypatch):
    """The page of the newest two groups (with power timelines) reads the same rows whatever older groups
    are stored; a full read grows with the store. Before the older groups come, the store holds just
    two groups and is read whole: the same rows, and the same page apart from the coverage line."""
    newest = [("n", "cfg-n1", "hp-1"), ("n", "cfg-n2", "hp-2")]
    older = [("o", f"cfg-o{k}", f"hp-{k % 3}") for k in range(8)]
    with Store.open(store_url) as store:
        store.add_many(_nightlies(2, newest, minute0=10 * 1440, timeline=True))
        small = _rows_read(monkeypatch, store, lambda s: build_report(s, max_groups=2, n_resamples=RESAMPLES))
        small_full = _rows_read(monkeypatch, store, load_frames)
        before = _page(store, max_groups=2)
        store.add_many(_nightlies(3, older, timeline=True))
        big = _rows_read(monkeypatch, store, lambda s: build_report(s, max_groups=2, n_resamples=RESAMPLES))
        big_full = _rows_read(monkeypatch, store, load_frames)
        after = _page(store, max_groups=2)
        store.add_many(_nightlies(2, [("o", f"cfg-p{k}", f"hp-{k % 3}") for k in range(8)], timeline=True))
        bigger = _rows_read(monkeypatch, store, lambda s: build_report(s, max_groups=2, n_resamples=RESAMPLES))
    # scoped, the two groups' metrics are streamed as rounds: their ok runs' finite values, not the failed
    # runs' rows a whole read also holds
    assert bigger == big and 0 < big <= small
    assert big_full > 3 * small_full
    assert "power on" in after  # the timelines are plotted, from the newest groups' runs
    coverage = re.compile(r'<p class="summary" id="coverage">.*?</p>\n', re.S)
    omitted = re.compile(r'<p class="muted">\d+ older suite · hardware group\(s\) not judged here.*?</p>\n', re.S)
    assert coverage.search(after) and omitted.search(after) and not coverage.search(before)
    assert omitted.sub("", coverage.sub("", after)) == before

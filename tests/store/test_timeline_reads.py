"""Timelines are read from the store only where shown, and what is shown is what a full read showed.

A report's power plots show the first 6 runs with a timeline on each device; `load_frames` leaves the
timeline table unread (a `StoredTimeline`) and `plotted_timeline` reads only those runs' points. The
plots, the evidence bundle's timelines.csv and the HTML report must be exactly what reading every point
gave (the frame `Store.timeline_frame()` returns), on every suite and run restriction, on both backends.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from sqlalchemy import text

from eitp_bench.analysis.findings import _timelines
from eitp_bench.analysis.frames import StoredTimeline, for_suite, load_frames, load_newest, only_runs, plotted_timeline
from eitp_bench.records import TimelinePoint
from eitp_bench.report.build import build_report
from eitp_bench.report.bundle import timelines_csv
from eitp_bench.store import Store
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)
from synthetic_store import eitp_records
from test_newest_reads import stored_and_upgraded

POINTS = 50  # per run and device in synthetic_store.record


def _records():
    """Two suites of nightly records; the generate runs carry a cpu:0 timeline, and every other one also
    a gpu:0 timeline (a run with points on one device only, another with points on both)."""
    recs = []
    for night in range(8):
        for suite in ("a", "b"):
            for r in eitp_records(n_reps=2, seed=night, suite=suite, failed=0, started0=1000 * night):
                recs.append(r.model_copy(update={"suite_config_hash": f"cfg-{suite}"}))
    with_timeline = [r for r in recs if r.timeline]
    for k, r in enumerate(with_timeline):
        if k % 2:
            r.timeline.extend(TimelinePoint(window=p.window, device="gpu:0", domain="board", t=p.t, watts=2 * p.watts)
                              for p in list(r.timeline))
    return recs, with_timeline


@pytest.fixture
def stored(store_url):
    recs, with_timeline = _records()
    with Store.open(store_url) as store:
        store.add_many(recs)
    return store_url, with_timeline


def _eager(frames, store):
    """The same frames with every timeline point read (what load_frames did before)."""
    from dataclasses import replace

    full = store.timeline_frame()
    return replace(frames, timeline=full)


def _same_plots(got: list[dict], want: list[dict]) -> None:
    assert [p["title"] for p in got] == [p["title"] for p in want]
    for g, w in zip(got, want):
        assert list(g["series"]) == list(w["series"])
        for label in w["series"]:
            assert all(np.array_equal(a, b) for a, b in zip(g["series"][label], w["series"][label]))


def test_plots_and_bundle_are_those_of_a_full_read(stored):
    url, with_timeline = stored
    store = Store.open(url, read_only=True)
    lazy = load_frames(store)
    assert isinstance(lazy.timeline, StoredTimeline)  # nothing read yet
    eager = _eager(lazy, store)
    assert len(eager.timeline) == sum(len(r.timeline) for r in with_timeline)
    some = {r.run_id for r in with_timeline[3:17]}
    for restrict in (lambda f: f, lambda f: for_suite(f, "a"), lambda f: for_suite(f, "b"),
                     lambda f: only_runs(f, some), lambda f: only_runs(for_suite(f, "b"), some)):
        got, want = restrict(lazy), restrict(eager)
        plots = _timelines(got)
        assert plots  # the fixture has timelines on both devices in every restriction
        _same_plots(plots, _timelines(want))
        assert timelines_csv(got) == timelines_csv(want)


def test_only_the_plotted_runs_are_read(stored):
    url, with_timeline = stored
    store = Store.open(url, read_only=True)
    frames = for_suite(load_frames(store), "a")
    points = plotted_timeline(frames, 6)
    a_runs = [r for r in with_timeline if r.suite == "a"]
    cpu = [r.run_id for r in a_runs][:6]  # store order: the order they were added in
    gpu = [r.run_id for r in with_timeline if r.suite == "a" and any(p.device == "gpu:0" for p in r.timeline)][:6]
    assert len(a_runs) > 12  # more runs than a plot shows: the read is smaller than the table
    assert list(dict.fromkeys(points.loc[points["device"] == "cpu:0", "run_id"])) == cpu
    assert list(dict.fromkeys(points.loc[points["device"] == "gpu:0", "run_id"])) == gpu
    assert len(points) == (len(cpu) + len(gpu)) * POINTS


def _first_runs(points, run_ids, max_runs: int = 6) -> dict:
    """device → the first `max_runs` of `run_ids` with points on that device, in the order of `points`."""
    kept = points[points["run_id"].isin(run_ids)]
    return {device: list(dict.fromkeys(d["run_id"]))[:max_runs] for device, d in kept.groupby("device", sort=True)}


def test_scoped_frames_pick_the_plotted_runs_in_sql_among_the_runs_read(stored, monkeypatch):
    """Frames of the newest group (load_newest) pick their plotted runs among the runs they read, by the
    runs' condition in SQL: the pick returns one row per plotted (device, run), never one per run read. Restricted further
    (StoredTimeline.only), the pick is among the restricted runs."""
    url, with_timeline = stored
    store = Store.open(url, read_only=True)
    picks = []
    original = Store.timeline_runs

    def counted(self, *args, **kwargs):
        df = original(self, *args, **kwargs)
        picks.append(len(df))
        return df

    monkeypatch.setattr(Store, "timeline_runs", counted)
    frames = load_newest(store, max_groups=1)
    read = set(frames.runs["run_id"])
    everything = store.timeline_frame()
    want = _first_runs(everything, read)
    assert len(want) == 2 and all(len(ids) == 6 for ids in want.values())  # both devices, more runs than plotted
    assert sum(r.run_id in read for r in with_timeline) > 12
    points = plotted_timeline(frames, 6)
    assert picks == [12]  # 6 runs on each of 2 devices came back from SQL
    assert _first_runs(points, read) == want
    for device, ids in want.items():  # every point of those runs on that device, none of any other run
        expected = everything[(everything["device"] == device) & everything["run_id"].isin(ids)]
        assert len(points[points["device"] == device]) == len(expected)
    some = set(list(read)[::3])
    narrowed = frames.timeline.only(some)
    assert narrowed.where is None  # `where` read every run of the group, not these
    assert _first_runs(narrowed.plotted(6), some) == _first_runs(everything, some)


@pytest.mark.parametrize("first", [None, 1, 3, 6, 1000])
def test_timeline_runs_of_a_condition_are_those_of_every_point(stored, first):
    """Store.timeline_runs(where=, first=) (runs.timeline_devices of the runs read, runs on one device or on
    two) lists the (device, run) pairs that every point of the runs read shows, in store order per device."""
    url, _ = stored
    store = Store.open(url, read_only=True)
    frames = load_newest(store, max_groups=1)
    everything = store.timeline_frame()
    kept = everything[everything["run_id"].isin(set(frames.runs["run_id"]))]
    want = kept[["device", "run_id"]].drop_duplicates().sort_values("device", kind="stable")
    if first is not None:
        want = want.groupby("device", sort=False).head(first)
    assert kept.groupby("run_id")["device"].nunique().max() == 2  # some runs have points on both devices
    got = store.timeline_runs(where=frames.timeline.where, first=first)
    assert list(zip(got["device"], got["run_id"])) == list(zip(want["device"], want["run_id"]))


@pytest.mark.parametrize("upgraded", [False, True])
def test_each_runs_timeline_devices_are_those_of_its_points(store_url, upgraded):
    """runs.timeline_devices (store v11) holds the sorted devices of the run's points as JSON ('[]' without a
    timeline), as run_row writes it and as migration v11 fills it in on a store taken back to v10, on both
    backends; the whole store's (device, run) pairs read from it are those of every point."""
    recs, _ = _records()
    stored_and_upgraded(store_url, recs, back_to=10 if upgraded else None)
    with Store.open(store_url) as store:
        with store._tx() as conn:
            stored = dict(conn.execute(text("SELECT run_id, timeline_devices FROM runs")).all())
            if store.dialect == "postgresql":  # the rewritten runs were vacuumed after the upgrade, only then
                conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
                vacuumed = conn.exec_driver_sql("SELECT vacuum_count FROM pg_stat_user_tables "
                                                "WHERE relname = 'runs'").scalar_one()
                assert vacuumed == (1 if upgraded else 0)
    truth = {r.run_id: sorted({p.device for p in r.timeline}) for r in recs}
    assert stored == {run_id: json.dumps(devices) for run_id, devices in truth.items()}
    assert {len(devices) for devices in truth.values()} == {0, 1, 2}  # runs without, on one, on two devices
    store = Store.open(store_url, read_only=True)
    everything = store.timeline_frame()
    for first in (None, 1, 4):
        want = everything[["device", "run_id"]].drop_duplicates().sort_values("device", kind="stable")
        if first is not None:
            want = want.groupby("device", sort=False).head(first)
        got = store.timeline_runs(first=first)
        assert list(zip(got["device"], got["run_id"])) == list(zip(want["device"], want["run_id"]))


def test_html_report_is_that_of_a_full_read(stored):
    url, _ = stored
    store = Store.open(url, read_only=True)
    lazy = load_frames(store)

    def page(frames) -> str:  # the generation time is the one line allowed to differ
        return re.sub(r"Generated \S+", "Generated …", build_report(frames, suite="b", n_resamples=200))

    assert page(lazy) == page(_eager(lazy, store))


def test_a_store_without_timelines_plots_nothing(tmp_path):
    recs = [r.model_copy(update={"timeline": []}) for r in eitp_records(n_reps=2, failed=0)]
    with Store.open(tmp_path / "s.sqlite") as store:
        store.add_many(recs)
    frames = load_frames(Store.open(tmp_path / "s.sqlite", read_only=True))
    assert _timelines(frames) == []
    assert len(plotted_timeline(frames, 6)) == 0

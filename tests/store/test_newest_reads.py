"""`report --json` reads only the runs of the groups it judges, and says what a full read said.

`frames.load_newest` finds every comparability group from SQL aggregates (newest_groups.verdict_groups over
store.queries.group_rows), reads the runs of the newest `max_groups` ones only, and counts the omitted
groups and the not-finite metrics in SQL. Its findings (`to_json`) must be those of `for_suite(load_frames(store), suite)`, which reads every
run, on both backends: with several suites, several energy states of one configuration × profile
(NOT COMPARABLE notes), runs without a hardware profile, failed runs and NaN metrics. And what it reads
must not grow with the groups it does not judge.
"""

from __future__ import annotations

import gc
import json
import weakref
from dataclasses import replace
from typing import Optional

import pytest

from eitp_bench.analysis import frames as frames_module
from eitp_bench.analysis.frames import StoreScope, for_suite, load_frames, load_newest, load_newest_each, only_runs
from eitp_bench.errors import UserError
from eitp_bench.records import Metric
from eitp_bench.report.build import findings_of, newest_findings, render_report
from eitp_bench.store import Store
from eitp_bench.store.migrations import SCHEMA_VERSION
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)
from synthetic_store import eitp_records

RESAMPLES = 200


def _state(limit_w: float) -> dict:
    return {"driver_version": "550.54", "gpus": [{"uuid": f"GPU-{limit_w:g}", "power_limit_w": limit_w,
                                                  "clocks_locked": False}]}


def _with_hardware(record, *, profile="keep", state=None):
    prov = record.provenance
    update = {}
    if profile != "keep":
        update["hardware_profile_id"] = profile
    if state is not None:
        update["hardware"] = {**prov.hardware, "state": state}
    return record.model_copy(update={"provenance": prov.model_copy(update=update)})


def _nightlies(nights: int, pairs: list[tuple[str, str, str]], *, minute0: int = 0, timeline: bool = False) -> list:
    """`nights` repetitions of the EIT-P suite for each (suite, configuration, profile)."""
    out = []
    for night in range(nights):
        for k, (suite, config, profile) in enumerate(pairs):
            recs = eitp_records(n_reps=2, seed=100 * night + k, suite=suite, profile=profile, failed=1,
                                timeline=timeline, started0=minute0 + 1440 * night + 30 * k)
            out += [r.model_copy(update={"suite_config_hash": config}) for r in recs]
    return out


def _records() -> list:
    recs = _nightlies(3, [("a", "cfg-a1", "hp-1"), ("a", "cfg-a1", "hp-2"), ("b", "cfg-b1", "hp-1"),
                          ("a", "cfg-a2", "hp-1"), ("b", "cfg-b2", "hp-3"), ("b", "cfg-b2", "unknown")])
    out = []
    for i, r in enumerate(recs):
        if r.suite_config_hash == "cfg-a1" and r.provenance.hardware_profile_id == "hp-1":
            # one configuration × profile under two power limits: two groups, each NOT COMPARABLE with the other
            r = _with_hardware(r, state=_state(700.0 if i % 3 else 350.0))
        if r.provenance.hardware_profile_id == "unknown":
            r = _with_hardware(r, profile=None)  # no profile stored: its own machine, 'unknown'
        if i % 17 == 0 and r.metrics:  # a NaN value: stored null, counted in metrics_not_finite
            r = r.model_copy(update={"metrics": [*r.metrics, Metric(name="step_s", value=float("nan"), unit="s")]})
        out.append(r)
    return out


@pytest.fixture
def stored(store_url):
    with Store.open(store_url) as store:
        store.add_many(_records())
    return store_url


def _json(frames, max_groups: int) -> str:
    return json.dumps(findings_of(frames, "eitp", n_resamples=RESAMPLES, max_groups=max_groups).to_json(), indent=1)


@pytest.mark.parametrize("suite", [None, "a", "b"])
def test_findings_are_those_of_a_full_read(stored, suite):
    store = Store.open(stored, read_only=True)
    full = for_suite(load_frames(store), suite)
    for max_groups in (1, 2, 5):
        newest = load_newest(store, suite=suite, max_groups=max_groups)
        assert isinstance(newest.scope, StoreScope)
        expected = _json(full, max_groups)
        assert _json(newest, max_groups) == expected
        # what `report --json` prints: the same findings, read and judged a (configuration, profile) pair at a time
        each = newest_findings(store, "eitp", suite=suite, max_groups=max_groups, n_resamples=RESAMPLES)
        assert json.dumps(each.to_json(), indent=1) == expected
    found = findings_of(load_newest(store, suite=suite, max_groups=2), "eitp", n_resamples=RESAMPLES, max_groups=2)
    if suite in (None, "a"):  # the fixture's checks are really exercised, not vacuously equal
        assert found.omitted_groups and found.warnings["not_finite"]
    assert len(store.runs_frame()) > len(load_newest(store, suite=suite, max_groups=2).runs)


def test_the_two_power_limits_stay_two_groups(stored):
    store = Store.open(stored, read_only=True)
    found = findings_of(load_newest(store, suite="a", max_groups=5), "eitp", n_resamples=RESAMPLES, max_groups=5)
    states = sorted(g.hardware_state for g in found.groups if g.config_hash == "cfg-a1" and g.profile == "hp-1")
    assert len(states) == 2 and all("power limit" in s for s in states)
    assert all(g.not_pooled for g in found.groups if g.config_hash == "cfg-a1" and g.profile == "hp-1")


def _rows_read(monkeypatch, store, read) -> int:
    """Rows the store hands to the analysis: every frame is built by Store._frame, provenance by its own
    query, and the metric rows a scoped read combines into rounds stream through queries.metric_values."""
    from eitp_bench.store import queries

    rows = []
    frame, prov, stream = Store._frame, Store.provenance_frame, queries.metric_values

    def counted_stream(store, where, consume, **kwargs):
        def seen(chunk):
            rows.append(len(chunk))
            consume(chunk)

        return stream(store, where, seen, **kwargs)

    def counted(self, stmt, *args, **kwargs):
        df = frame(self, stmt, *args, **kwargs)
        rows.append(len(df))
        return df

    def counted_prov(self, *args, **kwargs):
        df = prov(self, *args, **kwargs)
        rows.append(len(df))
        return df

    monkeypatch.setattr(Store, "_frame", counted)
    monkeypatch.setattr(Store, "provenance_frame", counted_prov)
    monkeypatch.setattr(queries, "metric_values", counted_stream)
    try:
        read(store)
    finally:
        monkeypatch.setattr(Store, "_frame", frame)
        monkeypatch.setattr(Store, "provenance_frame", prov)
        monkeypatch.setattr(queries, "metric_values", stream)
    return sum(rows)


def test_reads_do_not_grow_with_the_groups_not_judged(store_url, monkeypatch):
    """The newest two groups' runs are read, whatever else is stored; a full read grows with the store."""
    newest = [("n", "cfg-n1", "hp-1"), ("n", "cfg-n2", "hp-2")]
    older = [("o", f"cfg-o{k}", f"hp-{k % 3}") for k in range(8)]
    with Store.open(store_url) as store:
        store.add_many(_nightlies(2, newest, minute0=10 * 1440))
        small_newest = _rows_read(monkeypatch, store, lambda s: load_newest(s, max_groups=2))
        small_full = _rows_read(monkeypatch, store, load_frames)
        before = _json(load_newest(store, max_groups=2), 2)
        store.add_many(_nightlies(4, older))  # older nights of eight other configurations
        big_newest = _rows_read(monkeypatch, store, lambda s: load_newest(s, max_groups=2))
        big_full = _rows_read(monkeypatch, store, load_frames)
        after = json.loads(_json(load_newest(store, max_groups=2), 2))
    assert big_newest == small_newest > 0
    assert big_full > 3 * small_full
    assert len(after["omitted_groups"]) == 8
    assert {**after, "omitted_groups": []} == {**json.loads(before), "omitted_groups": []}


def test_each_pair_is_read_alone_and_let_go_before_the_next(stored, monkeypatch):
    """load_newest_each holds one (configuration, profile) pair's runs: every energy state of it, none of
    another pair's; and when the next pair is read, the frames of the one before are gone."""
    store = Store.open(stored, read_only=True)
    newest = load_newest(store, max_groups=5)
    def pairs_of(runs) -> set:  # a run stored without a profile is of the 'unknown' one
        return set(zip(runs["suite_config_hash"], runs["hardware_profile_id"].astype(object).fillna("unknown")))

    pairs = pairs_of(newest.runs)
    read_before: list = []
    alive_at_each_read: list[int] = []
    real_read = frames_module._read_pairs

    def read(*args, **kwargs):
        gc.collect()
        alive_at_each_read.append(sum(ref() is not None for ref in read_before))
        frames = real_read(*args, **kwargs)
        read_before.append(weakref.ref(frames.runs))
        return frames

    monkeypatch.setattr(frames_module, "_read_pairs", read)
    held = []
    for frames in load_newest_each(store, max_groups=5):
        (pair,) = frames.scope.pairs
        held.append((pair, len(frames.runs)))
        assert pairs_of(frames.runs) == {pair}
        del frames
    assert sorted(p for p, _ in held) == sorted(pairs) and len(held) == len(pairs) >= 4
    assert sum(n for _, n in held) == len(newest.runs)
    assert len(newest_findings(store, "eitp", max_groups=5, n_resamples=RESAMPLES).groups) == 5
    assert alive_at_each_read[-5:] == [0] * 5  # newest_findings' five reads: none found the one before alive


def test_frames_that_hold_another_pair_than_they_say_are_refused(stored):
    """The groups judged from a pair's frames must be the store's newest groups of that pair, in order."""
    from eitp_bench.analysis.claims import load_claims
    from eitp_bench.analysis.findings import analyse_each

    each = list(load_newest_each(Store.open(stored, read_only=True), max_groups=5))
    wrong = [each[0], *(replace(f, scope=replace(f.scope, pairs=each[0].scope.pairs)) for f in each[1:])]
    with pytest.raises(RuntimeError, match="groups listed by the store are not in the runs read"):
        analyse_each(wrong, load_claims("eitp"), n_resamples=RESAMPLES, max_groups=5)


def test_a_group_stored_while_the_pairs_are_read_waits_for_the_next_report(stored):
    """Another machine of the fleet stores a night under a new power limit after the report listed the
    groups and before it reads that pair: the report judges the groups it listed, and the next one judges
    the new group too (the newest)."""
    from eitp_bench.analysis.claims import load_claims
    from eitp_bench.analysis.findings import analyse_each

    def keys(found) -> list:
        return [(g.config_hash, g.profile, g.hardware_state) for g in found.groups]

    reader = Store.open(stored, read_only=True)
    each = load_newest_each(reader, max_groups=5)
    first = next(each)  # the groups are listed, and the first pair read
    listed = [(g.config_hash, g.hardware_profile_id, g.energy_state) for g in first.scope.groups[:5]]
    later = next(g for g in first.scope.groups[:5] if (g.config_hash, g.hardware_profile_id) not in first.scope.pairs
                 and g.hardware_profile_id != "unknown")
    night = [_with_hardware(r, state=_state(500.0)) for r in
             _nightlies(1, [(later.suite, later.config_hash, later.hardware_profile_id)], minute0=30 * 1440)]
    with Store.open(stored) as writer:
        writer.add_many(night)

    def frames_each():
        yield first
        yield from each

    found = analyse_each(frames_each(), load_claims("eitp"), n_resamples=RESAMPLES, max_groups=5)
    assert keys(found) == listed
    newer = keys(newest_findings(reader, "eitp", max_groups=5, n_resamples=RESAMPLES))
    assert newer[0][:2] == (later.config_hash, later.hardware_profile_id) and newer[0] not in listed


def test_restricting_or_rendering_scoped_frames_is_refused(stored):
    """Their sections were never computed (`report --json`): the HTML report asks for them (sections=True)."""
    store = Store.open(stored, read_only=True)
    frames = load_newest(store, max_groups=2)
    with pytest.raises(ValueError, match="load_frames"):
        only_runs(frames, set(frames.runs["run_id"][:3]))
    with pytest.raises(ValueError, match="load_frames"):
        render_report(findings_of(frames, "eitp", n_resamples=RESAMPLES, max_groups=2))
    with pytest.raises(ValueError, match="newest 2 groups"):
        findings_of(frames, "eitp", n_resamples=RESAMPLES, max_groups=3)


def test_unknown_suite_and_empty_store_say_so(stored, tmp_path):
    with pytest.raises(UserError, match="no runs of suite 'zz'.*") as err:
        load_newest(Store.open(stored, read_only=True), suite="zz")
    assert "a, b" in err.value.fix
    empty = tmp_path / "empty.sqlite"
    Store.open(str(empty)).close()
    with pytest.raises(UserError, match="no runs in"):
        load_newest(str(empty))


def test_a_store_of_failed_runs_only_is_read_whole(tmp_path):
    """No group to judge: nothing large to scope; the findings are those of a full read."""
    path = str(tmp_path / "failed.sqlite")
    recs = [r.model_copy(update={"status": "failed", "error": "boom"}) for r in _nightlies(1, [("a", "c", "p")])]
    with Store.open(path) as store:
        store.add_many(recs)
    frames = load_newest(path)
    assert frames.scope is None
    assert _json(frames, 5) == _json(for_suite(load_frames(path), None), 5)


def test_compare_and_regress_read_series_alone_and_find_what_a_full_read_finds(stored):
    """`compare` and `regress` read the ok runs' finite values with a series' columns and each run's
    hardware state (frames.load_series): their tables and change points are those of every column read."""
    from eitp_bench.analysis.compare import COMPARED, compare_hardware
    from eitp_bench.analysis.frames import load_series
    from eitp_bench.analysis.regress import find_changes, testable_series

    store = Store.open(stored, read_only=True)
    full = load_frames(store)
    series = load_series(store)
    compared = load_series(store, names=[name for name, _, _ in COMPARED])
    assert set(compared.metrics["name"]) < set(series.metrics["name"])
    assert len(series.metrics) <= len(full.metrics) and len(series.metrics.columns) < len(full.metrics.columns)
    tables = compare_hardware(compared.metrics, provenance=compared.provenance)
    assert tables and repr(tables) == repr(compare_hardware(full.metrics, provenance=full.provenance))
    assert any(t.energy_state for t in tables)  # the power limits really keyed tables apart
    assert testable_series(series.metrics, provenance=series.provenance) == \
        testable_series(full.metrics, provenance=full.provenance)
    for kw in ({}, {"window": 3, "threshold": 0.01, "min_size": 2}):
        changes = find_changes(series.metrics, provenance=series.provenance, **kw)
        assert repr(changes) == repr(find_changes(full.metrics, provenance=full.provenance, **kw))
    assert changes  # the comparison is not of two empty lists


def test_compare_reads_one_configuration_at_a_time_and_finds_the_tables_of_a_full_read(stored, monkeypatch):
    """`compare` on a SQL store reads the compared metrics one configuration hash at a time, and of it one
    task × arm at a time (analysis.compare.compare_store): the tables, with and without a reference, and
    the reference's check, are those of one read of every run."""
    from eitp_bench.analysis.compare import COMPARED_NAMES, compare_hardware, compare_store
    from eitp_bench.store import queries as store_queries

    store = Store.open(stored, read_only=True)
    full = load_frames(store)
    reads, pages = [], []
    original = store_queries.series_pages

    def counted(store, names, **kwargs):
        reads.append(kwargs.get("config_hash"))
        for page in original(store, names, **kwargs):
            (pair,) = set(zip(page["task"], page["arm"]))  # one task × arm a page
            pages.append((kwargs.get("config_hash"), *pair))
            yield page

    monkeypatch.setattr(store_queries, "series_pages", counted)
    tables = compare_store(store)
    hashes = sorted(set(full.runs["suite_config_hash"]))
    assert reads == hashes and len(hashes) >= 2  # one read per configuration, never one of every run
    ok = full.metrics[(full.metrics["status"] == "ok") & full.metrics["name"].isin(COMPARED_NAMES)]
    assert sorted(pages) == sorted(ok.groupby(["suite_config_hash", "task", "arm"]).groups)  # a page each, whole
    assert repr(tables) == repr(compare_hardware(full.metrics, provenance=full.provenance))
    assert len({t.config_hash for t in tables}) >= 2 and any(t.energy_state for t in tables)
    profile = tables[-1].profiles[-1]
    assert repr(compare_store(store, reference=profile)) == \
        repr(compare_hardware(full.metrics, reference=profile, provenance=full.provenance))
    with pytest.raises(UserError) as err:
        compare_store(store, reference="no-such-profile")
    assert "not a hardware profile in the store" in err.value.message and profile in err.value.fix


def stored_and_upgraded(store_url, records, back_to: Optional[int] = None) -> None:
    """`records` stored at the current store schema; with `back_to` (9, 10 or 11), the store then taken back to
    that version, as an older eitp-bench left it, and opened by a writer, which upgrades it."""
    from sqlalchemy import text

    with Store.open(store_url) as store:
        store.add_many(records)
        if back_to is not None:
            with store._tx(write=True) as conn:
                {9: _back_to_v9, 10: _back_to_v10, 11: _back_to_v11}[back_to](conn)
                conn.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": str(back_to)})
    Store.open(store_url).close()  # a writer upgrades an older store


def _back_to_v11(conn) -> None:
    """Undo store v12 (migrations._v12_hardware_values) on an open write transaction: each run's whole
    provenance back in its row, its state's text in runs.energy_state_json (as v11's run_row wrote it),
    hardware_values dropped; the caller sets the version."""
    import json

    from sqlalchemy import text

    values = {i: json.loads(v) for i, v in conn.execute(text("SELECT id, value_json FROM hardware_values"))}
    conn.execute(text("DROP INDEX runs_grouped"))
    conn.execute(text("ALTER TABLE runs ADD COLUMN energy_state_json TEXT"))
    whole = []
    for run_id, stored in conn.execute(text("SELECT run_id, provenance_json FROM runs")).all():
        provenance = json.loads(stored)
        hardware = provenance.get("hardware") or {}
        provenance["hardware"] = {k: values[v["value_id"]] if isinstance(v, dict) else v for k, v in hardware.items()}
        state = provenance["hardware"].get("state")
        whole.append({"p": json.dumps(provenance), "s": None if state is None else json.dumps(state), "r": run_id})
    conn.execute(text("UPDATE runs SET provenance_json = :p, energy_state_json = :s WHERE run_id = :r"), whole)
    conn.execute(text("ALTER TABLE runs DROP COLUMN energy_state_id"))
    conn.execute(text("CREATE INDEX runs_grouped ON runs (suite, suite_config_hash, hardware_profile_id, "
                      "energy_state_json, started_at, seq, status, has_finite_metric) "
                      "WHERE status = 'ok' AND has_finite_metric = 1"))
    conn.execute(text("DROP TABLE hardware_values"))


def _back_to_v10(conn) -> None:
    """Undo store v12 and v11 (migrations._v11_timeline_devices) on an open write transaction; the caller sets
    the version."""
    from sqlalchemy import text

    _back_to_v11(conn)
    conn.execute(text("ALTER TABLE runs DROP COLUMN timeline_devices"))
    conn.execute(text("CREATE INDEX timeline_by_run_device ON timeline(run_id, device)"))


def _back_to_v9(conn) -> None:
    """Undo store v12, v11 and v10 (migrations._v10_grouped_runs) on an open write transaction; the caller sets the
    version."""
    from sqlalchemy import text

    _back_to_v10(conn)
    conn.execute(text("DROP INDEX runs_grouped"))
    conn.execute(text("DROP INDEX metrics_not_finite"))
    conn.execute(text("ALTER TABLE runs DROP COLUMN has_finite_metric"))


@pytest.mark.parametrize("garbage", [False, True])
def test_a_v8_store_gets_each_runs_state_column_from_its_provenance(store_url, garbage):
    """Migration v9 copies provenance.hardware.state into runs.energy_state_json, and v12 turns it into the id
    of that state in hardware_values (what a new store writes itself), on both backends; a provenance that is not JSON leaves its run's column null, and the
    findings after the upgrade are those of a full read."""
    from sqlalchemy import text

    from eitp_bench.store.hardware_values import stored_provenances

    recs = _records()
    with Store.open(store_url) as store:
        store.add_many(recs)
        with store._tx(write=True) as conn:
            _back_to_v9(conn)
            conn.execute(text("DROP INDEX runs_by_group"))
            conn.execute(text("ALTER TABLE runs DROP COLUMN energy_state_json"))
            if garbage:  # PostgreSQL's cast fails on it: the step fills the column one run at a time
                conn.execute(text("UPDATE runs SET provenance_json = 'garbage{[' WHERE run_id = :r"),
                             {"r": recs[0].run_id})
            conn.execute(text("UPDATE meta SET value = '8' WHERE key = 'schema_version'"))
    with Store.open(store_url) as store:  # a writer upgrades it (v9 fills the state's text, v12 makes it an id)
        with store._tx() as conn:
            stored = dict(conn.execute(text("SELECT r.run_id, v.value_json FROM runs r LEFT JOIN hardware_values v "
                                            "ON v.id = r.energy_state_id")).all())
            version = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar_one()
        with store._tx(write=True) as conn:  # the run edited by hand, mended: every read works again
            mended = stored_provenances(conn, [recs[0].provenance.model_dump_json()])[0]  # (as v12 stores it)
            conn.execute(text("UPDATE runs SET provenance_json = :p, energy_state_id = :s WHERE run_id = :r"),
                         {"p": mended.text, "s": mended.ids.get("state"), "r": recs[0].run_id})
    assert version == str(SCHEMA_VERSION)
    first = stored.pop(recs[0].run_id)
    assert first is None if garbage else json.loads(first) == recs[0].provenance.hardware["state"]  # (as text, may
    # differ in spacing: SQLite's json_extract writes it compact)
    with_state = [r for r in recs[1:] if r.provenance.hardware.get("state") is not None]
    assert with_state and all(json.loads(stored[r.run_id]) == r.provenance.hardware["state"] for r in with_state)
    assert all(stored[r.run_id] is None for r in recs[1:] if r.provenance.hardware.get("state") is None)
    store = Store.open(store_url, read_only=True)
    assert _json(load_newest(store, max_groups=5), 5) == _json(for_suite(load_frames(store), None), 5)


def test_groups_whose_newest_runs_tie_keep_the_order_of_a_full_read(tmp_path):
    """Twenty groups whose newest runs started at the same moment: the newest five are the same five, in
    the same order (the store order breaks the tie), whether every group is read or five."""
    path = str(tmp_path / "ties.sqlite")
    recs = []
    for k in range(20):
        made = eitp_records(n_reps=1, seed=k, suite=f"s{k:02d}", profile=f"hp-{k % 4}", failed=0, timeline=False,
                            started0=0)
        recs += [r.model_copy(update={"suite_config_hash": f"cfg-{k:02d}"}) for r in made]
    with Store.open(path) as store:
        store.add_many(recs)
    store = Store.open(path, read_only=True)
    assert _json(load_newest(store, max_groups=5), 5) == _json(for_suite(load_frames(store), None), 5)

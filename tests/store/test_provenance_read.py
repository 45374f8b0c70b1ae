"""The provenance frame (store/provenance_read.py), whose runs share equal values, is the frame of each
run's own provenance as written: values and their types, NaN where a run lacks a field, None for JSON null, the
columns in first-seen order, on both backends; runs that share a value share one object; a text that is not
JSON still says so in one line."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from eitp_bench.errors import UserError
from eitp_bench.store import Store
from eitp_bench.store import provenance_read
from eitp_bench.store import queries as store_queries
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)
from synthetic_store import eitp_records


def _per_run_rows(records):
    """The reference: each record's provenance as written (its JSON), one row each, framed by pandas."""
    rows = []
    for r in records:
        prov = json.loads(r.provenance.model_dump_json())
        hardware = prov.pop("hardware", None) or {}
        rows.append({"run_id": r.run_id, **prov, **{f"hardware.{k}": v for k, v in hardware.items()}})
    if not rows:
        return pd.DataFrame(columns=["run_id", *provenance_read.TOP_FIELDS])
    df = pd.DataFrame(rows)  # text columns (missing values aside) are held as categories, as the runs' labels
    return df.astype({c: "category" for c in df.columns if c != "run_id" and df[c].dtype == "str"})


def _as_objects(frame):
    """The frame with its SharedObjects columns (mappings and lists runs share) as the object columns pandas
    makes of the same values: what the reference frame holds."""
    from eitp_bench.store.shared_objects import SharedObjectsDtype

    return frame.astype({c: object for c in frame.columns if isinstance(frame[c].dtype, SharedObjectsDtype)})


def _varied_records() -> list:
    """Runs whose provenance differs the ways stored runs do: per-run measured values, fields some runs
    lack, JSON null, the same number as an int on one run and a float on another, nested objects and
    lists, keys in another order, a key with a dot, text beyond ASCII."""
    recs = eitp_records(n_reps=2, seed=3, failed=1, timeline=False)
    out = []
    for i, r in enumerate(recs):
        hardware = {"meters": ["nvml", "rapl"], "alias": "nœud 7 — «GPU»",
                    "state": {"driver_version": "550.54.15", "gpus": [{"uuid": "GPU-1", "power_limit_w": 700.0}]},
                    "setup_s": 0.1 + i * 0.2 / 3, "idle_baseline": {"gpu:0 gpu": 68.123456789012345 + i}}
        if i % 3 == 0:
            hardware["qualification"] = {"sensors": [{"meter": "nvml", "update_period_s": 0.1}]}
        if i % 4 == 1:
            hardware["cooldown_before_s"] = None
        if i % 5 == 2:
            hardware = {"cpu.model": "EPYC", **dict(reversed(list(hardware.items())))}
        if i % 6 == 3:  # the same limit written as an int: equal in Python, another text in JSON
            hardware["state"] = {"driver_version": "550.54.15", "gpus": [{"uuid": "GPU-1", "power_limit_w": 700}]}
        prov = r.provenance.model_copy(update={"hardware": hardware, "git_commit": None if i % 7 == 0 else "abc"})
        out.append(r.model_copy(update={"provenance": prov}))
    return out


@pytest.fixture
def varied(store_url):  # noqa: F811
    recs = _varied_records()
    with Store.open(store_url) as store:
        store.add_many(recs)
    return store_url, recs


def test_the_frame_is_the_per_run_parse_of_every_run(varied):
    url, recs = varied
    store = Store.open(url, read_only=True)
    got = store.provenance_frame()
    want = _per_run_rows(recs)  # (store order: the order add_many was given)
    pd.testing.assert_frame_equal(_as_objects(got), want, check_exact=True)
    assert len(got) == len(recs) and got["hardware.cooldown_before_s"].isna().any()
    limits = [state["gpus"][0]["power_limit_w"] for state in got["hardware.state"]]
    assert {type(v) for v in limits} == {int, float}  # the stored number's type, never another equal one's
    assert "hardware.cpu.model" in got.columns


@pytest.mark.parametrize("chunk", [1, 2, 3, 5])
@pytest.mark.parametrize("expected", ["none", "all", "fewer"])
@pytest.mark.parametrize("most_coded", [4096, 2])
def test_the_frame_is_the_same_read_in_chunks_whatever_the_runs_expected(varied, monkeypatch, chunk, expected,
                                                                          most_coded):
    """Columns made for the runs expected and grown past them: read a few runs at a time (fields first seen
    in a later chunk, stretches of shapes across chunks), expecting every run, none, or fewer (a run stored
    between the runs read and the provenance read), the frame is the per-run parse; so it is where columns
    of more distinct objects than a few hold their objects (a code a run, then an object array)."""
    from eitp_bench.store.layout import RUNS

    url, recs = varied
    monkeypatch.setattr(provenance_read, "_CHUNK_ROWS", chunk)
    monkeypatch.setattr(provenance_read, "_MOST_CODED", most_coded)
    store = Store.open(url, read_only=True)
    runs = {"none": None, "all": store.runs_frame(), "fewer": store.runs_frame(where=RUNS.c.arm == recs[0].arm)}
    got = store.provenance_frame(runs=runs[expected])
    pd.testing.assert_frame_equal(_as_objects(got), _per_run_rows(recs), check_exact=True)


def test_the_frame_of_some_runs_is_those_runs_rows(varied):
    url, recs = varied
    store = Store.open(url, read_only=True)
    from eitp_bench.store.layout import RUNS

    got = store.provenance_frame(where=RUNS.c.arm == recs[0].arm)
    group = [r for r in recs if r.arm == recs[0].arm]
    assert 0 < len(group) < len(recs)
    pd.testing.assert_frame_equal(_as_objects(got), _per_run_rows(group), check_exact=True)
    none = store_queries.runs_of([("none", "none")])
    pd.testing.assert_frame_equal(store.provenance_frame(where=none), _per_run_rows([]))


def test_the_frame_holds_the_runs_frames_ids_when_they_are_the_same_runs(varied):
    import numpy as np

    from eitp_bench.store.layout import RUNS

    url, recs = varied
    store = Store.open(url, read_only=True)
    where = RUNS.c.arm == recs[0].arm
    runs = store.runs_frame(where=where)
    shared = store.provenance_frame(where=where, runs=runs)
    pd.testing.assert_frame_equal(shared, store.provenance_frame(where=where), check_exact=True)
    def text(frame):  # the bytes of the ids' text in Arrow
        return frame["run_id"].array._pa_array.chunk(0).buffers()[2]

    assert np.shares_memory(text(shared), text(runs))  # one copy of the ids
    assert not np.shares_memory(text(store.provenance_frame(where=where)), text(runs))
    other = store.runs_frame()  # not the same runs: the provenance keeps its own ids
    alone = store.provenance_frame(where=where, runs=other)
    assert list(alone["run_id"]) == list(runs["run_id"]) and len(other) > len(runs)


def test_runs_that_share_a_value_share_one_object(varied):
    url, _ = varied
    frame = Store.open(url, read_only=True).provenance_frame()
    states = frame["hardware.state"].tolist()
    assert len({id(s) for s in states}) == 2 and len(states) > 2  # one parsed object per distinct state
    assert len({id(v) for v in frame["hardware.idle_baseline"]}) == len(frame)  # measured per run


def test_shared_values_cost_a_small_code_a_run_and_values_measured_per_run_stay_objects(varied):
    """A column of mappings runs share holds each object once and a byte a run; one of a value per run (the
    idle baseline) would cost a code on top of its pointers, so it stays an object column."""
    import numpy as np

    from eitp_bench.store.shared_objects import SharedObjects

    url, _ = varied
    frame = Store.open(url, read_only=True).provenance_frame()
    states = frame["hardware.state"].array
    assert isinstance(states, SharedObjects) and states.nbytes == len(frame) + 2 * 8  # two states, a byte a run
    assert frame["hardware.idle_baseline"].dtype == object
    ids = [id(s) for s in frame["hardware.state"]]
    assert ids == [id(s) for s in states.tolist()] == [id(s) for s in np.asarray(states)]


def test_each_distinct_hardware_mapping_or_list_is_stored_once(varied):
    """Store v12 (store/hardware_values.py): hardware_values holds each distinct (key, value) mapping or list
    of the runs once; a run's row refers to them and keeps its scalars inline; the records read back whole."""
    from sqlalchemy import text

    url, recs = varied
    distinct = {(k, json.dumps(v, sort_keys=False)) for r in recs for k, v in r.provenance.hardware.items()
                if isinstance(v, (dict, list))}
    store = Store.open(url, read_only=True)
    with store._tx() as conn:
        stored = conn.execute(text("SELECT key, value_json FROM hardware_values")).all()
        rows = dict(conn.execute(text("SELECT run_id, provenance_json FROM runs")).all())
    assert len(stored) == len(distinct) and {(k, json.dumps(json.loads(v))) for k, v in stored} == distinct
    row = json.loads(rows[recs[0].run_id])["hardware"]
    assert row["setup_s"] == recs[0].provenance.hardware["setup_s"] and set(row["state"]) == {"value_id"}
    assert store.records() == recs


def test_a_reference_to_no_stored_value_says_so_in_one_line(varied):
    from sqlalchemy import text

    url, recs = varied
    with Store.open(url) as store, store._tx(write=True) as conn:
        conn.execute(text("DELETE FROM hardware_values WHERE key = 'state'"))
    for read in (lambda s: s.provenance_frame(), lambda s: s.records()):
        with pytest.raises(UserError, match="changed outside eitp-bench"):
            read(Store.open(url, read_only=True))


def test_a_provenance_that_is_not_json_says_so_in_one_line(varied):
    from sqlalchemy import text

    url, recs = varied
    with Store.open(url) as store, store._tx(write=True) as conn:
        conn.execute(text("UPDATE runs SET provenance_json = 'garbage{[' WHERE run_id = :r"), {"r": recs[3].run_id})
    with pytest.raises(UserError, match="changed outside eitp-bench"):
        Store.open(url, read_only=True).provenance_frame()


def test_postgresql_failing_to_read_a_stored_text_as_json_says_the_store_was_changed(pg_url):  # noqa: F811
    """The history's commits are read in SQL (queries.provenance_field casts the text to JSON on PostgreSQL):
    a text that is not JSON fails the server's cast, and the message names the cause, not the server's log."""
    from sqlalchemy import text

    recs = _varied_records()
    with Store.open(pg_url) as store:
        store.add_many(recs)
        with store._tx(write=True) as conn:
            conn.execute(text("UPDATE runs SET provenance_json = 'garbage{[' WHERE run_id = :r"), {"r": recs[3].run_id})
    with pytest.raises(UserError, match="changed outside eitp-bench") as raised:
        store_queries.run_commits(Store.open(pg_url, read_only=True), [r.run_id for r in recs])
    assert "invalid input syntax for type json" in raised.value.message


def test_a_read_pauses_the_cycle_collector_and_gives_it_back_as_it_was_even_when_it_fails(varied):
    import gc

    from sqlalchemy import text

    url, recs = varied
    store = Store.open(url, read_only=True)
    seen = []
    where = store_queries.runs_of([(r.suite_config_hash, r.provenance.hardware_profile_id or "unknown")
                                   for r in recs])
    store_queries.metric_values(store, where, lambda rows: seen.append(gc.isenabled()))
    assert seen and not any(seen) and gc.isenabled()  # paused while the rows streamed, collecting after
    gc.disable()
    try:  # a caller that paused it keeps it paused
        store.provenance_frame()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with Store.open(url) as writer, writer._tx(write=True) as conn:
        conn.execute(text("UPDATE runs SET provenance_json = 'garbage{[' WHERE run_id = :r"), {"r": recs[3].run_id})
    with pytest.raises(UserError):
        Store.open(url, read_only=True).provenance_frame()
    assert gc.isenabled()

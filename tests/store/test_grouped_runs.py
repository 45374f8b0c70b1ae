"""Store v10: the whole-store questions of every report are answered from indexes, with the same answers.

`store.queries.group_rows` lists the comparability groups from the partial index `runs_grouped` over
`runs.has_finite_metric`, and `not_finite_counts` counts null metric values from `metrics_not_finite`
(store/layout.py, migrations._v10_grouped_runs). Their answers, and run_count's, must be what the
records say: on a store written at v10 and on one taken back to v9 and upgraded, on both backends, with
runs whose metrics are all NaN (no finite metric: in no group), runs without metrics, failed runs, runs
without a hardware profile (and one whose profile is the literal 'unknown'), two suites sharing a
configuration and several energy states of one configuration × profile.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from eitp_bench.errors import UserError
from eitp_bench.records import Metric
from eitp_bench.store import Store, queries
from eitp_bench.store.migrations import SCHEMA_VERSION
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)
from synthetic_store import eitp_records
from test_newest_reads import _back_to_v9, _records, _state, _with_hardware, stored_and_upgraded


def _nan(metric: Metric) -> Metric:
    return metric.model_copy(update={"value": None})


def _more_records() -> list:
    """test_newest_reads' store (two suites, two power limits of one pair, no profile, failed runs, some NaN
    values) and runs that test the finite-metric column: a pair whose ok runs all have only NaN metrics
    (no group), ok runs of a listed pair with only NaN or no metrics (not in its group), a configuration
    shared by two suites, and a profile stored as the literal 'unknown' beside runs without one."""
    recs = _records()
    out = []
    # a pair whose every run has all its metrics NaN: it makes no group
    for r in eitp_records(n_reps=1, seed=7, suite="a", profile="hp-nan", failed=0, timeline=False, started0=9000):
        out.append(r.model_copy(update={"suite_config_hash": "cfg-nan", "metrics": [_nan(m) for m in r.metrics]}))
    # the newest runs of a listed group, but without a finite metric: its newest time must not move
    newest = eitp_records(n_reps=1, seed=8, suite="a", profile="hp-2", failed=0, timeline=False, started0=99_000)
    for k, r in enumerate(newest):
        metrics = [] if k % 2 else [_nan(m) for m in r.metrics]
        out.append(r.model_copy(update={"suite_config_hash": "cfg-a1", "metrics": metrics}))
    # one configuration × profile stored by two suites: its first run is suite b's (stored first)
    for suite, started0 in (("b", 5000), ("a", 4000)):
        for r in eitp_records(n_reps=1, seed=9, suite=suite, profile="hp-9", failed=1, timeline=False,
                              started0=started0):
            out.append(r.model_copy(update={"suite_config_hash": "cfg-shared",
                                            "run_id": f"{suite}-{r.run_id}"}))
    # 'unknown' as a stored profile and as no profile: one group (resultset._keyed)
    for k, r in enumerate(eitp_records(n_reps=1, seed=10, suite="b", profile="hp-x", failed=0, timeline=False,
                                       started0=7000)):
        r = _with_hardware(r, profile="unknown" if k % 2 else None, state=_state(500.0) if k % 3 == 0 else None)
        out.append(r.model_copy(update={"suite_config_hash": "cfg-b2"}))
    return recs + out


def _truth_groups(records: list, suite=None) -> list[tuple]:
    """group_rows from the records: (config, profile, state JSON, newest started_at, first seq, its suite)
    per (config, profile or 'unknown', state) of the ok runs with a finite metric. seq is the store
    order: the records are stored by one add_many, the first as seq 1."""
    groups: dict[tuple, list] = {}
    for seq, r in enumerate(records, 1):
        if r.status != "ok" or not any(m.value is not None for m in r.metrics) or suite not in (None, r.suite):
            continue
        state = r.provenance.hardware.get("state")
        key = (r.suite_config_hash, r.provenance.hardware_profile_id or "unknown",  # the state as stored: compact JSON
               None if state is None else json.dumps(state, separators=(",", ":"), ensure_ascii=False))
        g = groups.setdefault(key, [r.started_at, seq, r.suite])
        g[0] = max(g[0], r.started_at)
    return sorted([(*k, *v) for k, v in groups.items()], key=lambda g: (g[0], g[1], g[2] is not None, g[2] or ""))


def _truth_not_finite(records: list, suite=None) -> list[dict]:
    counts: dict[tuple, int] = {}
    for r in records:
        if suite in (None, r.suite):
            for m in r.metrics:
                if m.value is None:
                    key = (r.suite, r.task, r.arm, m.name)
                    counts[key] = counts.get(key, 0) + 1
    return [dict(zip(["suite", "task", "arm", "name"], k), n=n) for k, n in sorted(counts.items())]


def _answers(store) -> dict:
    return {suite: (queries.group_rows(store, suite=suite), queries.run_count(store, suite=suite),
                    queries.not_finite_counts(store, suite=suite)) for suite in (None, "a", "b", "c")}


@pytest.mark.parametrize("upgraded", [False, True])
def test_group_listing_counts_and_not_finite_counts_are_those_of_the_records(store_url, upgraded):
    """A store written at v10, and the same store taken back to v9 and upgraded by the next writer, answer
    what the records say: the runs without a finite metric are in no group, their columns say 0."""
    recs = _more_records()
    stored_and_upgraded(store_url, recs, back_to=9 if upgraded else None)
    with Store.open(store_url) as store:
        with store._tx() as conn:
            version = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar_one()
            finite = dict(conn.execute(text("SELECT run_id, has_finite_metric FROM runs")).all())
    assert version == str(SCHEMA_VERSION) == "12"
    assert finite == {r.run_id: int(any(m.value is not None for m in r.metrics)) for r in recs}
    assert 0 in finite.values() and 1 in finite.values()
    store = Store.open(store_url, read_only=True)
    expected = {suite: (_truth_groups(recs, suite), sum(suite in (None, r.suite) for r in recs),
                        _truth_not_finite(recs, suite)) for suite in (None, "a", "b", "c")}
    assert _answers(store) == expected
    groups = expected[None][0]
    assert ("cfg-nan", "hp-nan") not in {g[:2] for g in groups}  # all-NaN pair: no group
    assert [g[5] for g in groups if g[0] == "cfg-shared"] == ["b"]  # the first stored run's suite
    assert len({g[2] for g in groups if g[:2] == ("cfg-a1", "hp-1")}) == 2  # two power limits, two groups
    assert len({g[2] for g in groups if g[:2] == ("cfg-b2", "unknown")}) == 2  # 'unknown' and none merged
    assert expected[None][2] and expected["c"] == ([], 0, [])


def test_the_listing_reads_the_indexes_alone(tmp_path):
    """On SQLite the group listing scans runs_grouped as a covering index (no run row read, no sort) and the
    not-finite count reads metrics_not_finite alone: what makes them cost the groups, not the metrics."""
    path = tmp_path / "plans.sqlite"
    with Store.open(path) as store:
        store.add_many(_more_records())
        statements = []
        raw = store._conn.connection.driver_connection  # the sqlite3 connection: it shows the SQL it runs
        raw.set_trace_callback(statements.append)
        queries.group_rows(store)
        queries.group_rows(store, suite="a")
        queries.not_finite_counts(store, suite="a")
        raw.set_trace_callback(None)
        with store._tx() as conn:
            plans = [conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}").all() for s in statements if s.startswith("SELECT")]
    details = [" | ".join(row[3] for row in plan) for plan in plans]
    # each listing then reads its few distinct states' texts by id (store v12)
    state_texts = "SEARCH hardware_values USING INTEGER PRIMARY KEY (rowid=?)"
    assert len(details) == 5 and details[1] == details[3] == state_texts
    assert details[0] == "SCAN runs USING COVERING INDEX runs_grouped"
    assert details[2] == "SEARCH runs USING COVERING INDEX runs_grouped (suite=?)"
    assert "SCAN metrics USING COVERING INDEX metrics_not_finite" in details[4] and "runs_by_suite" not in details[4]


def test_postgresql_plans_the_listing_on_the_partial_index(pg_url):
    """The group listing's condition matches runs_grouped's on PostgreSQL too (inline literals: a generic
    plan would not match a bound parameter), shown by the plan when sequential scans are ruled out."""
    from sqlalchemy import func, select
    from sqlalchemy.dialects import postgresql

    from eitp_bench.store.layout import GROUPED_RUNS, RUNS

    with Store.open(pg_url) as store:
        store.add_many(_more_records())
        stmt = select(RUNS.c.suite, func.max(RUNS.c.seq)).where(GROUPED_RUNS).group_by(RUNS.c.suite)
        sql = str(stmt.compile(dialect=postgresql.dialect()))
        with store._tx() as conn:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = "\n".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}").all())
    assert "runs_grouped" in plan


def test_a_read_only_v9_store_asks_for_write_access_once(pg_url):
    """A v9 PostgreSQL store opened read-only is not upgraded: the existing one-line message."""
    with Store.open(pg_url) as store:
        store.add_many(_more_records()[:3])
        with store._tx(write=True) as conn:
            _back_to_v9(conn)
            conn.execute(text("UPDATE meta SET value = '9' WHERE key = 'schema_version'"))
    with pytest.raises(UserError) as err:
        Store.open(pg_url, read_only=True)
    assert "store schema v9; reading needs v12" in err.value.message
    assert "open it once with write access" in err.value.fix

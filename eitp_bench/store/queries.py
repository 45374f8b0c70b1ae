"""Questions a report asks of the whole store, answered in SQL so that only a few rows come back.

A report judges only the newest `max_groups` comparability groups (configuration hash × hardware
profile × energy state, analysis/resultset.py); every other stored run only needs to be counted. This
module lists those groups without reading the runs (`group_rows`; analysis/newest_groups.py orders
them), says which runs to read for the newest ones (`runs_of`, a condition for Store.*_frame(where=…)),
counts what the whole store shows beside them (`not_finite_counts`), and reads a series' columns alone
(`series_metrics`, `run_states`) for compare and regress. Each run's recorded hardware state is a column
of its own (runs.energy_state_json, store v9): no provenance JSON is parsed to group runs.
The SQL is SQLAlchemy Core: the same statements run on SQLite and PostgreSQL.

Orderings that the analysis takes from Python string comparison (max of started_at) are made bytewise
in SQL (PostgreSQL's default collation sorts text by language rules); sorting of the returned rows is
done in Python, as the analysis does.
"""

from __future__ import annotations

import json
from typing import Iterable, Optional

from eitp_bench.store.database import _reading
from eitp_bench.store.layout import RUNS, TABLES


def _bytewise(column, dialect: str):
    """`column` compared byte by byte (Python's str order) on both backends."""
    return column.collate("C") if dialect == "postgresql" else column


def _profile():
    from sqlalchemy import func

    return func.coalesce(RUNS.c.hardware_profile_id, "unknown")


def _has_finite_metric():
    """The run has a metric the analysis reads (a null value was NaN/inf: frames.not_finite)."""
    from sqlalchemy import exists

    m = TABLES["metrics"]
    return exists().where(m.c.run_id == RUNS.c.run_id, m.c.value.is_not(None))


def _suite_filter(suite: Optional[str]) -> list:
    return [] if suite is None else [RUNS.c.suite == suite]


@_reading
def group_rows(store, *, suite: Optional[str] = None) -> list[tuple]:
    """(configuration hash, hardware profile, recorded state JSON, newest started_at, first seq, suite of
    that first run) per distinct (configuration, profile, state JSON) of the ok runs with a finite metric:
    what analysis/newest_groups.py turns into ResultSet's groups. Profile 'unknown' where none was stored
    (resultset._keyed)."""
    from sqlalchemy import func, select

    dialect = store.dialect
    # grouped over a subquery's columns: PostgreSQL would not match a GROUP BY expression whose literals
    # are bound as parameters of their own
    runs = (select(RUNS.c.suite_config_hash.label("config_hash"), _profile().label("profile"),
                   RUNS.c.energy_state_json.label("state"), _bytewise(RUNS.c.started_at, dialect).label("started_at"),
                   RUNS.c.seq)
            .where(RUNS.c.status == "ok", _has_finite_metric(), *_suite_filter(suite)).subquery())
    stmt = (select(runs.c.config_hash, runs.c.profile, runs.c.state, func.max(runs.c.started_at), func.min(runs.c.seq))
            .group_by(runs.c.config_hash, runs.c.profile, runs.c.state))
    with store._tx() as conn:
        rows = conn.execute(stmt).all()
        firsts = sorted({row[4] for row in rows})
        suite_of = {}
        for i in range(0, len(firsts), 500):
            chunk = firsts[i:i + 500]
            suite_of.update(conn.execute(select(RUNS.c.seq, RUNS.c.suite).where(RUNS.c.seq.in_(chunk))).all())
    return [(str(h), str(p), state, str(latest), int(first), str(suite_of[first]))
            for h, p, state, latest, first in rows]


def parsed_state(text):
    """A runs.energy_state_json back as the value provenance held (None: not recorded or not JSON)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:  # a JSON string value comes back unquoted from SQLite's json_extract (migration v9)
        return None


def runs_of(pairs: Iterable[tuple[str, str]], *, suite: Optional[str] = None):
    """A condition on the runs table that keeps every run (any status) of these (configuration hash,
    hardware profile) pairs ('unknown': none stored); None when there are none. Whole pairs, every energy
    state of them: a group's NOT COMPARABLE note names its pair's other states. Written on the bare
    columns (no COALESCE) so the runs_by_group index serves it."""
    from sqlalchemy import and_, or_

    pairs = sorted(set(pairs))
    if not pairs:
        return None
    profile = RUNS.c.hardware_profile_id

    def same_profile(p: str):
        return or_(profile == p, profile.is_(None)) if p == "unknown" else profile == p

    return and_(or_(*(and_(RUNS.c.suite_config_hash == h, same_profile(p)) for h, p in pairs)), *_suite_filter(suite))


def not_finite_counts(store, *, suite: Optional[str] = None) -> list[dict]:
    """Metric rows stored as null (NaN/inf) per (suite, task, arm, name): the warnings' `not_finite`."""
    from sqlalchemy import func, select

    m = TABLES["metrics"]
    stmt = (select(RUNS.c.suite, RUNS.c.task, RUNS.c.arm, m.c.name, func.count())
            .join_from(m, RUNS, m.c.run_id == RUNS.c.run_id)
            .where(m.c.value.is_(None), *_suite_filter(suite))
            .group_by(RUNS.c.suite, RUNS.c.task, RUNS.c.arm, m.c.name))
    with store._tx() as conn:
        rows = conn.execute(stmt).all()
    keys = ["suite", "task", "arm", "name"]
    return [dict(zip(keys, row[:4]), n=int(row[4])) for row in sorted(rows, key=lambda r: r[:4])]


def suites(store) -> list[str]:
    """The suite names stored (what `--suite` may name)."""
    from sqlalchemy import select

    with store._tx() as conn:
        return sorted(map(str, conn.execute(select(RUNS.c.suite).distinct()).scalars()))


def run_count(store, *, suite: Optional[str] = None) -> int:
    from sqlalchemy import func, select

    with store._tx() as conn:
        return conn.execute(select(func.count()).select_from(RUNS).where(*_suite_filter(suite))).scalar_one()


# Columns of a metric series (analysis/regress.py, analysis/compare.py), in the metrics frame's names
SERIES_RUN_COLUMNS = ["suite", "suite_config_hash", "task", "arm", "hardware_profile_id", "started_at", "status"]


def series_metrics(store, *, names: Optional[Iterable[str]] = None):
    """The ok runs' finite metric values with only the columns a series needs, in store order (the rows
    and order of the metrics frame, restricted to ok runs and to `names` when given)."""
    from sqlalchemy import select

    m = TABLES["metrics"]
    stmt = (select(m.c.run_id, *(RUNS.c[c] for c in SERIES_RUN_COLUMNS), m.c.name, m.c.value)
            .join_from(m, RUNS, m.c.run_id == RUNS.c.run_id)
            .where(RUNS.c.status == "ok", m.c.value.is_not(None))
            .order_by(RUNS.c.seq, m.c.idx))
    if names is not None:
        stmt = stmt.where(m.c.name.in_(sorted(set(names))))
    df = store._frame(stmt)
    df["value"] = df["value"].astype(float)
    return df


@_reading
def series_names(store) -> list[str]:
    """Every stored metric name, sorted: regress reads one name's series at a time (analysis/regress.py:
    store_changes). Read from the metrics_by_name index alone; a name without a finite value in an ok run
    reads back no rows."""
    from sqlalchemy import select

    m = TABLES["metrics"]
    with store._tx() as conn:
        return sorted(map(str, conn.execute(select(m.c.name).distinct()).scalars()))


@_reading
def series_runs(store):
    """run_id and hardware_profile_id of the runs of series_metrics (ok, a finite metric) that recorded a
    hardware state, one row each: regress decides from them, once, whether a profile's series are split by
    board (a run without a recorded state has no board)."""
    from sqlalchemy import select

    stmt = (select(RUNS.c.run_id, RUNS.c.hardware_profile_id)
            .where(RUNS.c.status == "ok", RUNS.c.energy_state_json.is_not(None), _has_finite_metric())
            .order_by(RUNS.c.seq))
    return store._frame(stmt)


@_reading
def run_states(store):
    """run_id and `hardware.state` (parsed) of the ok runs that recorded one: the provenance that
    hwstate.with_state reads to key series by energy state and board."""
    import pandas as pd
    from sqlalchemy import select

    state = RUNS.c.energy_state_json
    stmt = select(RUNS.c.run_id, state).where(RUNS.c.status == "ok", state.is_not(None)).order_by(RUNS.c.seq)
    with store._tx() as conn:
        rows = [(run_id, parsed_state(text)) for run_id, text in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=["run_id", "hardware.state"]) if rows else pd.DataFrame(columns=["run_id"])


# Rows of metric_values, a chunk at a time: the analysis combines a round's copies while they stream past
METRIC_VALUE_COLUMNS = ["run_id", "idx", "name", "window", "value", "unit", "flags_json"]


@_reading
def metric_values(store, where, consume, *, chunk_rows: int = 20_000) -> None:
    """Hands `consume` the finite metric rows of the ok runs that `where` keeps (a condition from runs_of),
    `chunk_rows` driver tuples (METRIC_VALUE_COLUMNS) at a time, in no particular order: the judge's rounds
    are computed from them (analysis/stored_rounds.py) without a frame of every row ever existing."""
    from sqlalchemy import select

    m = TABLES["metrics"]
    stmt = (select(*(m.c[c] for c in METRIC_VALUE_COLUMNS))
            .join_from(m, RUNS, m.c.run_id == RUNS.c.run_id)
            .where(where, RUNS.c.status == "ok", m.c.value.is_not(None)))
    with store._driver_cursor(stmt) as cursor:
        while rows := cursor.fetchmany(chunk_rows):
            consume(rows)

"""Questions a report asks of the whole store, answered in SQL so that only a few rows come back.

A report judges only the newest `max_groups` comparability groups (configuration hash × hardware
profile × energy state, analysis/resultset.py); every other stored run only needs to be counted. This
module finds those groups without reading the runs (`verdict_groups`), reads the frames of the newest
ones only (`scoped_run_ids`), and counts what the whole store shows beside them (`not_finite_counts`).
The SQL is SQLAlchemy Core: the same statements run on SQLite and PostgreSQL.

Orderings that the analysis takes from Python string comparison (max of started_at) are made bytewise
in SQL (PostgreSQL's default collation sorts text by language rules); sorting of the returned rows is
done in Python, as the analysis does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Optional

from eitp_bench.store import _reading
from eitp_bench.store_layout import RUNS, TABLES


@dataclass(frozen=True)
class StoredGroup:
    """One comparability group as `ResultSet.groups()` would find it, from SQL aggregates."""

    config_hash: str
    hardware_profile_id: str  # 'unknown' where the run stored none (resultset._keyed)
    energy_state: str  # hwstate.state_label of its runs' recorded state ('' = none)
    suite: str  # the suite of its first stored run (the name the group is shown under)
    latest: str  # its newest run's started_at
    first_seq: int  # store order of its first run: the order pandas meets the groups in

    @property
    def label(self) -> str:
        """How an omitted group is listed (findings._verdict_groups)."""
        return f"{self.suite} ({self.config_hash[:8]}) · {self.hardware_profile_id}"


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
def verdict_groups(store, *, suite: Optional[str] = None) -> list[StoredGroup]:
    """Every comparability group of the ok runs with finite metrics, newest first (ResultSet.groups' order)."""
    import pandas as pd
    from sqlalchemy import func, select

    from eitp_bench.analysis.hwstate import energy_state, state_label

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
        merged: dict[tuple, list] = {}
        for config_hash, profile, text, latest, first in rows:  # several state texts may read the same label
            key = (str(config_hash), str(profile), state_label(energy_state(_parsed(text))))
            seen = merged.setdefault(key, [latest, first])
            seen[0], seen[1] = max(seen[0], latest), min(seen[1], first)
        firsts = sorted({v[1] for v in merged.values()})
        suite_of = {}
        for i in range(0, len(firsts), 500):
            chunk = firsts[i:i + 500]
            suite_of.update(conn.execute(select(RUNS.c.seq, RUNS.c.suite).where(RUNS.c.seq.in_(chunk))).all())
    keys = sorted(merged, key=lambda k: merged[k][1])  # first-seen order, as pandas groups them
    # the same sort as ResultSet.groups (sort_values, descending), on the same first-seen order
    order = pd.Series([merged[k][0] for k in keys]).sort_values(ascending=False).index
    return [StoredGroup(*keys[i], suite=str(suite_of[merged[keys[i]][1]]), latest=str(merged[keys[i]][0]),
                        first_seq=int(merged[keys[i]][1])) for i in order]


def _parsed(text):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:  # SQLite returns a JSON string value unquoted: not a state mapping
        return None


def runs_of(groups: Iterable[StoredGroup], *, suite: Optional[str] = None):
    """A condition on the runs table that keeps every run (any status) of these groups' (configuration,
    hardware profile) pairs; None when there are none.

    Whole pairs are kept, every energy state of them: a group's NOT COMPARABLE note names its pair's other
    states (resultset._not_pooled_notes). Written on the bare columns (no COALESCE) so the
    runs_by_group index serves it."""
    from sqlalchemy import and_, or_

    pairs = sorted({(g.config_hash, g.hardware_profile_id) for g in groups})
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
def run_states(store):
    """run_id and `hardware.state` (parsed) of the ok runs that recorded one: the provenance that
    hwstate.with_state reads to key series by energy state and board."""
    import pandas as pd
    from sqlalchemy import select

    state = RUNS.c.energy_state_json
    stmt = select(RUNS.c.run_id, state).where(RUNS.c.status == "ok", state.is_not(None)).order_by(RUNS.c.seq)
    with store._tx() as conn:
        rows = [(run_id, _parsed(text)) for run_id, text in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=["run_id", "hardware.state"]) if rows else pd.DataFrame(columns=["run_id"])

"""Questions a report asks of the whole store, answered in SQL so that only a few rows come back.

A report judges only the newest `max_groups` comparability groups (configuration hash × hardware
profile × energy state, analysis/resultset.py); every other stored run only needs to be counted. This
module lists those groups without reading the runs (`group_rows`; analysis/newest_groups.py orders
them), says which runs to read for the newest ones (`runs_of`, a condition for Store.*_frame(where=…)),
counts what the whole store shows beside them (`not_finite_counts`), and reads a series' columns alone
(`series_metrics`, `state_values`) for compare and regress. Each run's recorded hardware state is a column
of its own (runs.energy_state_id, store v12: the id of its text in hardware_values): no provenance JSON is
parsed to group runs. Whether a run has
a finite metric is a column too (runs.has_finite_metric, store v10), and the groups are listed from one
partial index (runs_grouped): listing them reads no metric row and no run row.
The SQL is SQLAlchemy Core: the same statements run on SQLite and PostgreSQL.

Orderings that the analysis takes from Python string comparison (max of started_at) are made bytewise
in SQL (PostgreSQL's default collation sorts text by language rules); sorting of the returned rows is
done in Python, as the analysis does.
"""

from __future__ import annotations

import json
from typing import Iterable, Iterator, Optional

from eitp_bench.store.database import ALTERED_READS, _reading, altered_read
from eitp_bench.store.hardware_values import value_texts
from eitp_bench.store.layout import GROUPED_RUNS, RUNS, TABLES


def _bytewise(column, dialect: str):
    """`column` compared byte by byte (Python's str order) on both backends."""
    return column.collate("C") if dialect == "postgresql" else column


def _has_finite_metric():
    """The run has a metric the analysis reads (a null value was NaN/inf: frames.not_finite): its
    runs.has_finite_metric (store v10), written with the run, so no metric row is read to know it."""
    from sqlalchemy import literal_column

    return RUNS.c.has_finite_metric == literal_column("1")


def _suite_filter(suite: Optional[str]) -> list:
    return [] if suite is None else [RUNS.c.suite == suite]


@_reading
def group_rows(store, *, suite: Optional[str] = None) -> list[tuple]:
    """(configuration hash, hardware profile, recorded state JSON, newest started_at, first seq, suite of
    that first run) per distinct (configuration, profile, state JSON) of the ok runs with a finite metric:
    what analysis/newest_groups.py turns into ResultSet's groups. Profile 'unknown' where none was stored
    (resultset._keyed). Sorted by (configuration, profile, state; no state first)."""
    from sqlalchemy import func, select

    # Read from the runs_grouped index alone (store/layout.py): its condition written as the index's, and
    # grouped by its leading columns as stored (suite first, the profile not yet 'unknown'), so the groups
    # stream out of the index in order. The few rows per group (one per suite and per null/'unknown'
    # profile) are merged here: newest of the newest, first of the firsts.
    started_at = _bytewise(RUNS.c.started_at, store.dialect)
    keys = (RUNS.c.suite, RUNS.c.suite_config_hash, RUNS.c.hardware_profile_id, RUNS.c.energy_state_id)
    stmt = (select(*keys, func.max(started_at), func.min(RUNS.c.seq))
            .where(GROUPED_RUNS, *_suite_filter(suite)).group_by(*keys))
    with store._tx() as conn:
        rows = conn.execute(stmt).all()
    states = value_texts(store, {row[3] for row in rows if row[3] is not None})  # a few distinct states
    groups: dict[tuple, list] = {}
    for run_suite, config_hash, profile, state_id, latest, first in rows:
        state = None if state_id is None else states[state_id]
        key = (str(config_hash), "unknown" if profile is None else str(profile), state)
        latest, first = str(latest), int(first)
        seen = groups.setdefault(key, [latest, first, str(run_suite)])
        if latest > seen[0]:  # str order is byte order of UTF-8: the bytewise max of SQL
            seen[0] = latest
        if first < seen[1]:
            seen[1:] = [first, str(run_suite)]
    return [(h, p, state, latest, first, first_suite)
            for (h, p, state), (latest, first, first_suite) in sorted(groups.items(), key=_group_order)]


def _group_order(item) -> tuple:
    (h, p, state), _ = item
    return h, p, state is not None, state or ""


def parsed_state(text):
    """A stored state's JSON text back as the value provenance held (None: not recorded or not JSON)."""
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


def not_finite_counts(store, *, suite: Optional[str] = None, where=None) -> list[dict]:
    """Metric rows stored as null (NaN/inf) per (suite, task, arm, name): the warnings' `not_finite`.
    `where`: of the runs that condition keeps only (runs_of: the runs a report's sections describe)."""
    from sqlalchemy import func, select

    m = TABLES["metrics"]
    # The null rows are counted per run first, from the metrics_not_finite index alone (store/layout.py),
    # then joined to their runs: the cost follows the null rows, not the runs of the store or suite (a
    # plain join would let the planner walk every run of the suite and probe its metrics).
    nulls = (select(m.c.run_id, m.c.name, func.count().label("n")).where(m.c.value.is_(None))
             .group_by(m.c.run_id, m.c.name).subquery())
    stmt = (select(RUNS.c.suite, RUNS.c.task, RUNS.c.arm, nulls.c.name, func.sum(nulls.c.n))
            .join_from(nulls, RUNS, nulls.c.run_id == RUNS.c.run_id)
            .where(*_suite_filter(suite), *([] if where is None else [where]))
            .group_by(RUNS.c.suite, RUNS.c.task, RUNS.c.arm, nulls.c.name))
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


@_reading
def store_state(store) -> tuple[int, int]:
    """(runs stored, newest seq; 0 when empty): any run stored or removed since moves one of them (a stored
    run never changes), so the history site knows from them alone that it is current."""
    from sqlalchemy import func, select

    with store._tx() as conn:
        count, last = conn.execute(select(func.count(), func.max(RUNS.c.seq)).select_from(RUNS)).one()
    return int(count), int(last or 0)


# Columns of a metric series (analysis/regress.py, analysis/compare.py), in the metrics frame's names
SERIES_RUN_COLUMNS = ["suite", "suite_config_hash", "task", "arm", "hardware_profile_id", "started_at", "status"]
# ...and those regress and the history site read (a series' keys and its time: the configuration hash
# was 17 MiB of text per metric name at 1 000 000 records, and the status is 'ok' on every row read)
CHANGE_RUN_COLUMNS = ["suite", "task", "arm", "hardware_profile_id", "started_at"]


def provenance_field(dialect: str, field: str):
    """A top-level text field of each run's provenance (git_commit, eitp_bench_version), extracted by the
    database: no provenance JSON is parsed in Python."""
    from sqlalchemy import JSON, case, cast, func

    text = RUNS.c.provenance_json
    if dialect == "postgresql":
        return func.json_extract_path_text(cast(text, JSON), field).label(field)
    # a provenance edited into malformed JSON reads as no value (json_extract would fail the whole read)
    return case((func.json_valid(text) == 1, func.json_extract(text, f"$.{field}")), else_=None).label(field)


# Columns a caller may add to series_metrics: the history site shows each point's unit, and finds its
# commit by its run's seq (analysis/history_commits.py); compare and regress label each row's hardware
# state by its run's energy_state_id (hwstate.StateLabels, from state_values)
SERIES_EXTRA = ("unit", "seq", "energy_state_id")


@_reading
def series_metrics(store, *, names: Optional[Iterable[str]] = None, extra: Iterable[str] = (),
                   config_hash: Optional[str] = None, run_columns: Iterable[str] = SERIES_RUN_COLUMNS):
    """The ok runs' finite metric values with only the columns a series needs, in store order (the rows
    and order of the metrics frame, restricted to ok runs, to `names` and to one configuration when
    given): the run's `run_columns`, the metric's name and value, plus `extra` (SERIES_EXTRA) columns."""
    m = TABLES["metrics"]
    stmt = _series_rows(extra, run_columns).order_by(RUNS.c.seq, m.c.idx)
    if names is not None:
        stmt = stmt.where(m.c.name.in_(sorted(set(names))))
    if config_hash is not None:  # runs_by_group serves it: that configuration's runs, then their metrics
        stmt = stmt.where(RUNS.c.suite_config_hash == config_hash)
    return _checked(store._frame(stmt))


# what a page of the history site is, and regress reads at a time: a series never spans two of these
PAGE_RUN_COLUMNS = ("suite", "task", "arm")


def series_pages(store, names: Iterable[str], *, by: Iterable[str] = PAGE_RUN_COLUMNS, extra: Iterable[str] = (),
                 run_columns: Iterable[str] = CHANGE_RUN_COLUMNS, config_hash: Optional[str] = None) -> Iterator:
    """series_metrics' rows of these metric names (of one configuration when given), a frame per value of
    the run columns `by` with every row of it (in store order), one frame at a time: regress and the history
    site hold one page's rows (a name × suite × task × arm), compare one task × arm of a configuration,
    never a whole name's (272 727 rows at 1 000 000 records) or configuration's. Empty: no frame. The pages
    come in the database's order of their keys (text order differs between SQLite and PostgreSQL): callers
    order what they find."""
    from eitp_bench.store.column_read import frames_by_key

    run_columns, by = list(run_columns), list(by)
    if not set(by) <= set(run_columns):
        raise ValueError(f"series_pages reads its page columns {by} among the run columns")
    m = TABLES["metrics"]
    stmt = (_series_rows(extra, run_columns).where(m.c.name.in_(sorted(set(names))))
            .order_by(*(RUNS.c[c] for c in by), RUNS.c.seq, m.c.idx))
    if config_hash is not None:
        stmt = stmt.where(RUNS.c.suite_config_hash == config_hash)
    with store._driver_cursor(stmt) as cursor:
        pages = frames_by_key(cursor, [1 + run_columns.index(c) for c in by])  # 0: run_id
        while True:
            try:  # the reading only: what the caller does with a page never comes back in here
                df = next(pages, None)
                if df is None:
                    return
                df = _checked(df)
            except ALTERED_READS as err:
                raise altered_read(store, err) from None
            yield df


def _checked(df):
    """A series read's rows with float values, and start times that parse as the history site parses them:
    a value eitp-bench never writes (the store edited by hand) raises here, not deep in the analysis
    (callers say it in one line). Parsed in one vectorised call: 0.7 s of `regress` at 1 000 000 records."""
    import pandas as pd

    df["value"] = df["value"].astype(float)
    if "started_at" in df.columns:
        pd.to_datetime(df["started_at"], utc=True, format="ISO8601")
    return df


def _series_rows(extra: Iterable[str], run_columns: Iterable[str]):
    """The SELECT of series_metrics and series_pages, with no order, name or configuration yet."""
    from sqlalchemy import select

    m = TABLES["metrics"]
    added = {"unit": m.c.unit, "seq": RUNS.c.seq, "energy_state_id": RUNS.c.energy_state_id}
    return (select(m.c.run_id, *(RUNS.c[c] for c in run_columns), m.c.name, m.c.value, *(added[c] for c in extra))
            .join_from(m, RUNS, m.c.run_id == RUNS.c.run_id)
            .where(RUNS.c.status == "ok", m.c.value.is_not(None)))


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
def config_hashes(store) -> list[str]:
    """Every stored configuration hash, sorted (from the runs_by_group index)."""
    from sqlalchemy import select

    with store._tx() as conn:
        return sorted(map(str, conn.execute(select(RUNS.c.suite_config_hash).distinct()).scalars()))


@_reading
def profile_states(store):
    """Each distinct (hardware_profile_id, energy_state_id) of the runs of series_metrics (ok, a finite
    metric) that recorded a hardware state: regress decides from them, once, whether a profile's series
    are split by board (a run without a recorded state has no board). A few rows, however many runs."""
    from sqlalchemy import select

    stmt = (select(RUNS.c.hardware_profile_id, RUNS.c.energy_state_id)
            .where(RUNS.c.status == "ok", RUNS.c.energy_state_id.is_not(None), _has_finite_metric())
            .distinct())
    return store._frame(stmt)


@_reading
def state_values(store, *, config_hash: Optional[str] = None) -> dict:
    """{energy_state_id: the parsed `hardware.state`} of every state the ok runs recorded (of one
    configuration when given): hwstate.StateLabels labels series_metrics' rows by their energy_state_id
    from them. One row per distinct state comes back, never one per run."""
    from sqlalchemy import select

    state = RUNS.c.energy_state_id
    stmt = select(state).where(RUNS.c.status == "ok", state.is_not(None)).distinct()
    if config_hash is not None:
        stmt = stmt.where(RUNS.c.suite_config_hash == config_hash)
    with store._tx() as conn:
        ids = {int(i) for i in conn.execute(stmt).scalars()}
    # each distinct state parsed once (read-only: hwstate reads by object)
    return {int(i): parsed_state(text) for i, text in value_texts(store, ids).items()}


# Rows of metric_values, a chunk at a time: the analysis combines a round's copies while they stream past.
# A row names its run by runs.seq (an int: the run_id text made again for each of a million rows cost
# 0.1 s more), and its flags_json is None where the row has no flag ('[]', most rows: no text made for them)
METRIC_VALUE_COLUMNS = ["seq", "idx", "name", "window", "value", "unit", "flags_json"]


@_reading
def metric_values(store, where, consume, *, chunk_rows: int = 20_000) -> None:
    """Hands `consume` the finite metric rows of the ok runs that `where` keeps (a condition from runs_of),
    `chunk_rows` driver tuples (METRIC_VALUE_COLUMNS) at a time, in no particular order: the judge's rounds
    are computed from them (analysis/stored_rounds.py) without a frame of every row ever existing.
    Store.runs_and_seqs says which run each seq is."""
    from sqlalchemy import case, null, select

    m = TABLES["metrics"]
    own = {"seq": RUNS.c.seq, "flags_json": case((m.c.flags_json == "[]", null()), else_=m.c.flags_json)}
    stmt = (select(*(own.get(c, m.c.get(c)) for c in METRIC_VALUE_COLUMNS))
            .join_from(m, RUNS, m.c.run_id == RUNS.c.run_id)
            .where(where, RUNS.c.status == "ok", m.c.value.is_not(None)))
    with store._driver_cursor(stmt) as cursor:
        while rows := cursor.fetchmany(chunk_rows):
            consume(rows)


# ---- the latest figures per series (exporters/openmetrics.py) -----------------------------------
# A series' latest run is its newest started_at (Python's str order: bytewise in SQL); runs that share it
# are told apart afterwards, in store order, from the few rows of those runs (Store.*_frame(where=…)).

METRIC_SERIES_COLUMNS = ["suite", "arm", "task", "device", "hardware_profile_id", "name", "newest", "n"]


@_reading
def metric_series(store) -> list[tuple]:
    """Per (suite, arm, task, run device, hardware profile, metric name) of the ok runs' finite metric
    values: its newest started_at and its number of values (METRIC_SERIES_COLUMNS), in no order. One
    aggregate in SQL: one row per series comes back, however many runs the store holds."""
    from sqlalchemy import func, select

    m = TABLES["metrics"]
    keys = (RUNS.c.suite, RUNS.c.arm, RUNS.c.task, RUNS.c.device, RUNS.c.hardware_profile_id, m.c.name)
    stmt = (select(*keys, func.max(_bytewise(RUNS.c.started_at, store.dialect)), func.count())
            .join_from(m, RUNS, m.c.run_id == RUNS.c.run_id)
            .where(RUNS.c.status == "ok", m.c.value.is_not(None)).group_by(*keys))
    with store._tx() as conn:
        return [tuple(row) for row in conn.execute(stmt)]


@_reading
def energy_series_newest(store, methods: Iterable[str]) -> set[str]:
    """The newest started_at of each energy series (suite, arm, task, window, host, device, domain,
    hardware profile, method) of the ok runs' entries of these methods, whatever their joules: a faulted
    latest entry is still the latest (the exporter leaves it out, never an older figure in its place)."""
    from sqlalchemy import func, select

    e = TABLES["energy"]
    keys = (RUNS.c.suite, RUNS.c.arm, RUNS.c.task, e.c.window, func.coalesce(e.c.host, ""), e.c.device, e.c.domain,
            RUNS.c.hardware_profile_id, e.c.method)
    stmt = (select(func.max(_bytewise(RUNS.c.started_at, store.dialect)))
            .join_from(e, RUNS, e.c.run_id == RUNS.c.run_id)
            .where(RUNS.c.status == "ok", e.c.method.in_(sorted(set(methods)))).group_by(*keys))
    with store._tx() as conn:
        return {str(v) for v in conn.execute(stmt).scalars()}


def ok_runs_started_at(started: Iterable[str]) -> list:
    """Conditions on the runs table, each keeping the ok runs started at one of a chunk of these times.
    Every run started at the same time is in the same chunk (a chunk is a set of times), so each chunk's
    rows keep the store order that ties are broken by."""
    from sqlalchemy import and_

    values = sorted(set(started))
    return [and_(RUNS.c.status == "ok", RUNS.c.started_at.in_(values[i:i + _TIMES_CHUNK]))
            for i in range(0, len(values), _TIMES_CHUNK)]


_TIMES_CHUNK = 500


def _digit_shape(column):
    """The text with every digit made 0: ISO times of one shape differ in their digits alone."""
    from sqlalchemy import func

    for digit in "123456789":
        column = func.replace(column, digit, "0")
    return column


@_reading
def finished_candidates(store) -> list[tuple]:
    """(suite, arm, task, hardware profile, finished_at) of the ok runs: per (suite, arm, task, profile) the
    bytewise greatest finished_at of each shape of ISO time (digits made 0) and UTC offset (its last six
    characters when they read ±HH:MM). Within one shape and offset, byte order is time order, so the
    latest finished_at of a (suite, arm, task, profile) is among these few rows: one per key for a store
    written by eitp-bench (records.utc_now)."""
    from sqlalchemy import case, func, select

    finished = RUNS.c.finished_at
    tail = func.substr(finished, func.length(finished) - 5)
    offset = case((func.substr(tail, 1, 1).in_(["+", "-"]) & (func.substr(tail, 4, 1) == ":"), tail), else_="")
    keys = (RUNS.c.suite, RUNS.c.arm, RUNS.c.task, RUNS.c.hardware_profile_id)
    stmt = (select(*keys, func.max(_bytewise(finished, store.dialect)))
            .where(RUNS.c.status == "ok", finished.is_not(None))
            .group_by(*keys, _digit_shape(finished), offset))
    with store._tx() as conn:
        return [tuple(row) for row in conn.execute(stmt)]


# The history site's run pages (report/history_site.py): the runs of series_metrics (ok, a finite metric)
# grouped by start date (its first ten characters: YYYY-MM-DD, UTC as eitp-bench writes it) and profile


def _run_date():
    from sqlalchemy import func

    return func.substr(RUNS.c.started_at, 1, 10)


@_reading
def run_groups(store) -> list[tuple]:
    """(date, hardware profile or None, run count, newest seq) per run page: whether a page must be
    rewritten is decided from these alone (a stored run never changes; a new or removed one moves them)."""
    from sqlalchemy import func, select

    date = _run_date().label("date")
    stmt = (select(date, RUNS.c.hardware_profile_id, func.count(), func.max(RUNS.c.seq))
            .where(RUNS.c.status == "ok", _has_finite_metric()).group_by(date, RUNS.c.hardware_profile_id))
    with store._tx() as conn:
        rows = conn.execute(stmt).all()
    return sorted(((str(d), p, int(n), int(s)) for d, p, n, s in rows), key=lambda r: (r[0], r[1] is None, r[1] or ""))


GROUP_RUN_COLUMNS = ["run_id", "suite", "task", "arm", "started_at", "hardware_profile_id", "suite_config_hash",
                     "seq"]


@_reading
def group_run_rows(store, dates: list[str], consume, *, chunk_rows: int = 20_000) -> None:
    """Hands `consume(run, metrics)` each ok run with a finite metric started on one of `dates`, in store
    order: `run` a dict (GROUP_RUN_COLUMNS, eitp_bench_version), `metrics` its stored rows as (name,
    value or None where not finite, unit, window). Streamed: one run's rows held at a time."""
    from sqlalchemy import case, select

    if not dates:
        return
    m = TABLES["metrics"]
    # the version is parsed out of the provenance JSON once per run (its first metric row), not per row
    version = case((m.c.idx == 0, provenance_field(store.dialect, "eitp_bench_version")), else_=None)
    names = [*GROUP_RUN_COLUMNS, "eitp_bench_version"]
    stmt = (select(*(RUNS.c[c] for c in GROUP_RUN_COLUMNS), version, m.c.name, m.c.value, m.c.unit, m.c.window)
            .join_from(RUNS, m, m.c.run_id == RUNS.c.run_id)
            .where(RUNS.c.status == "ok", _has_finite_metric(), _run_date().in_(sorted(set(dates))))
            .order_by(RUNS.c.seq, m.c.idx))
    width = len(names)
    run, metrics = None, []
    with store._driver_cursor(stmt) as cursor:
        while rows := cursor.fetchmany(chunk_rows):
            for row in rows:
                if run is None or row[0] != run["run_id"]:
                    if run is not None:
                        consume(run, metrics)
                    run, metrics = dict(zip(names, row[:width])), []
                metrics.append(tuple(row[width:]))
    if run is not None:
        consume(run, metrics)


@_reading
def run_at_seq(store, seq: int):
    """The run_id stored at `seq` (None if none)."""
    from sqlalchemy import select

    with store._tx() as conn:
        return conn.execute(select(RUNS.c.run_id).where(RUNS.c.seq == seq)).scalar()


@_reading
def run_commits_after(store, seq: int, *, chunk_rows: int = 20_000):
    """(seq, run_id, provenance.git_commit) of the ok runs with a finite metric stored after `seq`, in
    store order, a chunk at a time (analysis/history_commits.py keeps them)."""
    from sqlalchemy import select

    stmt = (select(RUNS.c.seq, RUNS.c.run_id, provenance_field(store.dialect, "git_commit"))
            .where(RUNS.c.status == "ok", _has_finite_metric(), RUNS.c.seq > seq).order_by(RUNS.c.seq))
    with store._driver_cursor(stmt) as cursor:
        while rows := cursor.fetchmany(chunk_rows):
            yield from rows


@_reading
def run_commits(store, run_ids: Iterable[str]) -> dict[str, str]:
    """run_id → provenance.git_commit of a few runs (the index's confirmed changes)."""
    from sqlalchemy import select

    wanted = sorted(set(run_ids))
    out: dict[str, str] = {}
    commit = provenance_field(store.dialect, "git_commit")
    with store._tx() as conn:
        for i in range(0, len(wanted), 500):
            stmt = select(RUNS.c.run_id, commit).where(RUNS.c.run_id.in_(wanted[i:i + 500]))
            out.update({str(r): str(c) for r, c in conn.execute(stmt) if c is not None})
    return out

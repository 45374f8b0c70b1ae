"""Store schema versions: a new store is created from the layout, an older one is brought up to date.

A store at version 0 (a new SQLite file, an empty PostgreSQL database) gets `store.layout.METADATA`
as declared today and is marked SCHEMA_VERSION: no history to replay. A store at version n ≥ 1 gets
MIGRATIONS[n:], each a function of an open SQLAlchemy connection inside the migration's transaction.
Steps up to v4 are SQLite history (only SQLite stores existed then); from v5 on a step must run on
both SQLite and PostgreSQL (branch on `conn.dialect.name` where their DDL differs). The frozen DDL of
old steps is history: a test checks that replaying it ends in the models' layout.
"""

from __future__ import annotations

import json
from itertools import groupby
from typing import Callable

from sqlalchemy import Connection, inspect, select, text, update
from sqlalchemy import text as text_sql

from eitp_bench.errors import UserError
from eitp_bench.records import upgrade_record
from eitp_bench.store.layout import APP_MARKER, META, METADATA


def _script(conn: Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.exec_driver_sql(statement)


def _v1_create_tables(conn: Connection) -> None:
    _script(
        conn,
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            record_schema_version INTEGER NOT NULL,
            suite TEXT NOT NULL,
            suite_config_hash TEXT NOT NULL,
            arm TEXT NOT NULL,
            task TEXT NOT NULL,
            size TEXT NOT NULL,
            seed INTEGER NOT NULL,
            repetition INTEGER NOT NULL,
            device TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            error TEXT,
            hardware_profile_id TEXT,
            config_json TEXT NOT NULL,
            provenance_json TEXT NOT NULL
        );
        CREATE TABLE metrics (
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            name TEXT NOT NULL,
            value REAL NOT NULL,
            unit TEXT NOT NULL,
            window TEXT,
            PRIMARY KEY (run_id, idx)
        );
        CREATE TABLE energy (
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            window TEXT NOT NULL,
            device TEXT NOT NULL,
            domain TEXT NOT NULL,
            joules REAL,
            method TEXT NOT NULL,
            meter TEXT NOT NULL,
            duration_s REAL NOT NULL,
            samples INTEGER NOT NULL,
            max_gap_s REAL,
            wraps INTEGER NOT NULL,
            flags_json TEXT NOT NULL,
            idle_watts REAL,
            net_joules REAL,
            PRIMARY KEY (run_id, idx)
        );
        CREATE TABLE timeline (
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            window TEXT NOT NULL,
            device TEXT NOT NULL,
            domain TEXT NOT NULL,
            t REAL NOT NULL,
            watts REAL NOT NULL,
            PRIMARY KEY (run_id, idx)
        );
        CREATE INDEX runs_by_suite ON runs(suite, arm, task);
        CREATE INDEX metrics_by_name ON metrics(name);
        """,
    )


def _v2_add_stored_at(conn: Connection) -> None:
    # v2: when a run landed in this store (differs from started_at for imported runs),
    # and an index for the energy queries of reports.
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN stored_at TEXT")
    conn.exec_driver_sql("CREATE INDEX energy_by_domain ON energy(device, domain)")


def _v3_coded_flags(conn: Connection) -> None:
    # v3: record schema 2, flags are {code, message}. Convert the plain-string flags of older runs with
    # the records' own upgrade step (the one `import` applies), so old stores and old exports agree.
    rows = conn.exec_driver_sql(
        "SELECT e.rowid, r.record_schema_version, e.flags_json FROM energy e JOIN runs r USING (run_id)"
        " WHERE r.record_schema_version < 2 AND e.flags_json != '[]'"
    ).fetchall()
    updates = []
    for rowid, version, flags in rows:
        entry = upgrade_record({"schema_version": version, "energy": [{"flags": json.loads(flags)}]}, to=2)
        updates.append((json.dumps(entry["energy"][0]["flags"]), rowid))
    if updates:
        conn.exec_driver_sql("UPDATE energy SET flags_json = ? WHERE rowid = ?", updates)
    conn.exec_driver_sql("UPDATE runs SET record_schema_version = 2 WHERE record_schema_version < 2")


def _v4_ranks(conn: Connection) -> None:
    # v4: record schema 3, multi-rank repetitions. Every stored run was one process on one machine.
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN world_size INTEGER NOT NULL DEFAULT 1")
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN nnodes INTEGER NOT NULL DEFAULT 1")
    conn.exec_driver_sql("ALTER TABLE energy ADD COLUMN rank INTEGER")
    conn.exec_driver_sql("ALTER TABLE energy ADD COLUMN host TEXT")
    conn.exec_driver_sql("UPDATE runs SET record_schema_version = 3 WHERE record_schema_version < 3")


def _v5_metric_flags_and_order(conn: Connection) -> None:
    # v5: record schema 4, a metric that was NaN/inf is stored as NULL with flags; and runs.seq, the
    # order runs were stored in (SQLite's rowid has no PostgreSQL twin). SQLite cannot drop a NOT NULL,
    # so metrics is rebuilt there.
    if conn.dialect.name == "sqlite":
        _script(
            conn,
            """
            CREATE TABLE metrics_v5 (
                run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
                idx INTEGER NOT NULL,
                name TEXT NOT NULL,
                value REAL,
                unit TEXT NOT NULL,
                window TEXT,
                flags_json TEXT NOT NULL DEFAULT '[]',
                PRIMARY KEY (run_id, idx)
            );
            INSERT INTO metrics_v5 (run_id, idx, name, value, unit, window)
                SELECT run_id, idx, name, value, unit, window FROM metrics;
            DROP TABLE metrics;
            ALTER TABLE metrics_v5 RENAME TO metrics;
            CREATE INDEX metrics_by_name ON metrics(name);
            ALTER TABLE runs ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
            UPDATE runs SET seq = rowid;
            """,
        )
    else:
        _script(
            conn,
            """
            ALTER TABLE metrics ALTER COLUMN value DROP NOT NULL;
            ALTER TABLE metrics ADD COLUMN flags_json TEXT NOT NULL DEFAULT '[]';
            ALTER TABLE runs ADD COLUMN seq BIGINT GENERATED BY DEFAULT AS IDENTITY
            """,
        )
    conn.exec_driver_sql("CREATE UNIQUE INDEX runs_by_seq ON runs(seq)")
    conn.exec_driver_sql("UPDATE runs SET record_schema_version = 4 WHERE record_schema_version < 4")


def _v6_crosscheck(conn: Connection) -> None:
    # v6: record schema 5, energy entries carry the counter-vs-sampled cross-check (energy/crosscheck.py).
    # Older runs did not keep it: NULL.
    double = "REAL" if conn.dialect.name == "sqlite" else "DOUBLE PRECISION"
    conn.exec_driver_sql(f"ALTER TABLE energy ADD COLUMN sampled_joules {double}")
    conn.exec_driver_sql(f"ALTER TABLE energy ADD COLUMN crosscheck_tolerance_j {double}")
    conn.exec_driver_sql("UPDATE runs SET record_schema_version = 5 WHERE record_schema_version < 5")


def _v7_hw_state(conn: Connection) -> None:
    # v7: record schema 6, GPU energy entries carry the window's hardware state (energy/gpu_state.py).
    # Older runs did not read it: JSON null.
    conn.exec_driver_sql("ALTER TABLE energy ADD COLUMN hw_state_json TEXT NOT NULL DEFAULT 'null'")
    conn.exec_driver_sql("UPDATE runs SET record_schema_version = 6 WHERE record_schema_version < 6")


def _v8_timeline_index(conn: Connection) -> None:
    # v8: an index for the report's power plots, which read which runs have a timeline on which device
    # (store.timeline_runs) without scanning every point. No record change: the record schema stays 6.
    conn.exec_driver_sql("CREATE INDEX timeline_by_run_device ON timeline(run_id, device)")


def _v9_groups(conn: Connection) -> None:
    # v9: what finds a report's newest groups in SQL (store/queries.py): each run's recorded hardware state
    # copied out of its provenance into its own column, and an index for the runs of one configuration ×
    # hardware profile. No record change: the record schema stays 6.
    from sqlalchemy.exc import DBAPIError

    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN energy_state_json TEXT")
    if conn.dialect.name == "postgresql":  # a JSON null is no state, as None is in store/layout.py state_json
        try:
            with conn.begin_nested():
                conn.exec_driver_sql("UPDATE runs SET energy_state_json = "
                                     "NULLIF((provenance_json::json #> '{hardware,state}')::text, 'null')")
        except DBAPIError:  # a provenance that is not JSON (edited by hand) stops the cast: one run at a time
            _v9_states_one_by_one(conn)
    else:  # a mapping or list comes back as JSON text (a bare string unquoted: no state either way)
        conn.exec_driver_sql("UPDATE runs SET energy_state_json = json_extract(provenance_json, '$.hardware.state') "
                             "WHERE json_valid(provenance_json)")
    conn.exec_driver_sql("CREATE INDEX runs_by_group ON runs(suite_config_hash, hardware_profile_id)")


def _v9_states_one_by_one(conn: Connection) -> None:
    """energy_state_json of every run whose provenance is JSON; the others are left null (readers that
    parse their provenance say what is wrong with it)."""
    rows = conn.exec_driver_sql("SELECT run_id, provenance_json FROM runs").all()
    for run_id, provenance in rows:
        try:
            state = (json.loads(provenance).get("hardware") or {}).get("state")
        except (ValueError, AttributeError):
            continue
        if state is not None:
            conn.execute(text_sql("UPDATE runs SET energy_state_json = :s WHERE run_id = :r"),
                         {"s": json.dumps(state), "r": run_id})


def _v10_grouped_runs(conn: Connection) -> None:
    # v10: what lists a report's groups and counts its not-finite metrics without reading every metric row
    # (store/queries.py): runs.has_finite_metric (1 when one of the run's metrics has a value), a partial
    # index holding every column the group listing reads for the ok runs that have one, and a partial index
    # of the null (NaN/inf) metric values. No record change: the record schema stays 6.
    # Added with the default 1 and then set to 0 where no metric has a value (failed runs, all-NaN runs: a
    # few), so the other run rows are not rewritten: both backends store a column's default without
    # touching the rows, and rewriting every run would leave PostgreSQL's index-only scans reading the
    # table until the next VACUUM. PostgreSQL then drops the default, as a new store has none (every writer
    # sets the column: store.layout.run_row); SQLite cannot drop a default, so an upgraded file keeps it.
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN has_finite_metric INTEGER NOT NULL DEFAULT 1")
    conn.exec_driver_sql("UPDATE runs SET has_finite_metric = 0 WHERE NOT EXISTS "
                         "(SELECT 1 FROM metrics m WHERE m.run_id = runs.run_id AND m.value IS NOT NULL)")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE runs ALTER COLUMN has_finite_metric DROP DEFAULT")
    conn.exec_driver_sql("CREATE INDEX runs_grouped ON runs (suite, suite_config_hash, hardware_profile_id, "
                         "energy_state_json, started_at, seq, status, has_finite_metric) "
                         "WHERE status = 'ok' AND has_finite_metric = 1")
    conn.exec_driver_sql("CREATE INDEX metrics_not_finite ON metrics (run_id, name, value) WHERE value IS NULL")


def _v11_timeline_devices(conn: Connection) -> None:
    # v11: runs.timeline_devices, the sorted distinct devices of the run's timeline points as a JSON list
    # (store.layout.devices_json; '[]' without a timeline): a report picks the runs its power plot shows from
    # the runs it reads, not from a lookup per run in timeline_by_run_device, which the step then drops. No
    # record change: the record schema stays 6. Filled from that index's distinct (run, device) pairs, in run order, a page of runs at
    # a time, in Python for both backends, so the text is exactly what run_row writes. PostgreSQL then drops
    # the default, as a new store has none (run_row sets the column); SQLite keeps it, as in v10. Rewriting
    # the runs with a timeline leaves PostgreSQL's index-only scans reading the table until autovacuum has
    # passed (it runs on its own after a change this size).
    from eitp_bench.store.layout import devices_json

    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN timeline_devices TEXT NOT NULL DEFAULT '[]'")
    pairs = conn.exec_driver_sql("SELECT DISTINCT run_id, device FROM timeline ORDER BY run_id, device",
                                 execution_options={"stream_results": True})  # a server-side cursor on PostgreSQL
    update_devices = text_sql("UPDATE runs SET timeline_devices = :devices WHERE run_id = :run_id")
    page: list[dict] = []
    for run_id, rows in groupby(pairs, key=lambda row: row[0]):  # a run's pairs are adjacent (ORDER BY)
        page.append({"run_id": run_id, "devices": devices_json(device for _, device in rows)})
        if len(page) == 10_000:
            conn.execute(update_devices, page)
            page = []
    if page:
        conn.execute(update_devices, page)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE runs ALTER COLUMN timeline_devices DROP DEFAULT")
    # Nothing reads the index any more (a run's points are found by the primary key): an entry per stored
    # point, written with every point, gone
    conn.exec_driver_sql("DROP INDEX timeline_by_run_device")


def _v12_hardware_values(conn: Connection) -> None:
    # v12: each distinct mapping or list of the runs' provenance.hardware stored once, in hardware_values, and
    # referred to from runs.provenance_json by id (store/hardware_values.py): a real run's row shrinks from
    # about 2.3 KB to 650 bytes, and a reader parses each shared value once. runs.energy_state_json (v9)
    # becomes runs.energy_state_id, the id of the run's state there, in runs_grouped too. No record change:
    # the record schema stays 6. Done in Python on both backends, a page of runs at a time, with the writer's
    # own code, so the texts are those a new store holds. A provenance that is not JSON (edited by hand) is
    # left as it is, its state id null: the readers say what is wrong with it, as before.
    from eitp_bench.store.hardware_values import Split, stored_splits

    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("CREATE TABLE hardware_values (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                             "digest TEXT NOT NULL, key TEXT NOT NULL, value_json TEXT NOT NULL)")
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN energy_state_id BIGINT")
    else:
        conn.exec_driver_sql("CREATE TABLE hardware_values (id INTEGER NOT NULL PRIMARY KEY, digest TEXT NOT NULL, "
                             "key TEXT NOT NULL, value_json TEXT NOT NULL)")
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN energy_state_id INTEGER")
    conn.exec_driver_sql("CREATE UNIQUE INDEX hardware_values_by_digest ON hardware_values (digest)")
    update_run = text_sql("UPDATE runs SET provenance_json = :p, energy_state_id = :s WHERE run_id = :r")
    known: dict[str, int] = {}  # digest → id of the values stored so far
    after = None
    while True:
        page = conn.exec_driver_sql(
            "SELECT seq, run_id, provenance_json FROM runs" + ("" if after is None else f" WHERE seq > {int(after)}")
            + " ORDER BY seq LIMIT 5000").all()
        if not page:
            break
        after = page[-1][0]
        splits = {}
        for _, run_id, provenance in page:
            try:
                splits[run_id] = Split(provenance)
            except ValueError:
                continue
        stored = stored_splits(conn, list(splits.values()), known)
        if stored:
            conn.execute(update_run, [{"p": p.text, "s": p.ids.get("state"), "r": run_id}
                                      for run_id, p in zip(splits, stored)])
    conn.exec_driver_sql("DROP INDEX runs_grouped")
    conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN energy_state_json")
    conn.exec_driver_sql("CREATE INDEX runs_grouped ON runs (suite, suite_config_hash, hardware_profile_id, "
                         "energy_state_id, started_at, seq, status, has_finite_metric) "
                         "WHERE status = 'ok' AND has_finite_metric = 1")


MIGRATIONS: list[Callable[[Connection], None]] = [
    _v1_create_tables, _v2_add_stored_at, _v3_coded_flags, _v4_ranks, _v5_metric_flags_and_order,
    _v6_crosscheck, _v7_hw_state, _v8_timeline_index, _v9_groups, _v10_grouped_runs, _v11_timeline_devices,
    _v12_hardware_values,
]  # fmt: skip
SCHEMA_VERSION = len(MIGRATIONS)
# The tables a step rewrites row by row (by version reached), not just extends: on PostgreSQL their
# visibility map is lost until a VACUUM, and index-only scans read the table meanwhile (Store opens
# vacuum them after the upgrade). Autovacuum may not come soon: v11 rewrote 18 % of the runs of the
# 1 000 000-record benchmark store, under its default 20 % trigger, and `report` took 9.8–10.3 s there
# until a VACUUM, 8.8 s after.
REWRITES = {11: ("runs",), 12: ("runs",)}


def stored_version(conn: Connection, where: str) -> int | None:
    """The store's schema version; 0 for an empty database; UserError for a database that is not ours."""
    tables = set(inspect(conn).get_table_names())
    if not tables:
        return 0
    if "meta" not in tables:
        raise UserError(
            f"{where} is a database but not an eitp-bench store (tables: {', '.join(sorted(tables)[:10])})",
            fix="pass a different store; eitp-bench will not write into a foreign database",
        )
    meta = dict(conn.execute(select(META.c.key, META.c.value)).all())
    if meta.get("app") != APP_MARKER or "schema_version" not in meta:
        raise UserError(
            f"{where} has a meta table but is not an eitp-bench store",
            fix="pass a different store; eitp-bench will not write into a foreign database",
        )
    try:
        version = int(meta["schema_version"])
    except (TypeError, ValueError):
        raise UserError(f"{where} has schema_version {str(meta['schema_version'])[:40]!r} in its meta table, which "
                        "eitp-bench never writes: the store was changed outside eitp-bench",
                        fix="restore a backup of the store, or set the meta row back to the version it was") from None
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{where} was written by a newer eitp-bench (store schema v{version}; this one knows up to v{SCHEMA_VERSION})",
            fix="upgrade eitp-bench (pip install -U eitp-bench) to read this store",
        )
    return version


# Any 64-bit number, the same in every eitp-bench: PostgreSQL openers of one database queue on it.
_PG_MIGRATION_LOCK = 0x6569_7470_6265_6E63


def migrate(conn: Connection, where: str) -> tuple[str, ...]:
    """Bring the store to SCHEMA_VERSION inside the caller's transaction, which holds the write lock
    (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock taken here), so concurrent openers agree.
    Returns the tables the steps rewrote (REWRITES), for a VACUUM once the transaction is committed."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
    version = stored_version(conn, where)
    if version == SCHEMA_VERSION:
        return ()
    if version == 0:
        META.create(conn, checkfirst=True)  # an empty SQLite file may hold a bare meta table
        METADATA.create_all(conn)
        conn.execute(META.delete())
        conn.execute(META.insert(), [{"key": "app", "value": APP_MARKER},
                                     {"key": "schema_version", "value": str(SCHEMA_VERSION)}])
        return ()
    for step in MIGRATIONS[version:]:
        step(conn)
    conn.execute(update(META).where(META.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
    return tuple(dict.fromkeys(t for reached in range(version + 1, SCHEMA_VERSION + 1) for t in REWRITES.get(reached, ())))

"""The results store: one embedded SQLite file, normalised tables, schema migrations.

Tables: runs (identity, provenance, config JSON), metrics, energy, timeline, and
meta (app marker + schema_version). The columns, inserts, reads and frames are derived from the
record models (records.py declares every field once); the CREATE TABLEs in the migrations are history,
and a test checks that the migrated layout matches the models. Each repetition is written in ONE transaction,
so a crash never leaves half a run; WAL + busy_timeout let several `eitp-bench run`
processes write the same file at once. Frames for analysis are built with joined
SQL queries (pd.read_sql), never per-record Python loops.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
from pathlib import Path
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable, Optional

from pydantic import BaseModel

from eitp_bench.errors import UserError
from eitp_bench.records import SCHEMA_VERSION as RECORD_SCHEMA_VERSION
from eitp_bench.records import EnergyEntry, Metric, Provenance, RunRecord, TimelinePoint, upgrade_record

DEFAULT_STORE = Path("eitp-results") / "results.sqlite"
APP_MARKER = "eitp-bench"
BUSY_TIMEOUT_MS = 30_000
_SQLITE_MAGIC = b"SQLite format 3\x00"


# --- the layout, derived from the record models ---------------------------------------------


def _to_json(value: Any) -> str:
    return json.dumps(value, default=lambda o: o.model_dump(mode="json"))  # nested models (flags)


@dataclass(frozen=True)
class _ChildTable:
    """A RunRecord list field stored one row per item: (run_id, idx, one column per model field).

    Nested values (lists, models) are JSON text in a `<field>_json` column; computed fields (net_joules)
    are stored too, for SQL readers, and recomputed when a record is rebuilt.
    """

    name: str  # the table, and the RunRecord field it holds
    model: type[BaseModel]
    json_fields: tuple[str, ...] = ()

    @cached_property
    def fields(self) -> list[str]:
        return list(self.model.model_fields)

    @cached_property
    def stored(self) -> list[str]:
        return [*self.model.model_fields, *self.model.model_computed_fields]

    def column(self, field: str) -> str:
        return f"{field}_json" if field in self.json_fields else field

    @cached_property
    def columns(self) -> list[str]:
        return [self.column(f) for f in self.stored]

    @cached_property
    def insert_sql(self) -> str:
        columns = ["run_id", "idx", *self.columns]
        return f"INSERT INTO {self.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"

    @cached_property
    def _values(self) -> Callable[[Any], tuple]:
        get = operator.attrgetter(*self.stored)
        at = [i for i, f in enumerate(self.stored) if f in self.json_fields]
        if not at:
            return get

        def values(item: Any) -> tuple:
            v = list(get(item))
            for i in at:
                v[i] = "[]" if v[i] == [] else _to_json(v[i])  # most entries have no flags
            return tuple(v)

        return values

    def rows(self, record: RunRecord) -> list[tuple]:
        values = self._values
        return [(record.run_id, i, *values(item)) for i, item in enumerate(getattr(record, self.name))]

    def item(self, values: Iterable[Any]) -> BaseModel:
        data = {f: json.loads(v) if f in self.json_fields else v for f, v in zip(self.fields, values)}
        return self.model.model_validate(data)


CHILD_TABLES = {
    t.name: t
    for t in (_ChildTable("metrics", Metric), _ChildTable("energy", EnergyEntry, ("flags",)),
              _ChildTable("timeline", TimelinePoint))
}  # fmt: skip

# runs: RunRecord's scalar fields (schema_version stored as record_schema_version), then the nested
# ones as JSON, plus two storage-only columns: hardware_profile_id (copied out of provenance, for
# grouping in SQL) and stored_at.
_RUN_NESTED = ("config", "provenance", *CHILD_TABLES)
RUN_FIELDS = [f for f in RunRecord.model_fields if f not in _RUN_NESTED]
_RUN_RENAMED = {"schema_version": "record_schema_version"}
_RUN_SQL_COLUMNS = [_RUN_RENAMED.get(f, f) for f in RUN_FIELDS] + ["config_json", "provenance_json"]

# Frame columns (the contract in DEVELOPERS.md): runs, and after the run columns those of each child.
RUN_COLUMNS = [f for f in RUN_FIELDS if f != "schema_version"] + ["hardware_profile_id"]
METRIC_COLUMNS = CHILD_TABLES["metrics"].stored
TIMELINE_COLUMNS = CHILD_TABLES["timeline"].stored
# energy: flags as two list columns (codes, messages), never a joined string: messages contain ';'.
ENERGY_COLUMNS = [c for f in CHILD_TABLES["energy"].stored for c in (("flags", "flag_messages") if f == "flags" else (f,))]


def flag_columns(flags: list) -> tuple[list[str], list[str]]:
    """(codes, messages) of a list of Flags or {code, message} dicts: the energy frame's two flag columns."""
    items = [f if isinstance(f, dict) else f.model_dump() for f in flags]
    return [f["code"] for f in items], [f["message"] for f in items]


# --- migrations: each takes a connection inside an open transaction -------------------------


def _v1_create_tables(conn: sqlite3.Connection) -> None:
    _execute_script(
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
        """
    )


def _v2_add_stored_at(conn: sqlite3.Connection) -> None:
    # v2: when a run landed in this store (differs from started_at for imported runs),
    # and an index for the energy queries of reports.
    conn.execute("ALTER TABLE runs ADD COLUMN stored_at TEXT")
    conn.execute("CREATE INDEX energy_by_domain ON energy(device, domain)")


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    # Not conn.executescript(): it COMMITs first, which would break the migration's transaction.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v3_coded_flags(conn: sqlite3.Connection) -> None:
    # v3: record schema 2, flags are {code, message}. Convert the plain-string flags of older runs with
    # the records' own upgrade step (the one `import` applies), so old stores and old exports agree.
    rows = conn.execute(
        "SELECT e.rowid, r.record_schema_version, e.flags_json FROM energy e JOIN runs r USING (run_id)"
        " WHERE r.record_schema_version < 2 AND e.flags_json != '[]'"
    ).fetchall()
    updates = []
    for rowid, version, text in rows:
        entry = upgrade_record({"schema_version": version, "energy": [{"flags": json.loads(text)}]}, to=2)
        updates.append((json.dumps(entry["energy"][0]["flags"]), rowid))
    conn.executemany("UPDATE energy SET flags_json = ? WHERE rowid = ?", updates)
    conn.execute("UPDATE runs SET record_schema_version = 2 WHERE record_schema_version < 2")


def _v4_ranks(conn: sqlite3.Connection) -> None:
    # v4: record schema 3, multi-rank repetitions. Every stored run was one process on one machine.
    conn.execute("ALTER TABLE runs ADD COLUMN world_size INTEGER NOT NULL DEFAULT 1")
    conn.execute("ALTER TABLE runs ADD COLUMN nnodes INTEGER NOT NULL DEFAULT 1")
    conn.execute("ALTER TABLE energy ADD COLUMN rank INTEGER")
    conn.execute("ALTER TABLE energy ADD COLUMN host TEXT")
    conn.execute("UPDATE runs SET record_schema_version = 3 WHERE record_schema_version < 3")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _v1_create_tables, _v2_add_stored_at, _v3_coded_flags, _v4_ranks,
]
SCHEMA_VERSION = len(MIGRATIONS)


# --- opening ---------------------------------------------------------------------------------


def resolve_path(path_or_url: str | os.PathLike | None) -> Path:
    """A path, or a sqlite URL (sqlite:///relative.db, sqlite:////abs.db); None → default."""
    if path_or_url is None:
        path_or_url = os.environ.get("EITP_BENCH_STORE") or DEFAULT_STORE
    text = os.fspath(path_or_url)
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme.lower() != "sqlite":
            raise UserError(
                f"store URL {text!r} uses scheme {scheme!r}; only SQLite stores are supported",
                fix="pass a file path or a sqlite:///path/to/results.sqlite URL",
            )
        if not rest.startswith("/") or rest == "/":
            raise UserError(
                f"store URL {text!r} has no file path",
                fix="write sqlite:///relative/results.sqlite or sqlite:////absolute/results.sqlite",
            )
        text = rest[1:]  # SQLAlchemy style: three slashes, then the path (a 4th slash = absolute)
    return Path(text).expanduser()


def _inspect_existing(path: Path) -> int:
    """Schema version of an existing eitp-bench store; UserError for anything else. Writes nothing."""
    with open(path, "rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if not head:
        return 0  # an empty file is an empty SQLite database: safe to initialise
    if head != _SQLITE_MAGIC:
        raise UserError(
            f"{path} is not a SQLite file, so it is not an eitp-bench results store",
            fix="pass the path of a results.sqlite written by eitp-bench, or a new path to create one",
        )
    try:
        # With no -wal beside it nobody is writing: open it immutable, so not even -wal/-shm side files
        # appear next to a file we may refuse. Otherwise read-only, seeing the live WAL.
        live = path.with_name(path.name + "-wal").exists()
        mode = "mode=ro" if live else "mode=ro&immutable=1"
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                return 0
            if "meta" not in tables:
                raise UserError(
                    f"{path} is a SQLite database but not an eitp-bench store (tables: {', '.join(sorted(tables))})",
                    fix="pass a different path; eitp-bench will not write into a foreign database",
                )
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise UserError(
            f"{path} is a corrupt or unreadable SQLite file ({err})",
            fix="restore it from a backup or an `eitp-bench export --format jsonl`, or pass a new path",
        ) from None
    if meta.get("app") != APP_MARKER or "schema_version" not in meta:
        raise UserError(
            f"{path} has a meta table but is not an eitp-bench store",
            fix="pass a different path; eitp-bench will not write into a foreign database",
        )
    version = int(meta["schema_version"])
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{path} was written by a newer eitp-bench (store schema v{version}; this one knows up to v{SCHEMA_VERSION})",
            fix="upgrade eitp-bench (pip install -U eitp-bench) to read this store",
        )
    return version


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION; re-read inside the write lock so concurrent openers agree."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
        if not has_meta:
            conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            conn.execute("INSERT INTO meta VALUES ('app', ?), ('schema_version', '0')", (APP_MARKER,))
        version = int(conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])
        if version > SCHEMA_VERSION:  # another, newer eitp-bench won the race
            raise UserError(
                f"{path} was written by a newer eitp-bench (store schema v{version})",
                fix="upgrade eitp-bench to read this store",
            )
        for step in MIGRATIONS[version:]:
            step(conn)
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, retrying while another process opens the same new file: SQLite answers a
    journal-mode change that races another connection with SQLITE_BUSY at once, without its busy handler."""
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _io_error(path: Path, err: sqlite3.Error) -> UserError:
    return UserError(
        f"cannot write the results store {path}: {err}",
        fix="check the file and its folder are writable, the disk has space, and no process holds it locked",
    )


class Store:
    """Results of many repetitions, arms, suites and machines, in one SQLite file."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path_or_url: str | os.PathLike | None = None, *, create: bool = True) -> "Store":
        path = resolve_path(path_or_url)
        if path.is_dir():
            raise UserError(f"store path {path} is a directory", fix=f"pass a file path such as {path / 'results.sqlite'}")
        if path.exists():
            _inspect_existing(path)  # raises before anything touches the file
        elif not create:
            raise UserError(f"no results store at {path}", fix="run `eitp-bench run` first, or pass --store PATH")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as err:
            raise _io_error(path, err) from None
        try:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            _enable_wal(conn)
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against app crashes
            _migrate(conn, path)
        except sqlite3.OperationalError as err:
            conn.close()
            raise _io_error(path, err) from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    # --- context manager -----------------------------------------------------------------

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------

    def add(self, record: RunRecord) -> bool:
        """Store one repetition in one transaction; False if its run_id is already stored."""
        return self.add_many([record]) == 1

    def add_many(self, records: Iterable[RunRecord]) -> int:
        """Store many records in ONE transaction (all or nothing); returns how many were new."""
        from eitp_bench.records import utc_now

        stored_at = utc_now()
        added = 0
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")  # take the write lock up front: no lock upgrades, no deadlock
            run_columns = [*_RUN_SQL_COLUMNS, "hardware_profile_id", "stored_at"]
            run_sql = (f"INSERT OR IGNORE INTO runs ({', '.join(run_columns)})"
                       f" VALUES ({', '.join('?' * len(run_columns))})")
            for r in records:
                values = (*(getattr(r, f) for f in RUN_FIELDS), json.dumps(r.config), r.provenance.model_dump_json(),
                          r.provenance.hardware_profile_id, stored_at)
                if conn.execute(run_sql, values).rowcount == 0:
                    continue  # already stored: idempotent
                added += 1
                for table in CHILD_TABLES.values():
                    conn.executemany(table.insert_sql, table.rows(r))
            conn.execute("COMMIT")
        except BaseException as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(err, sqlite3.OperationalError):  # locked past busy_timeout, disk full, read-only
                raise _io_error(self.path, err) from None
            raise
        return added

    # --- reading records -------------------------------------------------------------------

    def count(self) -> int:
        """Number of stored runs (no __len__: an empty store must still be truthy)."""
        return self._conn.execute("SELECT count(*) FROM runs").fetchone()[0]

    def run_ids(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT run_id FROM runs")}

    def records(self, *, suite: Optional[str] = None, status: Optional[str] = None) -> list[RunRecord]:
        """Rebuild the stored RunRecords exactly, in the order they were stored."""
        where, params = _run_filter(suite, status)
        runs = self._conn.execute(
            f"SELECT {', '.join(_RUN_SQL_COLUMNS)} FROM runs r {where} ORDER BY rowid", params
        ).fetchall()
        children = {name: self._children(table, where, params) for name, table in CHILD_TABLES.items()}
        out = []
        for row in runs:
            data = dict(zip(RUN_FIELDS, row))
            data["config"] = json.loads(row[-2])
            data["provenance"] = Provenance.model_validate_json(row[-1])
            out.append(RunRecord(**data, **{name: rows.get(data["run_id"], []) for name, rows in children.items()}))
        return out

    def _children(self, table: _ChildTable, where: str, params: list) -> dict[str, list]:
        columns = ", ".join(f"c.{table.column(f)}" for f in table.fields)
        rows = self._conn.execute(
            f"SELECT c.run_id, {columns} FROM {table.name} c JOIN runs r USING (run_id) {where}"
            " ORDER BY c.run_id, c.idx",
            params,
        )
        grouped: dict[str, list] = {}
        for row in rows:
            grouped.setdefault(row[0], []).append(table.item(row[1:]))
        return grouped

    # --- frames for analysis and reports ---------------------------------------------------
    # Child rows are read bare and merged onto the runs frame in pandas: ~3x faster than letting
    # SQL repeat every run column on every child row.

    def runs_frame(self):
        return self._runs(RUN_COLUMNS).drop(columns="_row")

    def metrics_frame(self):
        return self._with_runs(RUN_COLUMNS, "metrics", METRIC_COLUMNS)

    def energy_frame(self):
        table = CHILD_TABLES["energy"]
        # The energy row's device (gpu:0, cpu:0) is what analysis groups by; the run's torch device
        # stays available as run_device.
        columns = ["device AS energy_device" if c == "device" else c for c in table.columns]
        df = self._with_runs(RUN_COLUMNS, "energy", columns)
        df = df.rename(columns={"device": "run_device", "energy_device": "device"})
        codes, messages = [], []
        at = df.columns.get_loc("flags_json")
        for text in df.pop("flags_json"):
            c, m = flag_columns(json.loads(text)) if text != "[]" else ([], [])
            codes.append(c)
            messages.append(m)
        df.insert(at, "flags", codes)
        df.insert(at + 1, "flag_messages", messages)
        for column in ("joules", "max_gap_s", "idle_watts", "net_joules"):  # None → NaN, never object dtype
            df[column] = df[column].astype(float)
        return df

    def timeline_frame(self):
        return self._with_runs(["run_id", "arm", "task"], "timeline", TIMELINE_COLUMNS)

    def provenance_frame(self):
        """One row per run: run_id, the Provenance fields, and hardware.<key> for each detected-hardware entry."""
        import pandas as pd

        rows = []
        for run_id, text in self._conn.execute("SELECT run_id, provenance_json FROM runs ORDER BY rowid"):
            prov = json.loads(text)
            hardware = prov.pop("hardware", None) or {}
            rows.append({"run_id": run_id, **prov, **{f"hardware.{k}": v for k, v in hardware.items()}})
        columns = ["run_id", *Provenance.model_fields.keys()]
        columns.remove("hardware")
        return pd.DataFrame(rows, columns=None if rows else columns)

    def configs(self) -> dict[str, dict]:
        """{suite_config_hash: the resolved suite config}: one per configuration (its runs share it)."""
        rows = self._conn.execute(
            "SELECT suite_config_hash, config_json FROM runs WHERE rowid IN "
            "(SELECT MIN(rowid) FROM runs GROUP BY suite_config_hash)"
        ).fetchall()
        return {h: json.loads(c) for h, c in rows}

    def _runs(self, columns: list[str]):
        import pandas as pd

        sql = f"SELECT rowid AS _row, {', '.join(columns)} FROM runs ORDER BY rowid"
        return pd.read_sql_query(sql, self._conn)

    def _with_runs(self, run_columns: list[str], table: str, columns: list[str]):
        import pandas as pd

        runs = self._runs(run_columns)
        child = pd.read_sql_query(f"SELECT run_id, idx, {', '.join(columns)} FROM {table}", self._conn)
        df = runs.merge(child, on="run_id", how="inner").sort_values(["_row", "idx"], kind="stable")
        return df.drop(columns=["_row", "idx"]).reset_index(drop=True)


def _run_filter(suite: Optional[str], status: Optional[str]) -> tuple[str, list]:
    clauses, params = [], []
    if suite is not None:
        clauses.append("r.suite = ?")
        params.append(suite)
    if status is not None:
        clauses.append("r.status = ?")
        params.append(status)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


# --- import / export -------------------------------------------------------------------------

RECORD_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
TABLES = ("runs", "metrics", "energy", "timeline")


def find_record_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand directories (recursively) into the result files inside them, sorted."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(RECORD_SUFFIXES))
            if not found:
                raise UserError(
                    f"{path} holds no result files ({', '.join(RECORD_SUFFIXES)})",
                    fix="pass a jsonl export, per-repetition JSON files, or a directory of them",
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path} does not exist", fix="check the path of the file or directory to import")
    return files


def read_record_file(path: Path) -> list[RunRecord]:
    """All records of one file (jsonl export, or one RunRecord JSON, or a JSON list); UserError if any is bad."""
    import gzip

    from pydantic import ValidationError

    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise UserError(f"cannot read {path}: {err}", fix="check the file is an eitp-bench JSON/JSONL result") from None
    stripped = text.lstrip()
    if path.name.endswith((".jsonl", ".jsonl.gz")) or (stripped.startswith("{") and "\n{" in stripped):
        chunks = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    else:
        chunks = [(None, text)]
    records: list[RunRecord] = []
    for line_no, chunk in chunks:
        where = f"{path}" + (f" line {line_no}" if line_no else "")
        try:
            data = json.loads(chunk)
            items = data if isinstance(data, list) else [data]
            for item in items:
                version = item.get("schema_version") if isinstance(item, dict) else None
                if isinstance(version, int) and version > RECORD_SCHEMA_VERSION:
                    raise UserError(
                        f"{where} holds a record of schema v{version}, written by a newer eitp-bench "
                        f"(this one reads up to v{RECORD_SCHEMA_VERSION})",
                        fix="upgrade eitp-bench (pip install -U eitp-bench) to import it; nothing from it was imported",
                    )
                records.append(RunRecord.model_validate(item))  # validation upgrades older schema versions
        except json.JSONDecodeError as err:
            raise UserError(
                f"{where} is not valid JSON ({err.msg} at column {err.colno})",
                fix="re-export it (`eitp-bench export --format jsonl`) or remove it; nothing from it was imported",
            ) from None
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "record"
            raise UserError(
                f"{where} is not an eitp-bench RunRecord: field {field!r}: {first['msg']}",
                fix="import only files written by eitp-bench (run outputs or jsonl exports); nothing from it was imported",
            ) from None
    return records


def export_jsonl(store: Store, out) -> int:
    """One full RunRecord JSON per line: the lossless interchange format. `out` is a text stream."""
    records = store.records()
    for r in records:
        out.write(r.model_dump_json() + "\n")
    return len(records)


def export_tables(store: Store, out_dir: Path, fmt: str) -> list[Path]:
    """One csv or parquet file per table (runs, metrics, energy, timeline) in out_dir."""
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError(
                "parquet export needs pyarrow, which is not installed",
                fix="pip install 'eitp-bench[parquet]' (or pip install pyarrow), or use --format csv",
            ) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = {
        "runs": store.runs_frame(),
        "metrics": store.metrics_frame(),
        "energy": store.energy_frame(),
        "timeline": store.timeline_frame(),
    }
    written = []
    for name, df in frames.items():
        path = out_dir / f"{name}.{fmt}"
        if fmt == "csv":
            # List columns (flags, flag_messages) as JSON text: a csv cell cannot hold a list.
            lists = {c: df[c].map(json.dumps) for c in df.columns if c in ("flags", "flag_messages")}
            df.assign(**lists).to_csv(path, index=False)
        else:
            df.to_parquet(path, index=False)
        written.append(path)
    return written

"""The results store: a SQLite file (embedded default) or a PostgreSQL database (a fleet), one API.

Tables: runs (identity, provenance, config JSON), metrics, energy, timeline, and meta (app marker +
schema_version), declared once in store/layout.py (SQLAlchemy Core, derived from the record models)
and versioned in store/migrations.py. Each `add_many` is ONE transaction, so a crash never leaves
half a run; a run_id already stored is skipped (INSERT … ON CONFLICT DO NOTHING, so racing writers on
many machines agree) and `merge` says whether the stored copy differs. SQLite: WAL + busy_timeout
let several processes write one file. Frames for analysis come from a few whole-table queries, never
per-record Python loops.

Fail-safe: readers (`report`, `export`, `compare`, `regress`) open read-only (a read-only file or
folder is fine); writers refuse a file that is not an eitp-bench store, a newer schema, and (SQLite)
a file that fails `PRAGMA quick_check`, with the way out. A PostgreSQL password is never shown.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

from eitp_bench.errors import UserError
from eitp_bench.file_kinds import not_a_file
from eitp_bench.records import Provenance, RunRecord
from eitp_bench.store.column_read import columns_of, frame_of, positions_in
from eitp_bench.store.hardware_values import referenced_ids, resolved, stored_provenances, value_texts
from eitp_bench.store.layout import (CHILD_LABELS, CHILD_TABLES, RUN_COLUMNS, RUN_FIELDS, RUN_LABELS, RUN_SQL_COLUMNS,
                                     RUNS, TABLES, flag_columns, run_row)
from eitp_bench.store.migrations import SCHEMA_VERSION, migrate, stored_version
from eitp_bench.store.retry import StoreUnavailable, is_transient
from eitp_bench.store.url import StoreLocation, connection_error, locate, masked

RUN_TIMES = ("started_at", "finished_at")  # a run's times, stored as ISO 8601 text

BUSY_TIMEOUT_MS = 30_000
_SQLITE_MAGIC = b"SQLite format 3\x00"
_IN_CHUNK = 500  # run_ids per IN (...) list


def resolve_path(path_or_url: str | os.PathLike | None) -> Path:
    """The file of a SQLite store (a path, sqlite:///relative or sqlite:////absolute); None → default."""
    location = locate(path_or_url)
    if location.kind != "sqlite":
        raise UserError(f"{location.shown} is not a SQLite store", fix="pass a file path")
    return location.path


def _reading(method):
    """A read that meets a value eitp-bench never writes (text in a number column, broken JSON: the
    store was edited by hand or by another program) says so in one line instead of a traceback.

    Python's cycle collector is paused while it reads: a large read builds millions of objects (row
    tuples, strings, parsed provenance) that hold no cycles, and each full pass the allocations set off
    walked all of them again: 0.55 s of an 11 s report at 1 000 000 records (docs/scale.md)."""
    import functools
    import gc

    @functools.wraps(method)
    def read(self, *args, **kwargs):
        collecting = gc.isenabled()
        gc.disable()
        try:
            return method(self, *args, **kwargs)
        except ALTERED_READS as err:
            raise altered_read(self, err) from None
        finally:
            if collecting:  # a read inside another read leaves it to the outer one
                gc.enable()

    return read


# what a read raises on a value eitp-bench never writes (text in a number column, broken JSON)
ALTERED_READS = (ValueError, TypeError, KeyError, RecursionError)


def altered_read(store, err: Exception) -> UserError:
    """The one-line error of a read of `store` that met ALTERED_READS' `err` (_reading; reads that hand
    their rows out a page at a time, store/queries.py: series_pages, say it themselves)."""
    first = " ".join(str(err).split())[:200] or type(err).__name__
    return _altered(store.location.shown, f"{type(err).__name__}: {first}")


def _altered(shown: str, what: str) -> UserError:
    """A stored value eitp-bench never writes (seen by Python, or by PostgreSQL casting a text to JSON)."""
    return UserError(f"{shown} holds a value eitp-bench never writes, so it was changed outside eitp-bench ({what})",
                     fix="restore a backup of the store; or find and delete the altered rows with a SQL client "
                         "(reading commands, export included, stop at the same value)")


def _recover_fix(shown: str) -> str:
    return (f"salvage what the damage left readable with SQLite's own tool: `sqlite3 {shown} .recover | sqlite3 "
            "NEW.sqlite`, then use NEW.sqlite (the export cannot read past the damage either); or restore a backup")


def _rescue_fix(shown: str) -> str:
    return (f"export what can still be read (eitp-bench export --format jsonl --store {shown} --out rescue.jsonl), "
            "then start a new store and import it (eitp-bench import rescue.jsonl --store NEW.sqlite); if the export "
            f"stops at the damage, `sqlite3 {shown} .recover | sqlite3 NEW.sqlite` salvages more; or restore a backup")


# --- SQLite ------------------------------------------------------------------------------------


def _inspect_existing(path: Path, reading: bool = False) -> None:
    """Refuse a file that is not an eitp-bench store (or a newer one) before anything touches it. Writes nothing."""
    with open(path, "rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if not head:
        return  # an empty file is an empty SQLite database: safe to initialise
    if head != _SQLITE_MAGIC:
        raise UserError(
            f"{path} is not a SQLite file, so it is not an eitp-bench results store",
            fix="pass the path of a results.sqlite written by eitp-bench, or a new path to create one",
        )
    if _pending_wal(path) and not _writable(path):
        return  # read through a private copy (Store._open_sqlite), which checks it then
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.pool import StaticPool

    try:
        # With no -wal beside it nobody is writing: open it immutable, so not even -wal/-shm side files
        # appear next to a file we may refuse. Otherwise read-only, seeing the live WAL.
        raw = _sqlite_connect(path, write=False, immutable=not path.with_name(path.name + "-wal").exists())
        engine = create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)
        try:
            with engine.connect() as conn:
                stored_version(conn, str(path))
        finally:
            engine.dispose()
    except (sqlite3.DatabaseError, DBAPIError) as err:
        raise UserError(f"{path} is a corrupt or unreadable SQLite file ({getattr(err, 'orig', err)})",
                        fix=_recover_fix(str(path)) if reading else _rescue_fix(str(path))) from None


def _sqlite_connect(path: Path, *, write: bool, immutable: bool = False) -> sqlite3.Connection:
    """A raw connection, set up outside any transaction (journal mode cannot change inside one)."""
    if write:
        raw = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _enable_wal(raw)
        raw.execute("PRAGMA foreign_keys=ON")
        raw.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against app crashes
        return raw
    mode = "mode=ro&immutable=1" if immutable else "mode=ro"
    raw = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=BUSY_TIMEOUT_MS / 1000,
                          isolation_level=None, check_same_thread=False)
    raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return raw


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


def _quick_check(raw: sqlite3.Connection, path: Path) -> None:
    """A writer never adds to a damaged file: it would bury good runs under more damage."""
    try:
        problems = [row[0] for row in raw.execute("PRAGMA quick_check(5)").fetchall()]
    except sqlite3.DatabaseError as err:
        problems = [str(err)]
    if problems != ["ok"]:
        found = " ".join("; ".join(problems).split())[:300]  # one line: SQLite's report spans several
        raise UserError(f"{path} is corrupt (SQLite quick_check: {found}); nothing was written",
                        fix=_rescue_fix(str(path)))


def _sqlite_engine(raw: sqlite3.Connection):
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import StaticPool

    engine = create_engine("sqlite://", creator=lambda: raw, poolclass=StaticPool)

    @event.listens_for(engine, "begin")
    def _begin(conn):  # pysqlite leaves BEGIN to us (isolation_level=None); writers take the lock up front
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("write") else "BEGIN")

    return engine


def _pending_wal(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    return wal.is_file() and wal.stat().st_size > 0


def _private_copy(location: StoreLocation) -> Path:
    """A temporary folder holding a copy of the store and its -wal (read as of this moment)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="eitp-store-"))
    try:
        for suffix in ("", "-wal"):
            shutil.copyfile(location.path.with_name(location.path.name + suffix), folder / (location.path.name + suffix))
    except OSError as err:
        shutil.rmtree(folder, ignore_errors=True)
        raise UserError(f"the results store {location.shown} is read-only and has commits in its -wal file, which "
                        f"cannot be read without a copy; copying it failed: {err}",
                        fix="make the store writable (chmod u+w on it and its folder), or free space in the temporary "
                            "folder ($TMPDIR)") from None
    return folder


def _writable(path: Path) -> bool:
    """May this store be written? No write bit on the file or its folder (chmod a-w) means no, even for
    root, who os.access would let through: a store made read-only on purpose is treated as such."""
    for p in (path, path.parent):
        if not os.access(p, os.W_OK) or not p.stat().st_mode & 0o222:
            return False
    return True


# --- the store -----------------------------------------------------------------------------------


@dataclass
class Merge:
    """What `Store.merge` did: new runs, runs already stored identically, and run_ids stored differently."""

    added: int = 0
    identical: int = 0
    conflicting: list[str] = field(default_factory=list)


class Store:
    """Results of many repetitions, arms, suites and machines, in one SQLite file or PostgreSQL database."""

    _private_copy: Optional[Path] = None  # a read-only store with a pending -wal is read from a copy

    def __init__(self, engine, location: StoreLocation, *, read_only: bool):
        self._engine = engine
        self._conn = engine.connect()
        self.location = location
        self.read_only = read_only
        self.dialect = engine.dialect.name

    @property
    def path(self):
        """The SQLite file, or for PostgreSQL the URL as it may be shown (password masked)."""
        return self.location.path if self.location.kind == "sqlite" else self.location.shown

    @classmethod
    def open(cls, path_or_url: str | os.PathLike | None = None, *, create: bool = True,
             read_only: bool = False) -> "Store":
        """Open (and for writers create, check and migrate) a store. `read_only` never creates or writes."""
        location = locate(path_or_url)
        if read_only:
            create = False
        if location.kind == "postgresql":
            return cls._open_postgres(location, create=create, read_only=read_only)
        return cls._open_sqlite(location, create=create, read_only=read_only)

    @classmethod
    def _open_sqlite(cls, location: StoreLocation, *, create: bool, read_only: bool) -> "Store":
        path = location.path
        why = not_a_file(path)
        if why == "is a directory":
            raise UserError(f"store path {path} is a directory", fix=f"pass a file path such as {path / 'results.sqlite'}")
        if why not in (None, "does not exist"):  # a FIFO would block the open: refused before it
            raise UserError(f"the results store {path} {why}, not a SQLite file",
                            fix="pass the path of a results.sqlite file (or a new path to create one)")
        if not create and (why is not None or path.stat().st_size == 0):  # reading never creates a store
            empty = " (the file is empty)" if why is None else ""
            raise UserError(f"no results store at {path}{empty}", fix="run `eitp-bench run` first, or pass --store PATH")
        if why is None:
            _inspect_existing(path, reading=read_only)  # raises before anything touches the file
        else:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise _io_error(location, err) from None
        if read_only:
            if _writable(path):
                cls._upgrade_if_old(location)
            copy = None
            if not _writable(path) and _pending_wal(path):
                # commits still in the -wal that we may not replay in place (immutable would hide them):
                # read a private copy of the file and its -wal instead, removed on close
                copy = _private_copy(location)
                raw = _connect_or_fail(StoreLocation("sqlite", path=copy / path.name), write=True)
            else:
                # A file nobody may write and no -wal: not being written; immutable needs no -shm beside it.
                raw = _connect_or_fail(location, write=False, immutable=not _writable(path))
            store = cls(_sqlite_engine(raw), location, read_only=True)
            store._private_copy = copy
            store._check_current()
            return store
        if path.exists() and not _writable(path):
            raise UserError(f"the results store {path} is read-only (the file or its folder has no write permission)",
                            fix="reading commands (report, export, compare, regress) work as it is; to add runs, "
                                "make it writable (chmod u+w) or pass --store NEW.sqlite")
        raw = _connect_or_fail(location, write=True)
        try:
            _quick_check(raw, path)
        except BaseException:
            raw.close()
            raise
        store = cls(_sqlite_engine(raw), location, read_only=False)
        try:
            with store._tx(write=True) as conn:
                migrate(conn, str(path))
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def _upgrade_if_old(cls, location: StoreLocation) -> None:
        """A reader meeting an older schema upgrades it once (a writable file only), like any opener did."""
        raw = _connect_or_fail(location, write=False, immutable=not location.path.with_name(location.path.name + "-wal").exists())
        engine = _sqlite_engine(raw)
        try:
            with engine.connect() as conn:
                version = stored_version(conn, str(location.path))
        finally:
            engine.dispose()
        if 0 < version < SCHEMA_VERSION:  # 0: no tables, no store (a reader never creates one)
            cls._open_sqlite(location, create=False, read_only=False).close()

    @classmethod
    def _open_postgres(cls, location: StoreLocation, *, create: bool, read_only: bool) -> "Store":
        from sqlalchemy import create_engine
        from sqlalchemy.exc import DBAPIError
        from sqlalchemy.pool import NullPool

        args = {"connect_timeout": 10, "application_name": "eitp-bench"}
        if read_only:
            args["options"] = "-c default_transaction_read_only=on"
        engine = create_engine(location.url, poolclass=NullPool, connect_args=args, hide_parameters=True)
        try:
            store = cls(engine, location, read_only=read_only)
        except DBAPIError as err:
            engine.dispose()
            found = connection_error(location, err)
            raise (StoreUnavailable(found.message, fix=found.fix) if is_transient(err) else found) from None
        try:
            rewritten = ()
            with store._tx(write=not read_only) as conn:
                if read_only or not create:
                    version = stored_version(conn, location.shown)
                    if version == 0:
                        raise UserError(f"no results store in {location.shown} (the database holds no tables)",
                                        fix="run `eitp-bench run` or `eitp-bench import` with this --store first")
                if not read_only:
                    rewritten = migrate(conn, location.shown)
            store._vacuum(rewritten)
            if read_only:
                store._check_current()
            else:
                store._check_writable()
        except BaseException:
            store.close()
            raise
        return store

    def _vacuum(self, tables) -> None:
        """VACUUM ANALYZE the tables an upgrade rewrote (migrations.REWRITES), outside any transaction:
        their index-only scans read the table until then. A role that does not own a table gets a warning
        from PostgreSQL and the table is skipped; autovacuum comes later anyway."""
        from sqlalchemy.exc import DBAPIError

        if not tables:
            return
        try:
            with self._engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in tables:
                    conn.exec_driver_sql(f"VACUUM (ANALYZE) {table}")
        except DBAPIError:  # only speed is at stake, and the upgrade is committed: autovacuum will do it
            pass

    def _check_writable(self) -> None:
        """A write into every table, in a transaction rolled back: a read-only role or database is
        refused now, before any work, not after the first repetition."""
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError

        conn = self._conn
        tx = conn.begin()
        try:
            for name in TABLE_NAMES:  # inserts no row, but needs INSERT and a writable transaction
                conn.execute(text(f"INSERT INTO {name} SELECT * FROM {name} WHERE false"))
        except DBAPIError as err:
            reason = masked(str(err.orig), self.location.password).strip().splitlines()[0]
            raise UserError(f"this user may not write to the results store {self.location.shown}: {reason}",
                            fix="grant it INSERT on the store's tables (GRANT INSERT, SELECT ON ALL TABLES IN "
                                "SCHEMA public TO <user>), or pass a --store you may write") from None
        finally:
            tx.rollback()

    def _check_current(self) -> None:
        with self._tx() as conn:
            version = stored_version(conn, self.location.shown)
        if version == 0:
            raise UserError(f"no results store in {self.location.shown} (it holds no eitp-bench tables)",
                            fix="run `eitp-bench run` or `eitp-bench import` with this --store first")
        if version != SCHEMA_VERSION:
            raise UserError(
                f"{self.location.shown} is at store schema v{version}; reading needs v{SCHEMA_VERSION}, and a "
                "read-only store cannot be upgraded",
                fix="open it once with write access (any `eitp-bench import`), or copy the file somewhere writable",
            )

    # --- context manager -----------------------------------------------------------------

    def close(self) -> None:
        if self._engine is not None:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:  # a connection the server already dropped
                    pass
            self._conn = None
            self._engine.dispose()
            self._engine = None
        if getattr(self, "_private_copy", None) is not None:
            import shutil

            shutil.rmtree(self._private_copy, ignore_errors=True)
            self._private_copy = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator:
        """One transaction; database errors become one UserError naming the store (password masked)."""
        from sqlalchemy.exc import DBAPIError

        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        conn = None
        try:
            if self._conn is None:  # the last one was lost (PostgreSQL): a new connection
                self._conn = self._engine.connect()
            conn = self._conn
            conn.info["write"] = write
            with conn.begin():
                yield conn
        except (DBAPIError, dbapi_error) as err:  # dbapi_error: from the raw cursor of _frame
            error = self._error(err)
            if isinstance(error, StoreUnavailable):
                self._drop_connection()
            raise error from None
        finally:
            if conn is not None and conn is self._conn:  # not one just dropped (closed)
                conn.info["write"] = False

    def _drop_connection(self) -> None:
        """Forget a connection the server dropped: the next transaction opens a new one."""
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def _error(self, err) -> UserError:
        orig = getattr(err, "orig", err)
        text = masked(str(orig), self.location.password).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        if self.dialect == "sqlite":
            if isinstance(orig, sqlite3.OperationalError) or "readonly" in text or "read-only" in text:
                return _io_error(self.location, text)
            if isinstance(orig, sqlite3.IntegrityError):
                return UserError(f"the results store {self.location.shown} refused the records: {text}",
                                 fix="nothing of this transaction was stored; report this as an eitp-bench bug")
            # a reader (export among them) meeting the damage: advising an export would send the user in a circle
            fix = _recover_fix(self.location.shown) if self.read_only else _rescue_fix(self.location.shown)
            return UserError(f"{self.location.shown} is corrupt or unreadable ({text})", fix=fix)
        if is_transient(err):  # the server is down, restarting, or asked for a retry: worth another try
            found = connection_error(self.location, err)
            return StoreUnavailable(found.message, fix=found.fix)
        if getattr(err, "connection_invalidated", False) or "connection" in text.lower():
            return connection_error(self.location, err)
        if getattr(orig, "sqlstate", None) == "22P02":  # a text the server cannot read as JSON (or a number)
            return _altered(self.location.shown, text)
        return UserError(f"the PostgreSQL store {self.location.shown} failed: {text}",
                         fix="check the server's log; nothing of this transaction was stored")

    # --- writing -------------------------------------------------------------------------

    def add(self, record: RunRecord) -> bool:
        """Store one repetition in one transaction; False if its run_id is already stored."""
        return self.add_many([record]) == 1

    def add_many(self, records: Iterable[RunRecord]) -> int:
        """Store many records in ONE transaction (all or nothing); returns how many were new."""
        return self.merge(records).added

    def merge(self, records: Iterable[RunRecord]) -> Merge:
        """Like add_many, and compares every run_id that was already stored with the stored copy."""
        from sqlalchemy import func, select

        from eitp_bench.records import utc_now

        if self.read_only:
            raise UserError(f"{self.location.shown} was opened read-only", fix="open the store for writing")
        batch = list(records)  # a reader that fails mid-way fails before the transaction
        stored_at = utc_now()
        first: dict[str, RunRecord] = {}
        for r in batch:
            first.setdefault(r.run_id, r)
        # the JSON text, not model_dump(): it is what stores wrote before v12 (NaN as null), split from there
        texts = [r.provenance.model_dump_json() for r in first.values()]
        with self._tx(write=True) as conn:
            stored = stored_provenances(conn, texts)  # its hardware values stored once (store v12)
            rows = [run_row(r, stored_at, p) for r, p in zip(first.values(), stored)]
            if self.dialect == "sqlite":  # under BEGIN IMMEDIATE: nobody else numbers runs meanwhile
                seq = conn.execute(select(func.coalesce(func.max(RUNS.c.seq), 0))).scalar_one()
                for k, row in enumerate(rows, 1):
                    row["seq"] = seq + k
            # One statement for the batch; RETURNING names the runs that were new (rowcount is not portable)
            new = set(conn.execute(self._insert_ignoring_duplicates(), rows).scalars()) if rows else set()
            for name, table in CHILD_TABLES.items():
                children = [c for r in first.values() if r.run_id in new for c in table.rows(r)]
                if children:
                    conn.execute(TABLES[name].insert(), children)
        result = Merge(added=len(new))
        skipped = [r for r in first.values() if r.run_id not in new]
        skipped += [r for r in batch if first[r.run_id] is not r]  # repeated inside the batch
        if skipped:
            stored = {s.run_id: s for s in self.records(run_ids=[r.run_id for r in skipped])}
            for r in skipped:
                if stored.get(r.run_id) == r:
                    result.identical += 1
                else:
                    result.conflicting.append(r.run_id)
        return result

    def _insert_ignoring_duplicates(self):
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(RUNS).on_conflict_do_nothing(index_elements=["run_id"]).returning(RUNS.c.run_id)

    # --- reading records -------------------------------------------------------------------

    def count(self) -> int:
        """Number of stored runs (no __len__: an empty store must still be truthy)."""
        from sqlalchemy import func, select

        with self._tx() as conn:
            return conn.execute(select(func.count()).select_from(RUNS)).scalar_one()

    def run_ids(self) -> set[str]:
        from sqlalchemy import select

        with self._tx() as conn:
            return set(conn.execute(select(RUNS.c.run_id)).scalars())

    @_reading
    def records(self, *, suite: Optional[str] = None, status: Optional[str] = None,
                run_ids: Optional[Iterable[str]] = None) -> list[RunRecord]:
        """Rebuild the stored RunRecords exactly, in the order they were stored."""
        if run_ids is not None:
            ids = list(dict.fromkeys(run_ids))
            chunks = [ids[i:i + _IN_CHUNK] for i in range(0, len(ids), _IN_CHUNK)]
            return [r for chunk in chunks for r in self._records(suite, status, chunk)]
        return self._records(suite, status, None)

    def record_pages(self, size: int = 1_000) -> Iterator[list[RunRecord]]:
        """Every stored record, `size` at a time, in the order stored: a whole store walked a page at a
        time, never held at once."""
        for page in self._run_pages(RUNS.c.run_id, size=size):
            yield self.records(run_ids=[run_id for _, run_id in page])

    def _run_pages(self, *columns, size: int, growth: int = 1) -> Iterator[list]:
        """The runs' (seq, *columns) rows in store order, a page at a time: keyset pages on runs_by_seq (each
        from where the last ended), the first of `size` rows, each next `growth` times larger (at most
        65 536). No page when the store holds no run."""
        from sqlalchemy import select

        after = None
        while True:
            stmt = select(RUNS.c.seq, *columns).order_by(RUNS.c.seq).limit(size)
            with self._tx() as conn:
                page = conn.execute(stmt if after is None else stmt.where(RUNS.c.seq > after)).all()
            if page:
                yield page
            if len(page) < size:
                return
            after, size = page[-1][0], min(size * growth, 65_536)

    def _records(self, suite, status, run_ids) -> list[RunRecord]:
        from sqlalchemy import select

        where = _run_filter(suite, status, run_ids)
        columns = [RUNS.c[c] for c in RUN_SQL_COLUMNS]
        with self._tx() as conn:
            runs = conn.execute(select(*columns).where(*where).order_by(RUNS.c.seq)).all()
            children = {name: self._children(conn, table, where) for name, table in CHILD_TABLES.items()}
        provenances = [json.loads(row[-1]) for row in runs]
        texts = value_texts(self, (i for p in provenances for i in referenced_ids(p)))
        out = []
        for row, provenance in zip(runs, provenances):
            data = dict(zip(RUN_FIELDS, row))
            data["config"] = json.loads(row[-2])
            # each record its own parsed values: a caller may change one record's provenance
            data["provenance"] = Provenance.model_validate(resolved(provenance, lambda i: json.loads(texts[i])))
            out.append(RunRecord(**data, **{name: rows.get(data["run_id"], []) for name, rows in children.items()}))
        return out

    @staticmethod
    def _children(conn, table, where) -> dict[str, list]:
        from sqlalchemy import select

        t = TABLES[table.name]
        stmt = select(t.c.run_id, *(t.c[table.column(f)] for f in table.fields)).join(RUNS, RUNS.c.run_id == t.c.run_id)
        grouped: dict[str, list] = {}
        for row in conn.execute(stmt.where(*where).order_by(t.c.run_id, t.c.idx)):
            grouped.setdefault(row[0], []).append(table.item(row[1:]))
        return grouped

    # --- frames for analysis and reports ---------------------------------------------------
    # Child rows are read bare and merged onto the runs frame in pandas: ~3x faster than letting
    # SQL repeat every run column on every child row.

    @contextmanager
    def _driver_cursor(self, stmt, *, server_side: bool = True):
        """`stmt` executed straight on the driver's cursor: SQLAlchemy's Row objects cost ~4x on 100 000
        rows. render_postcompile: an IN over a list of run ids becomes one placeholder per id.
        `server_side`: on PostgreSQL, a named cursor, whose rows the server sends a fetch at a time (psycopg's
        default cursor brings the whole result into memory at once: for large rows, such as real runs'
        provenance, hundreds of MB; for the runs and metric rows of a 1 000 000-record report, about 40 MiB of
        its peak). Each cursor gets a name of its own, so reads may nest."""
        with self._tx() as conn:
            compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            params = [compiled.params[k] for k in compiled.positiontup] if compiled.positional else compiled.params
            driver = conn.connection.driver_connection
            named = server_side and self.dialect == "postgresql"
            if named:  # planned for every row, as the same query is without a cursor (the default, 0.1,
                # plans for the first tenth: nested loops where a hash join reads the whole result faster)
                driver.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            cursor = driver.cursor(f"eitp_bench_rows_{next(_CURSOR_NAMES)}") if named else driver.cursor()
            try:
                cursor.execute(str(compiled), params) if params else cursor.execute(str(compiled))
                yield cursor
            finally:
                cursor.close()

    def _frame(self, stmt, labels=frozenset(), instants=frozenset()):
        with self._driver_cursor(stmt) as cursor:  # a chunk at a time, typed as from_records types it,
            return frame_of(cursor, labels, instants)  # `labels` as categories (store/column_read.py)

    # `where`: a condition on the runs table (store/queries.py) that keeps only some runs' rows

    @_reading
    def runs_frame(self, where=None):
        return self.runs_and_seqs(where)[0]

    @_reading
    def runs_and_seqs(self, where=None, columns: Optional[list[str]] = None, instants: bool = False):
        """(runs_frame, each of its runs' runs.seq as a numpy array): metric rows name their run by seq
        (queries.metric_values). `columns`: only these of RUN_COLUMNS (all when None). `instants`: the start
        and end times as datetime64[us] instants (store/instants.py), not their text."""
        runs = self._runs(RUN_COLUMNS if columns is None else columns, where=where,
                          instants=frozenset(RUN_TIMES) if instants else frozenset())
        seqs = runs.pop("_row").to_numpy()
        from datetime import datetime

        for column in RUN_TIMES if not instants else ():  # the analysis parses them: a bad one is said here
            for value in runs[column].dropna().unique() if column in runs else ():
                datetime.fromisoformat(value)
        return runs, seqs

    @_reading
    def metrics_frame(self, where=None, runs=None):
        df = self._with_runs(RUN_COLUMNS, "metrics", where=where, runs=runs)
        df["value"] = df["value"].astype(float)  # None (not finite) → NaN, never object dtype or 0
        return _split_flags(df)

    @_reading
    def energy_frame(self, where=None, runs=None, run_columns: Optional[list[str]] = None):
        """Each energy entry after its run's columns (`run_columns` of them when given). The energy row's
        device (gpu:0, cpu:0) is what analysis groups by; the run's torch device stays available as
        run_device."""
        run_columns = RUN_COLUMNS if run_columns is None else run_columns
        df = self._with_runs(run_columns, "energy", rename={"device": "energy_device"}, where=where, runs=runs)
        df = df.rename(columns={"device": "run_device", "energy_device": "device"})
        for column in ("joules", "max_gap_s", "idle_watts", "net_joules", "sampled_joules",
                       "crosscheck_tolerance_j"):  # None → NaN, never object dtype
            df[column] = df[column].astype(float)
        if "hw_state_json" in df.columns:  # the window's GPU state (a dict, or None where not read)
            df.insert(df.columns.get_loc("hw_state_json"), "hw_state", _parsed_once(df.pop("hw_state_json").tolist()))
        return _split_flags(df)

    @_reading
    def timeline_frame(self, run_ids: Optional[list[str]] = None):
        """Every timeline point (run_id, arm, task + the point), or only those of `run_ids` (a few runs:
        one SQL parameter each)."""
        return self._with_runs(["run_id", "arm", "task"], "timeline", run_ids=run_ids)

    @_reading
    def timeline_runs(self, where=None, first: Optional[int] = None):
        """One row per (device, run) with timeline points, by device, in store order within a device: what
        picks the runs a power plot shows without reading their points (a timeline is the store's largest
        table). `where`: a condition on the runs table (only those runs'). `first`: only the first runs per
        device. Read from runs.timeline_devices (store v11): one short row per run with a timeline, where
        the timeline's own index costs a lookup or two per run (0.7 s for the 125 000 runs a report reads
        at 1 000 000 records, against about 0.15 s)."""
        from sqlalchemy import select

        stmt = select(RUNS.c.run_id, RUNS.c.timeline_devices).where(RUNS.c.timeline_devices != "[]")
        with self._driver_cursor((stmt if where is None else stmt.where(where)).order_by(RUNS.c.seq)) as cursor:
            run_ids, texts = columns_of(cursor, 2) or ([], [])
        return _runs_per_device(run_ids, texts, first)

    @_reading
    def provenance_frame(self, where=None, runs=None):
        """One row per run: run_id, the Provenance fields, and hardware.<key> for each detected-hardware entry
        (store/provenance_read.py: the runs that hold equal values share one object). `runs`: the runs_frame
        of the same `where`, already read: where its run ids are the provenance's, the frame holds them, not
        a second copy."""
        from eitp_bench.store.provenance_read import provenance_frame

        return provenance_frame(self, where, runs)

    @_reading
    def configs(self, hashes: Optional[Iterable[str]] = None) -> dict[str, dict]:
        """{suite_config_hash: the resolved suite config}: one per configuration, its first stored run's (the
        hash leaves out a few notes, such as how the target was set, that its runs may differ in).
        `hashes`: only these configurations' (a report's few groups), found by walking the runs in store
        order until each has been seen: a few rows in a nightly store, where every configuration runs on the
        first night, against a pass over every run for the grouped minimum."""
        from sqlalchemy import func, select

        if hashes is None:
            first = select(func.min(RUNS.c.seq)).group_by(RUNS.c.suite_config_hash)
            with self._tx() as conn:
                rows = conn.execute(select(RUNS.c.suite_config_hash, RUNS.c.config_json)
                                    .where(RUNS.c.seq.in_(first))).all()
            return {h: json.loads(c) for h, c in rows}
        wanted, found = set(hashes), {}
        for page in self._run_pages(RUNS.c.suite_config_hash, RUNS.c.config_json, size=256, growth=4):
            for _, h, text in page:
                if h in wanted and h not in found:
                    found[h] = json.loads(text)
            if len(found) == len(wanted):
                break
        return found

    def _runs(self, columns: list[str], run_ids: Optional[list[str]] = None, where=None, instants=frozenset()):
        from sqlalchemy import select

        stmt = select(RUNS.c.seq.label("_row"), *(RUNS.c[c] for c in columns)).order_by(RUNS.c.seq)
        if run_ids is not None:
            stmt = stmt.where(RUNS.c.run_id.in_(run_ids))
        if where is not None:
            stmt = stmt.where(where)
        return self._frame(stmt, RUN_LABELS, instants)

    def _with_runs(self, run_columns: list[str], name: str, rename: Optional[dict] = None,
                   run_ids: Optional[list[str]] = None, where=None, runs=None):
        """The child table's rows of the runs kept, each with its run's columns, in store order. `runs`:
        the runs_frame of the same `where`, already read (store order), so it is not read again."""
        from sqlalchemy import select

        table, t = CHILD_TABLES[name], TABLES[name]
        rename = rename or {}
        columns = [t.c[c].label(rename[c]) if c in rename else t.c[c] for c in table.columns]
        # runs_frame is _runs in store order without `_row`: its positions are that order
        runs = self._runs(run_columns, run_ids, where).drop(columns="_row") if runs is None else runs[run_columns]
        stmt = select(t.c.run_id, t.c.idx, *columns)
        if run_ids is not None:
            stmt = stmt.where(t.c.run_id.in_(run_ids))
        if where is not None:
            stmt = stmt.where(t.c.run_id.in_(select(RUNS.c.run_id).where(where)))
        labels = {rename.get(c, c) for c in CHILD_LABELS.get(name, ())}
        return _beside_their_runs(runs, self._frame(stmt, labels))


_CURSOR_NAMES = itertools.count()  # server-side cursors' names, unique within the process


def _beside_their_runs(runs, child):
    """Each child row (run_id, idx, …) after its run's columns, runs in `runs`' order (store order), a run's
    rows by idx; rows of runs not in `runs` dropped. What runs.merge(child, on="run_id") sorted by store order
    gives, without the merge's copy of every run: a report's 125 000 runs at 1 000 000 records have 45 000
    energy entries, and the merge's copies of the runs frame stayed in the process as 57 MiB."""
    import numpy as np
    import pandas as pd

    overlap = (set(runs.columns) & set(child.columns)) - {"run_id"}
    if overlap:  # the merge would have suffixed them; the callers rename instead (energy's device)
        raise ValueError(f"run and child columns share names: {sorted(overlap)}")
    at = positions_in(runs["run_id"], child["run_id"])  # runs' ids are unique (the primary key)
    kept = np.flatnonzero(at >= 0)
    order = kept[np.lexsort((child["idx"].to_numpy()[kept], at[kept]))]
    return pd.concat([runs.iloc[at[order]].reset_index(drop=True),
                      child.drop(columns=["run_id", "idx"]).iloc[order].reset_index(drop=True)], axis=1)


def _runs_per_device(run_ids: list, texts: list, first: Optional[int]):
    """(device, run_id) of runs in store order and their timeline_devices texts: one row per device a run has
    points on, by device (sorted), in store order within it, the first `first` runs of each device only. A
    text is parsed once however many runs share it (a nightly group's runs share one or two)."""
    import numpy as np
    import pandas as pd

    if not run_ids:
        return pd.DataFrame({"device": pd.Series(dtype=object), "run_id": pd.Series(dtype=object)})
    codes, distinct = pd.factorize(np.asarray(texts, dtype=object))
    at: dict[str, list] = {}  # device → the positions of its runs, one array per text naming it
    for code, text in enumerate(distinct):
        for device in json.loads(text):
            at.setdefault(device, []).append(np.flatnonzero(codes == code))
    ids = np.asarray(run_ids, dtype=object)
    parts = []
    for device in sorted(at):
        positions = np.sort(np.concatenate(at[device]))[:first]  # [:None] keeps them all
        parts.append(pd.DataFrame({"device": device, "run_id": ids[positions]}))
    return pd.concat(parts, ignore_index=True)


def _parsed_once(texts: list) -> list:
    """Each JSON text parsed (None for None and 'null'); a text repeated across rows is parsed once, and its
    rows share the value (read-only: the analysis never changes a parsed state)."""
    parsed: dict = {None: None, "null": None}
    return [parsed[t] if t in parsed else parsed.setdefault(t, json.loads(t)) for t in texts]


def _split_flags(df):
    """flags_json → two list columns, `flags` (codes) and `flag_messages`, in its place."""
    at = df.columns.get_loc("flags_json")
    texts = df.pop("flags_json").tolist()  # a plain list: iterating an Arrow string column is ~5x slower
    # parsed once per distinct text, the rows that hold it sharing its two lists (read-only, as the
    # provenance's shared values): most rows have none, and an empty list per row was 5 MiB of the 45 000
    # energy entries a report read at 1 000 000 records
    parsed_of: dict[str, tuple[list, list]] = {"[]": ([], [])}
    parsed = [parsed_of.get(t) or parsed_of.setdefault(t, flag_columns(json.loads(t))) for t in texts]
    df.insert(at, "flags", [p[0] for p in parsed])
    df.insert(at + 1, "flag_messages", [p[1] for p in parsed])
    return df


def _run_filter(suite: Optional[str], status: Optional[str], run_ids: Optional[list[str]]) -> list:
    clauses = []
    if suite is not None:
        clauses.append(RUNS.c.suite == suite)
    if status is not None:
        clauses.append(RUNS.c.status == status)
    if run_ids is not None:
        clauses.append(RUNS.c.run_id.in_(run_ids))
    return clauses


def _connect_or_fail(location: StoreLocation, *, write: bool, immutable: bool = False) -> sqlite3.Connection:
    try:
        return _sqlite_connect(location.path, write=write, immutable=immutable)
    except sqlite3.Error as err:
        raise _io_error(location, err) from None


def _io_error(location: StoreLocation, err) -> UserError:
    return UserError(
        f"cannot write the results store {location.shown}: {err}",
        fix="check the file and its folder are writable, the disk has space, and no process holds it locked "
            "(reading commands need no write access)",
    )


# --- export --------------------------------------------------------------------------------------

TABLE_NAMES = ("runs", "metrics", "energy", "timeline")


def export_jsonl(store: Store, out) -> int:
    """One full RunRecord JSON per line: the lossless interchange format. `out` is a text stream. Read a
    page of records at a time (Store.record_pages)."""
    n = 0
    for page in store.record_pages():
        for r in page:
            out.write(r.model_dump_json() + "\n")
        n += len(page)
    return n


def export_tables(store: Store, out_dir: Path, fmt: str) -> list[Path]:
    """One csv or parquet file per table (runs, metrics, energy, timeline) in out_dir, one table at a time.
    A csv is written TABLE_PAGE_RUNS runs' rows at a time (the same bytes as the whole table's frame
    written at once: _csv_pages); a parquet file is one table's frame."""
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise UserError(
                "parquet export needs pyarrow, which is not installed",
                fix="pip install 'eitp-bench[parquet]' (or pip install pyarrow), or use --format csv",
            ) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in TABLE_NAMES:
        path = out_dir / f"{name}.{fmt}"
        if fmt == "csv":
            with open(path, "w", encoding="utf-8", newline="") as f:
                for i, df in enumerate(_csv_pages(store, name)):
                    df.to_csv(f, index=False, header=i == 0)
        else:
            _table_frame(store, name).to_parquet(path, index=False)
        written.append(path)
    return written


TABLE_PAGE_RUNS = 5_000  # runs whose rows are read at a time for a csv export


def _table_frame(store: Store, name: str, where=None):
    if name == "runs":
        return store.runs_frame(where=where)
    if name == "timeline":  # (run_id, arm, task + the point), as timeline_frame
        return store._with_runs(["run_id", "arm", "task"], "timeline", where=where)
    return getattr(store, f"{name}_frame")(where=where)


def _csv_pages(store: Store, name: str):
    """The table's frame in pages of runs (store order), each as the whole frame would hold those rows:
    a nullable integer column with a null anywhere in the table is float there (pandas' int + None),
    so it is float in every page. List columns (flags) as JSON text: a csv cell cannot hold a list.
    Yields at least one page (the header of an empty table)."""
    from sqlalchemy import Integer, and_, func, select

    table = RUNS if name == "runs" else TABLES[name]
    with store._tx() as conn:
        floats = [c.name for c in table.columns if c.nullable and isinstance(c.type, Integer)
                  and conn.execute(select(func.count()).select_from(table).where(c.is_(None))).scalar_one()]

    def page(where):
        df = _table_frame(store, name, where)
        lists = {c: df[c].map(json.dumps) for c in df.columns if c in ("flags", "flag_messages")}
        return df.assign(**lists, **{c: df[c].astype(float) for c in floats if c in df.columns})

    pages = 0
    for runs in store._run_pages(size=TABLE_PAGE_RUNS):
        yield page(and_(RUNS.c.seq >= runs[0][0], RUNS.c.seq <= runs[-1][0]))
        pages += 1
    if not pages:
        yield page(RUNS.c.seq.is_(None))

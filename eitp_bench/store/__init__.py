"""The store: every RunRecord kept, in SQLite or PostgreSQL, read back as frames (records → store → analysis).

One job: keep records and give them back. Modules:

- database.py: `Store` (open, add, read, merge, the frames analysis reads), `export_jsonl`, `export_tables`;
- layout.py: the tables and columns, declared once from the record models;
- queries.py: reads the analysis asks for without loading rows into Python (SQL aggregates: the groups,
  the newest groups' runs, a series' columns, not-finite counts);
- migrations.py: the numbered schema changes a stored file goes through on opening;
- url.py: where a store is (a path, `sqlite:///…`, `postgresql://…`), shown with its password masked;
- retry.py: what a store outage is and how long a write waits for the store to come back;
- record_files.py: reading and writing record files (`import`, `export`, a run folder's records).

May import: the shared vocabulary (errors, file_kinds, flags, names, records). Never the runner, the
workloads, analysis or report: they import the store, not the reverse.

The names the rest imports (`from eitp_bench.store import Store`) are loaded on first use, so importing a
light module here (url, retry, record_files: the runner and its workers do) does not load SQLAlchemy.
"""

_FROM_DATABASE = frozenset({"Store", "export_jsonl", "export_tables", "resolve_path"})
_FROM_LAYOUT = frozenset({"ENERGY_COLUMNS", "METRIC_COLUMNS", "RUN_COLUMNS", "TIMELINE_COLUMNS", "flag_columns"})
_FROM_MIGRATIONS = frozenset({"MIGRATIONS", "SCHEMA_VERSION"})


def __getattr__(name):
    if name in _FROM_DATABASE:
        from eitp_bench.store import database as module
    elif name in _FROM_LAYOUT:
        from eitp_bench.store import layout as module
    elif name in _FROM_MIGRATIONS:
        from eitp_bench.store import migrations as module
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(module, name)


__all__ = sorted(_FROM_DATABASE | _FROM_LAYOUT | _FROM_MIGRATIONS)

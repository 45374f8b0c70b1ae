"""The provenance frame: one row per run, its Provenance fields and `hardware.<key>` for each hardware entry.

A run's provenance is about 2 KB of JSON, and no two runs' texts are the same: the worker records each run's
setup time, cool-down and idle watts beside what the runs of one machine and commit share (meters, boards
and their state, inputs, the cost estimate). Held as parsed, run by run, the 125 000 runs a report reads at
1 000 000 records took about 1.9 GB: every run its own copy of each shared value. So the texts are read a
chunk at a time, each parsed, and each of its mappings and lists replaced by the one object that equal
values of earlier runs already use: the runs sharing a value share one object (read-only: the analysis
never changes one).

Equal means the same `marshal` bytes: the same types (700 and 700.0, 1 and True stay apart, as their JSON
texts are), values and key order, so each run's values are exactly those of its own text. Why not compare
the JSON texts of the values, extracted in SQL (SQLite's `->`, PostgreSQL's `json ->`): it was the slower
way, 6 s for the 125 000 runs on SQLite against about 4.5 s for parsing in Python and comparing bytes, and
4.1 s for 12 500 runs on PostgreSQL (whose `->` parses the document again for each field) against 1.0 s.

The frame is the one a frame of each run's parsed row gives (tests/store/test_provenance_read.py): a field
absent from a run is NaN, JSON null is None, columns in first-seen order.
"""

from __future__ import annotations

import json
import marshal

from eitp_bench.records import Provenance
from eitp_bench.store.layout import RUNS

TOP_FIELDS = [f for f in Provenance.model_fields if f != "hardware"]
_CHUNK_ROWS = 5_000  # texts held at once: about 10 MB of real runs' provenance


def provenance_frame(store, where=None):
    """The provenance frame of the runs `where` keeps (every run when None), in store order."""
    import pandas as pd
    from sqlalchemy import select

    stmt = select(RUNS.c.run_id, RUNS.c.provenance_json).order_by(RUNS.c.seq)
    run_ids: list = []
    values: list[tuple] = []  # per run, its row's values
    shapes: list[tuple[int, tuple]] = []  # (first run, the keys of its row and of the runs after it, to the next)
    shared: dict[bytes, object] = {}  # a mapping's or list's marshal bytes → the one object its runs share
    last_text, keys, row = None, None, ()
    with store._driver_cursor(stmt if where is None else stmt.where(where), server_side=True) as cursor:
        while rows := cursor.fetchmany(_CHUNK_ROWS):
            for run_id, text in rows:
                if text != last_text:  # consecutive runs of one machine may store the very same text
                    last_text, parsed = text, _row(json.loads(text), shared)
                    if tuple(parsed) != keys:
                        keys = tuple(parsed)
                        shapes.append((len(values), keys))
                    row = tuple(parsed.values())
                run_ids.append(run_id)
                values.append(row)
    if not run_ids:
        return pd.DataFrame(columns=["run_id", *TOP_FIELDS])
    return pd.DataFrame({"run_id": run_ids, **_columns(values, shapes)})


def _row(prov: dict, shared: dict) -> dict:
    """One run's columns: its top-level fields, then hardware.<key>; mappings and lists shared."""
    hardware = prov.pop("hardware", None) or {}
    row = {**prov, **{f"hardware.{k}": v for k, v in hardware.items()}}
    for key, value in row.items():
        if type(value) is dict or type(value) is list:
            row[key] = shared.setdefault(marshal.dumps(value), value)
    return row


def _columns(values: list[tuple], shapes: list[tuple[int, tuple]]) -> dict[str, list]:
    """The runs' rows as columns, in first-seen order (as a frame of the row dicts has them): a field a run
    lacks is NaN. Runs come in stretches of one shape (the same keys in the same order), read a column at a
    time: one machine's runs are one stretch, a commit that adds a field starts another."""
    names = list(dict.fromkeys(key for _, keys in shapes for key in keys))
    ends = [start for start, _ in shapes[1:]] + [len(values)]
    columns: dict[str, list] = {name: [] for name in names}
    for (start, keys), end in zip(shapes, ends):
        at = {key: i for i, key in enumerate(keys)}
        for name, column in columns.items():
            if name in at:
                i = at[name]
                column.extend([v[i] for v in values[start:end]])
            else:
                column.extend([float("nan")] * (end - start))
    return columns

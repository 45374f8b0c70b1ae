"""The provenance frame: one row per run, its Provenance fields and `hardware.<key>` for each hardware entry.

A run's stored provenance holds its top-level fields and hardware scalars (about 600 bytes, distinct per
run: the worker records each run's setup time and cool-down), and a reference in place of each hardware
mapping or list, each stored once in hardware_values (store/hardware_values.py). The runs' texts are read a
chunk at a time and parsed, each reference kept as a placeholder; then the values referred to are read and
parsed once each, so the runs sharing a value share one object (read-only: the analysis never changes
one). At 1 000 000 records a report reads 125 000 runs: parsed whole, with their 2.3 KB of values each,
they took 4.5 s (the values shared by comparing their marshal bytes), and held one by one about 1.9 GB.

The frame is the one a frame of each run's parsed row gives (tests/store/test_provenance_read.py): a field
absent from a run is NaN, JSON null is None, columns in first-seen order.
"""

from __future__ import annotations

import json

from pydantic_core import from_json  # 2× json.loads on these texts; equal strings shared

from eitp_bench.records import Provenance
from eitp_bench.store.hardware_values import REFERENCE, value_texts
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
    placeholders: dict[int, _Reference] = {}  # hardware_values id → the one placeholder of the runs referring to it
    last_text, shape, row = None, None, ()
    with store._driver_cursor(stmt if where is None else stmt.where(where), server_side=True) as cursor:
        while rows := cursor.fetchmany(_CHUNK_ROWS):
            for run_id, text in rows:
                if text != last_text:  # consecutive runs of one machine may store the very same text
                    last_text = text
                    top, hardware = _parts(from_json(text), placeholders)
                    if (tuple(top), tuple(hardware)) != shape:
                        shape = (tuple(top), tuple(hardware))
                        shapes.append((len(values), (*shape[0], *(f"hardware.{k}" for k in shape[1]))))
                    row = (*top.values(), *hardware.values())
                run_ids.append(run_id)
                values.append(row)
    if not run_ids:
        return pd.DataFrame(columns=["run_id", *TOP_FIELDS])
    texts = value_texts(store, placeholders)
    parsed_values = {p: json.loads(texts[i]) for i, p in placeholders.items()}  # KeyError: a value not stored
    columns = _columns(values, shapes, parsed_values)
    del values
    return pd.DataFrame({"run_id": run_ids, **{name: _as_labels(column) for name, column in columns.items()}})


def _as_labels(column: list):
    """A column of text (NaN where a run lacks the field or holds null) as sorted categories, as the run
    frames' labels (store/column_read.py): a code a run, not a copy of the text a run. Any other column as it
    is, for pandas to type."""
    import pandas as pd

    if any(type(v) is not str and v == v and v is not None for v in column):  # not only text and missing
        return column
    return pd.Categorical(column) if any(type(v) is str for v in column) else column


class _Reference:
    """Where a run's row holds a hardware value not read yet (one object per value referred to)."""

    __slots__ = ()


def _parts(prov: dict, placeholders: dict) -> tuple[dict, dict]:
    """One run's top-level fields and its hardware entries, each reference as its value's placeholder."""
    if not isinstance(prov, dict):
        raise ValueError(f"a run's provenance is JSON but not a mapping: {str(prov)[:40]}")
    hardware = prov.pop("hardware", None) or {}
    if not isinstance(hardware, dict):
        raise ValueError(f"a run's provenance.hardware is not a mapping: {str(hardware)[:40]}")
    for key, value in hardware.items():
        if type(value) is dict:
            hardware[key] = placeholders.get(value[REFERENCE]) or placeholders.setdefault(value[REFERENCE], _Reference())
    return prov, hardware


def _columns(values: list[tuple], shapes: list[tuple[int, tuple]], parsed: dict) -> dict[str, list]:
    """The runs' rows as columns, in first-seen order (as a frame of the row dicts has them): a field a run
    lacks is NaN, a placeholder its parsed value. Runs come in stretches of one shape (the same keys in the
    same order), read a column at a time: one machine's runs are one stretch, a commit that adds a field
    starts another."""
    names = list(dict.fromkeys(key for _, keys in shapes for key in keys))
    ends = [start for start, _ in shapes[1:]] + [len(values)]
    columns: dict[str, list] = {name: [] for name in names}
    for (start, keys), end in zip(shapes, ends):
        at = {key: i for i, key in enumerate(keys)}
        for name, column in columns.items():
            if name not in at:
                column.extend([float("nan")] * (end - start))
                continue
            i = at[name]
            if name.startswith("hardware."):
                column.extend([parsed[v[i]] if type(v[i]) is _Reference else v[i] for v in values[start:end]])
            else:
                column.extend([v[i] for v in values[start:end]])
    return columns

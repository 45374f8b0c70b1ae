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
from eitp_bench.store.column_read import same_ids
from eitp_bench.store.hardware_values import REFERENCE, value_texts
from eitp_bench.store.layout import RUNS
from eitp_bench.store.shared_objects import SharedObjects, object_array, object_codes

TOP_FIELDS = [f for f in Provenance.model_fields if f != "hardware"]
_CHUNK_ROWS = 5_000  # texts held at once: about 10 MB of real runs' provenance


def provenance_frame(store, where=None, runs=None):
    """The provenance frame of the runs `where` keeps (every run when None), in store order. `runs`: their
    runs frame, read with the same `where`: its run_id column is shared where it names the same runs in
    the same order (a run stored between the two reads makes them differ: then the frame has its own)."""
    import pandas as pd
    from sqlalchemy import select

    stmt = select(RUNS.c.run_id, RUNS.c.provenance_json).order_by(RUNS.c.seq)
    columns = _Columns(expected=len(runs) if runs is not None else 0)
    placeholders: dict[int, _Reference] = {}  # hardware_values id → the one placeholder of the runs referring to it
    last_text, shape, row = None, None, ()
    with store._driver_cursor(stmt if where is None else stmt.where(where)) as cursor:
        while rows := cursor.fetchmany(_CHUNK_ROWS):
            run_ids: list = []
            values: list[tuple] = []  # per run of this chunk, its row's values
            shapes: list[tuple[int, tuple]] = []  # (first run, the keys of its row and the runs' after it, to the next)
            for run_id, text in rows:
                if text != last_text:  # consecutive runs of one machine may store the very same text
                    last_text = text
                    top, hardware = _parts(from_json(text), placeholders)
                    shape = (tuple(top), tuple(hardware))
                    row = (*top.values(), *hardware.values())
                if not shapes or shapes[-1][1] != shape:
                    shapes.append((len(values), shape))
                run_ids.append(run_id)
                values.append(row)
            columns.add(run_ids, values, [(at, (*top, *(f"hardware.{k}" for k in hw))) for at, (top, hw) in shapes])
            del rows, run_ids, values
    if not columns.rows:
        return pd.DataFrame(columns=["run_id", *TOP_FIELDS])
    texts = value_texts(store, placeholders)
    parsed_values = {p: json.loads(texts[i]) for i, p in placeholders.items()}  # KeyError: a value not stored
    # copy=False: a block per column, not every object column stacked into a second copy
    run_ids = columns.run_ids()
    if runs is not None and same_ids(runs["run_id"], run_ids):
        run_ids = runs["run_id"].array  # one copy of the ids (4.8 MiB of Arrow text at 1 000 000 records)
    return pd.DataFrame({"run_id": run_ids, **columns.finish(parsed_values)}, copy=False)


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


class _Columns:
    """The runs' rows as columns, filled a chunk of runs at a time, in first-seen order (as a frame of the
    row dicts has them): a field a run lacks is NaN. Each column is a `_CodedColumn` made for the runs
    expected (the runs frame read with the same condition) and grown by doubling past them, and the run ids
    are Arrow arrays, so no tuple or list per run outlives its chunk. Arrays per chunk, joined at the end,
    held the columns twice at the join (at 1 000 000 records the read's peak 14 MiB higher). Runs come in
    stretches of one shape (the same keys in the same order), read a column at a time: one machine's runs
    are one stretch, a commit that adds a field starts another."""

    def __init__(self, expected: int = 0):
        self.rows = 0
        self.capacity = expected
        self.columns: dict[str, _CodedColumn] = {}
        self.id_parts: list = []

    def add(self, run_ids: list, values: list[tuple], shapes: list[tuple[int, tuple]]) -> None:
        import pyarrow as pa

        n = len(values)
        if self.rows + n > self.capacity:
            self._grow(max(self.rows + n, 2 * self.capacity))
        for _, keys in shapes:
            for name in keys:
                if name not in self.columns:  # a field new in this chunk: NaN for the runs before
                    self.columns[name] = _CodedColumn(self.capacity)
        ends = [start for start, _ in shapes[1:]] + [n]
        for (start, keys), end in zip(shapes, ends):
            for name, column in zip(keys, zip(*values[start:end])):
                self.columns[name].put(self.rows + start, column)
        self.id_parts.append(pa.array(run_ids, type=pa.large_string()))
        self.rows += n

    def _grow(self, capacity: int) -> None:
        for column in self.columns.values():
            column.grow(capacity)
        self.capacity = capacity

    def run_ids(self):
        from eitp_bench.store.column_read import text_in_one_chunk

        return text_in_one_chunk(self.id_parts)

    def finish(self, parsed: dict) -> dict:
        """Each column, a placeholder as its parsed value, typed (`_typed`), one column at a time."""
        out = {}
        for name in list(self.columns):
            column = self.columns.pop(name).objects(self.rows)
            out[name] = _typed(_resolved(column, parsed) if name.startswith("hardware.") else column)
        return out


_NAN = float("nan")  # where a run lacks a field: one object for every column
_MOST_CODED = 4096  # distinct objects a column codes; past them it holds its objects (a value measured per run)


class _CodedColumn:
    """One provenance column while the runs are read: a small code a run into the distinct objects it holds,
    told apart by identity as `object_codes` tells them (the parsed runs share an object per equal string,
    the placeholders one per stored value), so that `objects` gives the very objects an object array of the
    values held. A column of more distinct objects (a setup time measured per run) holds them, an object
    array. A pointer a run for each of the 23 columns of the 125 000 runs a report reads at 1 000 000 records
    was the read's passing peak, 23 MiB; a code is 2 bytes."""

    __slots__ = ("codes", "distinct", "code_of", "held")

    def __init__(self, capacity: int):
        import numpy as np

        self.codes = np.zeros(capacity, dtype=np.int16)  # code 0: the field is missing (NaN)
        self.distinct, self.code_of = [_NAN], {id(_NAN): 0}
        self.held = None  # the object array, once the column has more distinct objects than it codes

    def put(self, at: int, values: tuple) -> None:
        import numpy as np

        if self.held is not None:  # through fromiter: a value that is a list stays one object
            self.held[at:at + len(values)] = np.fromiter(values, dtype=object, count=len(values))
            return
        local, firsts = object_codes(values)  # this chunk's codes, by identity, first-seen order
        codes = np.empty(len(firsts), dtype=np.int64)
        for j, first in enumerate(firsts):
            value = values[first]
            code = self.code_of.get(id(value))
            if code is None:
                code = self.code_of[id(value)] = len(self.distinct)
                self.distinct.append(value)  # kept alive here: its id stays its own
            codes[j] = code
        if len(self.distinct) > _MOST_CODED:
            self.held = self.objects(len(self.codes))
            self.codes, self.distinct, self.code_of = None, None, None
            self.put(at, values)
            return
        self.codes[at:at + len(values)] = codes[local]

    def grow(self, capacity: int) -> None:
        import numpy as np

        if self.held is not None:
            grown = np.full(capacity, _NAN, dtype=object)
            grown[:len(self.held)] = self.held
            self.held = grown
        else:
            grown = np.zeros(capacity, dtype=np.int16)
            grown[:len(self.codes)] = self.codes
            self.codes = grown

    def objects(self, rows: int):
        """The first `rows` values as an object array: each run's very object."""
        return self.held[:rows] if self.held is not None else object_array(self.distinct)[self.codes[:rows]]


def _resolved(column, parsed: dict) -> SharedObjects:
    """The column as SharedObjects (each distinct object once, a code a run), each placeholder as the value
    it stands for: one lookup per distinct object."""
    codes, firsts = object_codes(column)
    values = [column[at] for at in firsts]
    return SharedObjects(codes, object_array([parsed[v] if type(v) is _Reference else v for v in values]))


def _typed(column):
    """The column as pandas types a list of its values, but text (NaN where a run lacks the field or holds
    null) as sorted categories, as the run frames' labels are (store/column_read.py): a code a run, not a
    copy of the text a run. Mappings and lists that runs share stay SharedObjects (the same objects, a small
    code a run); those measured per run become an object array. `column`: an object array, or the
    SharedObjects of a hardware column (`_resolved`), typed from its distinct values."""
    import numpy as np
    import pandas as pd

    shared = column if isinstance(column, SharedObjects) else None
    kind = pd.api.types.infer_dtype(shared.distinct if shared is not None else column, skipna=True)
    if kind == "string":
        return pd.Categorical(np.asarray(column))
    if kind == "mixed" and any(isinstance(v, (dict, list)) for v in (shared.distinct if shared is not None else column)):
        shared = shared if shared is not None else SharedObjects.of(column)
        if shared.nbytes < 8 * len(shared):  # a byte or two a run, not a pointer
            return shared
        return np.asarray(column)  # a value per run (idle baseline): an object array
    return pd.Series(np.asarray(column).tolist()).array  # numbers, booleans, nothing but nulls: as pandas infers them

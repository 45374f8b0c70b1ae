"""A query's rows as columns, fetched from the driver a chunk at a time.

The driver hands rows as tuples with a new Python object per cell. Held all at once they are several times
the frame they become, so each chunk of rows is turned into columns and let go before the next is fetched:

- `frame_of` makes each chunk's column an Arrow array (one buffer, no object per cell) and the frame from
  those arrays. The frame is the one pandas infers from the same Python values (tests/store/
  test_store_frames.py): text becomes pandas' "str" (Arrow-backed) column, integers int64 (float64 with
  NaN where null), floats float64, a column of nothing but nulls object. A column Arrow would type
  otherwise (mixed kinds, dates, numbers past 64 bits, bytes) is passed to pandas as Python values, as
  before. Measured on the 125 000 runs a report reads at 1 000 000 records: peak memory of the read
  +116 MiB as Python lists, +74 MiB as Arrow chunks; 0.82 → 0.61 s.
- `labels`: columns of a few values repeated on every row (suite, arm, task, status …) come as pandas
  categories, sorted (so that sorting and grouping order them as text): one small code a row, where text
  stores each row's copy. Coded a chunk at a time, the column's text is never held whole. On the 125 000
  runs a report reads at 1 000 000 records (with the energy and provenance frames' labels, coded alike)
  the page's peak fell about 50 MiB.
- `columns_of` keeps Python lists (callers that loop over the values), each repeated string shared.
"""

from __future__ import annotations

from typing import Iterator, Optional

_FETCH_ROWS = 5_000


def frame_of(cursor, labels=frozenset(), instants=frozenset()):
    """The cursor's rows as a pandas frame, columns named as the cursor names them; those named in `labels`
    as sorted categories where they hold text, those in `instants` (ISO 8601 times) as datetime64[us]
    instants, parsed a chunk at a time (store/instants.py): their text is never held whole."""
    import numpy as np
    import pandas as pd

    from eitp_bench.store.instants import iso_micros  # numpy: not imported with the store

    columns = [d[0] for d in cursor.description]
    if len(set(columns)) < len(columns):  # a dict of columns cannot hold repeated names
        return pd.DataFrame.from_records(_rows_of(columns_of(cursor, len(columns))), columns=columns)
    parts: list[list] = [[] for _ in columns]
    coders = {i: _LabelCodes() for i, name in enumerate(columns) if name in labels}
    timed = {i for i, name in enumerate(columns) if name in instants}
    while rows := cursor.fetchmany(_FETCH_ROWS):
        for i, (values, column_parts) in enumerate(zip(zip(*rows), parts)):
            chunk = _arrow_chunk(values)
            if i in timed:
                column_parts.append(iso_micros(chunk))
            else:
                column_parts.append(coders[i].add(chunk) if i in coders and coders[i].takes(chunk) else chunk)
        del rows
    if not parts or not parts[0]:
        return pd.DataFrame.from_records([], columns=columns).astype({columns[i]: "datetime64[us]" for i in timed})

    def column(i, column_parts):
        if i in timed:
            return np.concatenate(column_parts)
        return coders[i].column(column_parts) if i in coders else _column(column_parts)

    return pd.DataFrame({name: column(i, column_parts) for i, (name, column_parts) in enumerate(zip(columns, parts))},
                        columns=columns)


def frames_by_key(cursor, key_columns: list[int], labels=frozenset()) -> Iterator:
    """A frame_of per stretch of rows whose `key_columns` (positions) hold equal values, in the cursor's
    order: a query ordered by those columns gives a frame per key, one held at a time."""
    from operator import itemgetter

    key_of = itemgetter(*key_columns)
    rest = cursor.fetchmany(_FETCH_ROWS)
    while rest:
        stretch = _Stretch(cursor, rest, key_of)
        yield frame_of(stretch, labels)  # frame_of fetches until the stretch ends
        rest = stretch.rest


class _Stretch:
    """The cursor-like stretch of rows that share the first row's key (frame_of reads it); rows fetched past
    it stay in `rest`."""

    def __init__(self, cursor, rows: list, key_of):
        self.description = cursor.description
        self._cursor, self.rest, self._key_of = cursor, rows, key_of
        self._key = key_of(rows[0])
        self._ended = False

    def fetchmany(self, size: int) -> list:
        if self._ended:
            return []
        if not self.rest:
            self.rest = self._cursor.fetchmany(size)
            if not self.rest:
                self._ended = True
                return []
        rows, key, key_of = self.rest, self._key, self._key_of
        if key_of(rows[-1]) == key:  # ordered by the key: every row of the chunk has it
            self.rest = []
            return rows
        n = next(i for i, row in enumerate(rows) if key_of(row) != key)
        self.rest, self._ended = rows[n:], True
        return rows[:n]


def columns_of(cursor, n_columns: int) -> Optional[list[list]]:
    """The cursor's rows as one list per column (None when there are none), each column's repeated strings
    shared (run_id, suite, arm … repeat on every metric row)."""
    out: list[list] = [[] for _ in range(n_columns)]
    shared: list[dict] = [{} for _ in range(n_columns)]
    while rows := cursor.fetchmany(_FETCH_ROWS):
        for values, column, seen in zip(zip(*rows), out, shared):
            if any(type(v) is str for v in values[:50]):
                # a text column: str or None throughout (SQLite's TEXT affinity stores a number as text),
                # so every value can key `seen` unchanged; map runs in C, ~1.6x the list comprehension
                column.extend(map(seen.setdefault, values, values))
            else:
                column.extend(values)
        del rows
    return out if out and out[0] else None


def _rows_of(columns: Optional[list[list]]) -> list:
    return list(zip(*columns)) if columns else []


def _arrow_chunk(values: tuple):
    """One chunk of a column as an Arrow array, or the Python values where Arrow cannot type them alone."""
    import pyarrow as pa

    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed kinds, numbers past 64 bits
        return list(values)
    return array.cast(pa.large_string()) if array.type == pa.string() else array  # pandas' "str" holds large_string


class _LabelCodes:
    """One label column's chunks coded as they come: each chunk's distinct texts (Arrow's dictionary
    encoding) mapped to codes shared by the whole column, nulls -1."""

    def __init__(self):
        self.codes: dict[str, int] = {}  # text → its code, in the order first seen (the codes' order)
        self.coded = True  # False once a chunk held something other than text or nulls

    def takes(self, chunk) -> bool:
        import pyarrow as pa

        self.coded = self.coded and isinstance(chunk, pa.Array) and chunk.type in (pa.large_string(), pa.null())
        return self.coded

    def add(self, chunk):
        import numpy as np
        import pyarrow as pa

        if chunk.type == pa.null():
            return np.full(len(chunk), -1, dtype=np.int32)
        encoded = chunk.dictionary_encode()
        local = np.array([self.codes.setdefault(t, len(self.codes)) for t in encoded.dictionary.to_pylist()]
                         + [-1], dtype=np.int32)  # the last: where a row is null
        return local[encoded.indices.fill_null(len(local) - 1).to_numpy()]

    def column(self, parts: list):
        """The column: categories in text order (sorting the column sorts its texts), or, where a chunk was
        not text, the values as `_column` types them."""
        import numpy as np
        import pandas as pd
        import pyarrow as pa

        texts = list(self.codes)  # by code
        if not self.coded:  # chunks coded before a chunk that was not text: their texts again, then as any column
            by_code = np.array([*texts, None], dtype=object)
            return _column([pa.array(by_code[p], type=pa.large_string()) if isinstance(p, np.ndarray) else p
                            for p in parts])
        if not texts:  # nulls only: no text to code, the column pandas infers from None
            return [None] * sum(len(p) for p in parts)
        order = np.argsort(np.array(texts, dtype=object)).astype(np.int32)
        rank = np.empty(len(order) + 1, dtype=np.int32)
        rank[order], rank[-1] = np.arange(len(order), dtype=np.int32), -1
        return pd.Categorical.from_codes(rank[np.concatenate(parts)], dtype=pd.CategoricalDtype(
            pd.Index([texts[i] for i in order], dtype="str")))


def _column(parts: list):
    """One column from its chunks: Arrow where every chunk has one of the types pandas would infer alike,
    else the Python values (pandas infers the column as it always has)."""
    import pyarrow as pa

    typed = {p.type for p in parts if isinstance(p, pa.Array) and p.type != pa.null()}
    arrow = all(isinstance(p, pa.Array) for p in parts)
    if arrow and typed == {pa.int64(), pa.float64()}:  # ints and floats in one column: float64, as pandas
        typed = {pa.float64()}
    if not arrow or len(typed) != 1 or not typed <= {pa.large_string(), pa.int64(), pa.float64(), pa.bool_()}:
        return [v for p in parts for v in (p.to_pylist() if isinstance(p, pa.Array) else p)]
    (kind,) = typed
    chunked = pa.chunked_array([p.cast(kind) for p in parts], type=kind)  # a chunk of nulls only gets the type
    if kind == pa.large_string():
        import pandas as pd

        return pd.array(chunked, dtype="str")
    return chunked.to_numpy()  # int64 with a null: float64 and NaN; bool with a null: object, as pandas infers


def positions_in(ids, wanted, *, last: bool = False):
    """For each of `wanted` (run ids), its position among `ids` (the first where one repeats, the last with
    `last`), -1 where it is not there, looked up in the Arrow text both already hold. The ids asked for are
    hashed (their distinct ones) and `ids` scanned once: nothing is made per id of `ids`. A pandas Index of
    the 125 000 run ids a report reads at 1 000 000 records makes a Python string of each to hash them (24
    MiB), and Arrow's hash table of them, made at each lookup, took about 10 MiB each time."""
    import numpy as np
    import pyarrow.compute as pc

    wanted, ids = arrow_text(wanted), arrow_text(ids)
    if not len(wanted) or not len(ids):
        return np.full(len(wanted), -1, dtype=np.int64)
    distinct = pc.unique(wanted).drop_null()
    which = np.asarray(pc.index_in(ids, value_set=distinct).fill_null(-1).to_numpy(zero_copy_only=False),
                       dtype=np.int64)  # each id's place among those asked for
    rows = np.flatnonzero(which >= 0)
    if last:
        found = np.full(len(distinct) + 1, -1, dtype=np.int64)
        np.maximum.at(found, which[rows], rows)
    else:
        found = np.full(len(distinct) + 1, len(ids), dtype=np.int64)
        np.minimum.at(found, which[rows], rows)
        found[found == len(ids)] = -1
    found[-1] = -1  # where an id asked for is null
    asked = pc.index_in(wanted, value_set=distinct).fill_null(len(distinct))
    return found[np.asarray(asked.to_numpy(zero_copy_only=False), dtype=np.int64)]


def arrow_text(values):
    """The values as Arrow text: the array pandas holds where it holds one (no copy), else made from them."""
    import pyarrow as pa

    from eitp_bench.store.instants import arrow_text_held

    held = arrow_text_held(values)
    if held is not None:
        return held
    return pa.array([None if v is None or v != v else str(v) for v in values], type=pa.large_string())

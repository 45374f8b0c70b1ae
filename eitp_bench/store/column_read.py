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

    def column(i):
        column_parts, parts[i] = parts[i], None  # a column's chunks let go as it is made: never all twice
        if i in timed:
            return np.concatenate(column_parts)
        return coders[i].column(column_parts) if i in coders else _column(column_parts)

    return pd.DataFrame({name: column(i) for i, name in enumerate(columns)}, columns=columns)


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
    if kind == pa.large_string():
        return text_in_one_chunk(parts)
    chunked = pa.chunked_array([p.cast(kind) for p in parts], type=kind)  # a chunk of nulls only gets the type
    return chunked.to_numpy()  # int64 with a null: float64 and NaN; bool with a null: object, as pandas infers


def text_in_one_chunk(parts: list):
    """pandas text (held in Arrow) of these Arrow chunks read a page at a time, joined into one chunk. pyarrow
    takes rows from a column of many chunks by joining them all first: every few rows picked from the 125 000
    run ids a report reads at 1 000 000 records (a group's runs, the newest night) cost a passing copy of all
    of them, 4.8 MiB, in the report's last and highest moments; joined once here, while the read's own pages
    are held anyway."""
    import pandas as pd
    import pyarrow as pa

    text = pa.large_string()
    joined = pa.concat_arrays([p.cast(text) for p in parts]) if parts else pa.array([], type=text)  # nulls: typed
    return pd.array(pa.chunked_array([joined], type=text), dtype="str")


def same_ids(ours, theirs) -> bool:
    """Whether two columns of run ids hold the same ids in the same order, none missing: compared in the
    Arrow text pandas holds (arrow_text), no Python string an id."""
    import pyarrow.compute as pc

    ours, theirs = arrow_text(ours), arrow_text(theirs)
    if len(ours) != len(theirs) or ours.null_count or theirs.null_count:
        return False
    return len(ours) == 0 or ours is theirs or bool(pc.all(pc.equal(ours, theirs)).as_py())


def all_distinct(ids) -> bool:
    """Whether no value of `ids` (run ids) repeats. Where pandas holds them as Arrow text they are counted a
    bucket at a time, the bucket of a value being its last byte (nulls and empty texts a bucket each): equal
    values share a bucket, and Arrow's count of distinct values then hashes one bucket's values at once (a
    16th of hexadecimal run ids).
    pandas' `is_unique` makes a Python string of each value to hash it, and Arrow's count over all of them
    copies every text into its table: passing peaks of 16 and 12 MiB for the 125 000 run ids a report
    reads at 1 000 000 records, each the page's peak in its turn."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from eitp_bench.store.instants import arrow_text_held

    held = arrow_text_held(ids)
    if held is None:
        return bool(ids.is_unique)
    chunks = [c for c in (held.chunks if isinstance(held, pa.ChunkedArray) else [held]) if len(c)]
    # per chunk, its values' positions by bucket: a bucket's values are taken chunk by chunk (a take from a
    # chunked array first joins its chunks: a copy of every text)
    sorted_positions = []
    for chunk in chunks:
        buckets = _last_byte_buckets(chunk)
        sorted_positions.append((np.argsort(buckets, kind="stable"),
                                 np.concatenate([[0], np.cumsum(np.bincount(buckets, minlength=_BUCKETS))])))
    for bucket in range(_BUCKETS):
        parts = [chunk.take(order[bounds[bucket]:bounds[bucket + 1]])
                 for chunk, (order, bounds) in zip(chunks, sorted_positions) if bounds[bucket + 1] > bounds[bucket]]
        n = sum(len(p) for p in parts)
        if n > 1 and pc.count_distinct(pa.chunked_array(parts, type=held.type), mode="all").as_py() != n:
            return False
    return True


_BUCKETS = 258  # a value's last byte (0–255), 256 for null, 257 for the empty text


def _last_byte_buckets(chunk, piece: int = 1 << 16):
    """Per value of an Arrow text array, its bucket (all_distinct), read from the array's offsets and bytes
    `piece` values at a time (the offsets' arithmetic in int64 over every value at once was 6 MiB)."""
    import numpy as np
    import pyarrow as pa

    _, offsets_buffer, data_buffer = chunk.buffers()
    offset_type = np.int64 if pa.types.is_large_string(chunk.type) else np.int32
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[chunk.offset:chunk.offset + len(chunk) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None and data_buffer.size else \
        np.zeros(1, np.uint8)  # only empty texts and nulls: no byte is read
    buckets = np.empty(len(chunk), dtype=np.int16)
    for at in range(0, len(chunk), piece):
        stop = min(at + piece, len(chunk))
        starts, ends = offsets[at:stop], offsets[at + 1:stop + 1]
        buckets[at:at + piece] = np.where(ends > starts, data[np.maximum(ends - 1, 0)], 257)
    if chunk.null_count:
        buckets[chunk.is_null().to_numpy(zero_copy_only=False)] = 256
    return buckets


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
    if same_ids(ids, wanted) and all_distinct(ids):
        # the very ids asked for, in their order (a provenance's runs are its runs frame's): each is where it is.
        # Hashed, the 125 000 run ids a report reads at 1 000 000 records were an 18 MiB passing peak
        return np.arange(len(ids), dtype=np.int64)
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

"""A column of Python objects that many rows share, held as a small code a row.

The provenance frame's hardware columns (a run's state, meter info, isolation, cost estimate …) hold parsed
mappings and lists, and the runs of one machine and commit share one object per equal value
(store/provenance_read.py). As pandas object columns each run still costs an 8-byte pointer per column:
14 columns × 125 000 runs, 13 MiB of a report at 1 000 000 records, held to its end. `SharedObjects`
keeps each distinct object once and a code per row, 1 byte where a column has fewer than 128 distinct
objects (2 or 4 past that), so the column grows by a byte a run, not eight.

It is a pandas ExtensionArray: filters, takes, `tolist()`, iteration and `astype(object)` give the same
objects an object column would (NaN where a run lacks the field, None for JSON null). The objects are
read-only, as the reader's always were: a row's value is the object other rows share.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray, ExtensionDtype, register_extension_dtype, take
from pandas.api.indexers import check_array_indexer


@register_extension_dtype
class SharedObjectsDtype(ExtensionDtype):
    name = "shared_objects"
    type = object
    kind = "O"
    na_value = np.nan

    @classmethod
    def construct_array_type(cls):
        return SharedObjects


def _code_type(n: int):
    """The smallest signed integer type that numbers n distinct objects."""
    for kind in (np.int8, np.int16, np.int32):
        if n <= np.iinfo(kind).max:
            return kind
    return np.int64


class SharedObjects(ExtensionArray):
    """`values[codes]`, never built whole: `codes` one integer a row, `values` each distinct object once."""

    def __init__(self, codes, values):
        self._values = values  # numpy object array of the distinct objects
        self._codes = np.asarray(codes, dtype=_code_type(len(values)))

    @classmethod
    def of(cls, column) -> "SharedObjects":
        """The array of an object column, the same objects coded by identity (store/provenance_read.py's
        object_codes: equal codes, the same object)."""
        column = np.asarray(column, dtype=object)
        codes, firsts = object_codes(column)
        return cls(codes, object_array([column[at] for at in firsts]))

    @property
    def distinct(self):
        """Each distinct object once (a numpy object array; read-only, as the objects are)."""
        return self._values

    # --- what pandas asks of an ExtensionArray
    @classmethod
    def _from_sequence(cls, scalars, *, dtype=None, copy=False):
        if isinstance(scalars, SharedObjects):
            return scalars.copy() if copy else scalars
        return cls.of(object_array(list(scalars)))

    @classmethod
    def _from_factorized(cls, values, original: "SharedObjects"):
        return cls(np.arange(len(values)), original._values[values])

    def _values_for_factorize(self):
        return self._codes.astype(np.intp), -1  # by object: the codes (never -1)

    @property
    def dtype(self):
        return SharedObjectsDtype()

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, item):
        if isinstance(item, (int, np.integer)):
            return self._values[self._codes[item]]
        item = check_array_indexer(self, item) if not isinstance(item, slice) else item
        return SharedObjects(self._codes[item], self._values)

    def __iter__(self):
        return iter(self.tolist())

    def __array__(self, dtype=None, copy=None):
        out = self._values[self._codes]
        return out if dtype is None or np.dtype(dtype) == object else out.astype(dtype)

    def tolist(self) -> list:
        return self._values[self._codes].tolist()

    def __eq__(self, other):
        other = np.asarray(other, dtype=object) if not np.isscalar(other) and other is not None else other
        return np.asarray(self) == other

    @property
    def nbytes(self) -> int:
        return int(self._codes.nbytes + self._values.nbytes)

    def isna(self):
        return pd.isna(self._values)[self._codes] if len(self._values) else np.zeros(len(self), dtype=bool)

    def take(self, indices, *, allow_fill: bool = False, fill_value=None):
        values = self._values
        if allow_fill:  # -1 in indices: a missing value, its own object at the end of the values
            filler = np.empty(1, dtype=object)
            filler[0] = np.nan if fill_value is None else fill_value  # item by item: a list stays one object
            values = np.concatenate([values, filler])
            codes = take(self._codes.astype(np.int64), indices, allow_fill=True, fill_value=len(values) - 1)
        else:
            codes = take(self._codes, indices)
        return SharedObjects(codes, values)

    def copy(self):
        return SharedObjects(self._codes.copy(), self._values)

    @classmethod
    def _concat_same_type(cls, to_concat):
        parts = list(to_concat)
        offsets = np.cumsum([0] + [len(p._values) for p in parts[:-1]])
        values = np.concatenate([p._values for p in parts]) if parts else np.empty(0, dtype=object)
        codes = np.concatenate([p._codes.astype(np.int64) + o for p, o in zip(parts, offsets)]) if parts else []
        return cls(codes, values)

    def astype(self, dtype, copy: bool = True):
        if isinstance(dtype, SharedObjectsDtype):
            return self.copy() if copy else self
        if isinstance(dtype, np.dtype) and dtype == object or dtype in (object, "object", "O"):
            return np.asarray(self)
        return super().astype(dtype, copy=copy)


def object_codes(values):
    """(code per value, position of each code's first value): equal codes, the same object, codes in
    first-seen order. The objects are told apart by their ids, hashed in numpy (pandas.factorize): the runs
    store/provenance_read.py makes share one object per equal value, and analysis/per_object.py derives
    from each object once with these codes. A column held as SharedObjects gives them from its own codes:
    no list of its values, no hashing."""
    held = getattr(values, "array", values)
    if isinstance(held, SharedObjects):
        present, firsts = np.unique(held._codes, return_index=True)
        seen = np.argsort(firsts)  # the codes present, in the order their first rows come
        renumber = np.zeros(len(held._values), dtype=np.int32)
        renumber[present[seen]] = np.arange(len(present), dtype=np.int32)
        return renumber[held._codes], firsts[seen].tolist()
    ids = np.fromiter(map(id, values), dtype=np.uint64, count=len(values))
    codes, _ = pd.factorize(ids)  # codes in first-seen order
    firsts = np.unique(codes, return_index=True)[1]
    return codes, firsts.tolist()


def object_array(items: list):
    """An object array of `items`, item by item: a list among them stays one object (numpy would spread it)."""
    out = np.empty(len(items), dtype=object)
    for i, v in enumerate(items):
        out[i] = v
    return out

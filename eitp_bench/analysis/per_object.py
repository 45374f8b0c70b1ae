"""Work done once per parsed object that many runs share.

The runs of one machine and commit share one object for each equal provenance value (the store's reader,
store/provenance_read.py): a hardware state, a meter info. What the analysis derives from such a value
(a state label, a counter step, a JSON text) is then computed once per object, not once per run: 125 000
times for a report's runs at 1 000 000 records. The answers are shared too, so they are read-only.

The objects are told apart by their ids, hashed in numpy (pandas.factorize): a Python loop keyed on id()
took 0.5 s over the 22 columns × 125 000 runs a report at 1 000 000 records derives from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Optional

from eitp_bench.store.column_read import all_distinct, arrow_text, positions_in
from eitp_bench.store.shared_objects import object_codes  # the reader makes the shared objects


def once_per_object(values: list, derive: Callable[[Any], Any]) -> list:
    """[derive(v) for v in values], derive called once per distinct object. `values` keeps its objects
    alive while it runs, so no id is reused for another."""
    import numpy as np

    if not values:
        return []
    codes, firsts = object_codes(values)
    derived = np.empty(len(firsts), dtype=object)
    for code, at in enumerate(firsts):  # item by item: an answer that is a list must stay one object
        derived[code] = derive(values[at])
    return derived[codes].tolist()


def counts_per_object(values) -> list[tuple[Any, int]]:
    """(object, how many of `values` are it) for each distinct object, in first-seen order. `values`: a list,
    or a column (a SharedObjects one is counted from its own codes, with no list of its values)."""
    import numpy as np

    if not len(values):
        return []
    codes, firsts = object_codes(values)
    items = values.iloc if hasattr(values, "iloc") else values
    return [(items[at], int(n)) for at, n in zip(firsts, np.bincount(codes, minlength=len(firsts)).tolist())]


class RunPositions:
    """Where each run id sits in a column of run ids (a provenance frame's, store order), looked up in the
    Arrow text the frame already holds (store/column_read.positions_in): nothing is made per run, where the
    ids as a sorted bytes array took 6 MiB and a Python string a run while it was built. A run id held
    twice: its last row, as a dict built from the rows keeps it."""

    def __init__(self, run_ids):
        self._ids = arrow_text(run_ids)  # a frame's column: the Arrow text it holds
        self._last = None

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def last(self):
        """Per row, whether it is the row that stands for its run id (the last of its id)."""
        import numpy as np

        if self._last is None:
            if all_distinct(self._ids):  # the usual case, a provenance frame's: every row its run's; looking every
                # id up among all of them hashed 125 000 ids twice at 1 000 000 records, the page's peak (+14 MiB)
                self._last = np.ones(len(self._ids), dtype=bool)
            else:
                self._last = self.of(self._ids) == np.arange(len(self._ids))
        return self._last

    def of(self, run_ids):
        """The position of each of `run_ids`, -1 where it is not here."""
        return positions_in(self._ids, run_ids, last=True)

    def run_id(self, position: int) -> str:
        return self._ids[position].as_py()


class RunValues(Mapping):
    """run_id → value for the runs that have one, as a code per run into the distinct values (objects that
    many runs share), not a dict of every run id. `values_for` looks up many runs at once."""

    def __init__(self, positions: RunPositions, codes, values: list):
        self._positions, self._codes, self._values = positions, codes, values

    def values_for(self, run_ids) -> list:
        """The value of each of `run_ids` (None where it has none)."""
        import numpy as np

        at = self._positions.of(run_ids)
        codes = np.where(at >= 0, self._codes[np.maximum(at, 0)], -1) if len(self._codes) else np.full(len(at), -1)
        values = [*self._values, None]  # code -1: none
        return [values[c] for c in codes.tolist()]

    def over(self, fallback: "RunValues") -> "RunValues":
        """These values, and `fallback`'s for the runs without one (the same runs, the same positions)."""
        import numpy as np

        codes = np.where(self._codes >= 0, self._codes + len(fallback._values), fallback._codes)
        return RunValues(self._positions, codes, [*fallback._values, *self._values])

    def __getitem__(self, run_id):
        (value,) = self.values_for([run_id])
        if value is None:
            raise KeyError(run_id)
        return value

    def __iter__(self):
        import numpy as np

        return (self._positions.run_id(at) for at in np.flatnonzero(self._held()).tolist())

    def __len__(self) -> int:
        return int(self._held().sum())

    def _held(self):
        return (self._codes >= 0) & self._positions.last


def run_values(provenance, column: str, derive: Callable[[Any], Any], positions: Optional[RunPositions] = None):
    """run_id → derive(v) for each run whose `column` holds a mapping v and derive(v) is not None; derive
    called once per shared object. `positions`: the provenance's RunPositions, when already made."""
    import numpy as np

    if provenance is None or len(provenance) == 0:
        return RunValues(RunPositions([]), np.full(0, -1, dtype=np.int32), [])
    positions = positions if positions is not None else RunPositions(provenance["run_id"])
    if column not in provenance.columns:
        return RunValues(positions, np.full(len(provenance), -1, dtype=np.int32), [])
    values = provenance[column]
    codes, firsts = object_codes(values)  # from its own codes where the column is SharedObjects
    derived = [derive(v) if isinstance(v, dict) else None for v in (values.iloc[at] for at in firsts)]
    kept = [d is not None for d in derived]
    renumber = np.cumsum(kept, dtype=np.int32) - 1  # codes of the derived values that are kept
    renumber = np.append(np.where(kept, renumber, -1), -1).astype(np.int32)
    return RunValues(positions, renumber[codes], [d for d in derived if d is not None])


def values_for(mapping, run_ids) -> list:
    """The values of `run_ids` in a RunValues or a plain dict (None where a run has none)."""
    if isinstance(mapping, RunValues):
        return mapping.values_for(run_ids)
    return [mapping.get(str(r)) for r in run_ids]

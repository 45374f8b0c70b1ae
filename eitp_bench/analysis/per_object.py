"""Work done once per parsed object that many runs share.

The runs of one machine and commit share one object for each equal provenance value (the store's reader,
store/provenance_read.py): a hardware state, a meter info. What the analysis derives from such a value
(a state label, a counter step, a JSON text) is then computed once per object, not once per run: 125 000
times for a report's runs at 1 000 000 records. The answers are shared too, so they are read-only.
"""

from __future__ import annotations

from typing import Any, Callable


def once_per_object(values: list, derive: Callable[[Any], Any]) -> list:
    """[derive(v) for v in values], derive called once per distinct object. `values` keeps its objects
    alive while it runs, so no id is reused for another."""
    done: dict[int, Any] = {}
    return [done[id(v)] if id(v) in done else done.setdefault(id(v), derive(v)) for v in values]

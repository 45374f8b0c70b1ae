"""`Quantity`: every theory output carries its definition, units, source and temperature."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass
class Quantity:
    name: str
    value: Optional[float]  # None when it cannot be computed (the notes say why)
    unit: str
    definition: str
    source: str
    operationalisation: bool  # True when the definition is ours, not the cited paper's
    temperature_k: Optional[float] = None  # the heat-sink temperature used, in kelvin
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # JSON has no inf/nan: an unrepresentable value becomes None with a note.
        if d["value"] is not None and not math.isfinite(d["value"]):
            d["notes"] = d["notes"] + [f"value was {d['value']!r}; written as null"]
            d["value"] = None
        return d


def as_dicts(quantities) -> list[dict[str, Any]]:
    return [q.as_dict() for q in quantities]

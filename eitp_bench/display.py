"""Values as a person reads them, for the HTML report and the terminal alike: never a Python repr.

None is "—" (or "off" where a setting is unused), lists are joined, mappings are `key: value`
pairs, booleans are yes/no and floats have a few significant digits.
"""

from __future__ import annotations


def num(value, digits: int = 3) -> str:
    if value is None or value != value:
        return "—"
    if float(value).is_integer() and 1e4 <= abs(value) < 1e15:  # bytes, counts: 428,875 rather than 4.289e+05
        return f"{int(value):,}"
    return f"{value:.{digits}g}"


def cell(value, none: str = "—") -> str:
    """Any value as one cell of text."""
    if value is None or (isinstance(value, float) and value != value):
        return none
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return num(value, 4)
    if isinstance(value, (list, tuple, set)):
        sep = " · " if any(isinstance(v, dict) for v in value) else ", "  # each mapping's pairs stay together
        return sep.join(cell(v, none) for v in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {cell(v, none)}" for k, v in value.items()) if value else "none"
    return str(value)

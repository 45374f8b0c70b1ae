"""Stored times (ISO 8601 text) as instants: datetime64[us] UTC, NaT where missing.

A run's start and end are stored as text. The report's runs hold them as instants (store/column_read.py
parses each chunk of rows as it is fetched): 8 bytes a time where the text is 40, for every run a report
reads, held to its end (9.7 MiB of text for the 125 000 runs at 1 000 000 records). The parse is the one
`stats.planning.seconds` makes of the text: naive times are UTC, exact to the microsecond, so differences
and seconds of the instants equal those of the text.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def iso_micros(values) -> np.ndarray:
    """Times (ISO 8601 text; None or NaN where missing) as a datetime64[us] array of UTC instants, NaT where
    missing: naive texts taken as UTC, as `seconds` takes them. Exact to the microsecond, so a difference of
    two is what datetime's gives, and `seconds` of it what `seconds` of the text gives. 8 bytes a time,
    where the text of one is 40 (a report holds its 125 000 runs' two times at 1 000 000 records)."""
    import pandas as pd

    parsed = _arrow_instants(values)
    if parsed is not None:
        return parsed
    values = pd.Series(values.to_pylist() if hasattr(values, "to_pylist") else values, dtype=object)
    missing = values.isna().to_numpy()
    texts = values[~missing].tolist()
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[us]")
    micros = iso_texts_micros(texts) if texts and all(type(v) is str for v in texts) else None
    if micros is None:  # what pandas reads otherwise than fromisoformat, item by item
        micros = np.array([micros_of(v) for v in texts], dtype=np.int64)
    out[~missing] = micros.astype("datetime64[us]")
    return out


def _arrow_instants(values) -> Optional[np.ndarray]:
    """Text in Arrow (a chunk of a read, or a column pandas holds in Arrow), parsed by Arrow: no Python string
    a time. None where Arrow will not read one: a time without an offset (taken as UTC here, where Arrow asks
    for a zone), more than microseconds, or text not held in Arrow."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data = arrow_text_held(values)
    if data is None:
        return None
    try:
        stamps = pc.cast(data, pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return np.asarray(stamps.to_numpy(zero_copy_only=False), dtype="datetime64[us]")


def arrow_text_held(values):
    """The Arrow text array `values` is, or that pandas holds for it (no copy); None where it is not text
    held in Arrow."""
    import pyarrow as pa

    held = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else \
        getattr(getattr(values, "array", values), "_pa_array", None)
    if held is None or not (pa.types.is_large_string(held.type) or pa.types.is_string(held.type)):
        return None
    return held


def micros_of(value) -> int:
    """One time (ISO 8601 text, or seconds) as whole microseconds since the epoch, naive = UTC (`seconds` of
    a text is this / 1e6, as datetime.timestamp computes it)."""
    from datetime import datetime, timedelta, timezone

    if isinstance(value, (int, float, np.integer, np.floating)):
        return round(float(value) * 1e6)
    t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return (t - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)


def iso_texts_micros(texts: list[str]) -> Optional[np.ndarray]:
    """ISO 8601 texts as whole microseconds since the epoch (naive = UTC); None where pandas reads one
    differently from datetime.fromisoformat (the caller then parses item by item)."""
    import pandas as pd

    try:
        stamps = pd.to_datetime(pd.Series(texts, dtype=object), utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    if stamps.isna().any():
        return None
    return stamps.astype("datetime64[us, UTC]").astype("int64").to_numpy()

"""Stored times as instants (store/instants.py) are exactly the times `datetime.fromisoformat` reads from
the text, to the microsecond: UTC offsets, "Z", naive times (taken as UTC), missing ones (NaT), through
Arrow's parse and through the item-by-item one; the seconds and differences of the instants equal those
of the text (the judge's batch counts and the time section read them)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa

from eitp_bench.analysis.runtime import _seconds
from eitp_bench.analysis.stats.planning import seconds
from eitp_bench.store.instants import iso_micros

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _texts(n: int, seed: int, naive: bool = False) -> list:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        zone = timezone(timedelta(minutes=rng.choice([0, 60, -300, 330])))
        t = datetime(2026, 1, 1, tzinfo=zone) + timedelta(microseconds=rng.randrange(10 ** 13))
        text = t.isoformat()
        if i % 5 == 0:
            text = text.replace("+00:00", "Z")
        if naive and i % 3 == 0:
            text = t.replace(tzinfo=None).isoformat()
        out.append(None if i % 11 == 4 else text)
    return out


def _micros(text):
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    t = t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return (t - EPOCH) // timedelta(microseconds=1)


def _check(got, texts):
    assert got.dtype == np.dtype("datetime64[us]") and len(got) == len(texts)
    for value, text in zip(got, texts):
        if text is None:
            assert np.isnat(value)
        else:
            assert int(value.astype(np.int64)) == _micros(text)


def test_instants_are_the_texts_times_to_the_microsecond_by_either_parse():
    with_offsets, some_naive = _texts(3000, 1), _texts(3000, 2, naive=True)
    _check(iso_micros(pa.array(with_offsets, type=pa.large_string())), with_offsets)  # Arrow's parse
    _check(iso_micros(pd.Series(with_offsets, dtype="str")), with_offsets)
    _check(iso_micros(pa.array(some_naive, type=pa.large_string())), some_naive)  # Arrow refuses: item by item
    _check(iso_micros(some_naive), some_naive)
    _check(iso_micros([None, None]), [None, None])


def test_seconds_and_differences_of_instants_equal_those_of_the_text():
    texts = [t for t in _texts(2000, 3, naive=True) if t is not None]
    instants = iso_micros(texts)
    np.testing.assert_array_equal(seconds(instants), seconds(texts))
    stamps = pd.Series(instants).tolist()
    for a, b, x, y in zip(texts, texts[1:], stamps, stamps[1:]):
        if (a.endswith("Z") or "+" in a[10:] or "-" in a[10:]) == (b.endswith("Z") or "+" in b[10:] or "-" in b[10:]):
            assert _seconds(a, b) == _seconds(x, y)  # the text's own difference where both are aware or naive
    assert _seconds(stamps[0], pd.NaT) is None and _seconds(None, stamps[0]) is None

"""Run ids held as Arrow text: whether they repeat (all_distinct), and text read a page at a time held as one
chunk (text_in_one_chunk), against what pandas says of the same values."""

import random

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from eitp_bench.analysis.per_object import RunPositions
from eitp_bench.store.column_read import all_distinct, text_in_one_chunk

POOL = [None, "", "a", "b", "ab", "ba", "run-1", "run-2", "xxx", "é", "aé", "e\u0301"]


def _arrow_text(values, cuts, text_type):
    """The values as a pandas text column whose Arrow array has a chunk between each of `cuts`."""
    bounds = [0, *cuts, len(values)]
    chunks = [pa.array(values[a:b], type=text_type) for a, b in zip(bounds, bounds[1:])]
    return pd.Series(pd.array(pa.chunked_array(chunks, type=text_type), dtype="str")) if text_type == pa.large_string() \
        else pa.chunked_array(chunks, type=text_type)


@pytest.mark.parametrize("text_type", [pa.large_string(), pa.string()])
def test_all_distinct_says_what_pandas_says_of_random_ids(text_type):
    rng = random.Random(7)
    answers = set()
    for _ in range(1500):
        n = rng.randint(0, 30)
        pool = POOL + [f"r{rng.randint(0, 40)}" for _ in range(6)]
        values = [rng.choice(pool) for _ in range(n)]
        cuts = sorted(rng.sample(range(1, n), min(n - 1, rng.randint(0, 3)))) if n > 1 else []
        column = _arrow_text(values, cuts, text_type)
        expected = pd.Series(values, dtype=object).is_unique
        assert all_distinct(column) == expected, (values, cuts)
        answers.add(expected)
    assert answers == {True, False}  # both cases were met


def test_all_distinct_of_a_slice_reads_only_its_values():
    # a column sliced after the read: its Arrow array starts at an offset into the buffers
    column = _arrow_text(["a", "b", "a", "c", "d"], [], pa.large_string())
    assert not all_distinct(column)
    assert all_distinct(column.iloc[2:].reset_index(drop=True))
    assert all_distinct(pd.Series(pd.array(column.array._pa_array.slice(1, 3), dtype="str")))


def test_all_distinct_of_values_not_in_arrow_uses_pandas():
    assert all_distinct(pd.Series(["x", "y"], dtype=object))
    assert not all_distinct(pd.Series([1, 2, 1]))


def test_run_positions_last_row_of_a_repeated_run_id():
    # the last row of a run held twice stands for it; every row does where no id repeats
    repeated = RunPositions(pd.Series(["r1", "r2", "r1", "r3"], dtype="str"))
    assert repeated.last.tolist() == [False, True, True, True]
    distinct = RunPositions(pd.Series(["r1", "r2", "r3"], dtype="str"))
    assert distinct.last.tolist() == [True, True, True]


def test_text_in_one_chunk_holds_the_pages_values_in_one_chunk():
    pages = [pa.array(["a", None, "b"], type=pa.large_string()), pa.array([None, None], type=pa.null()),
             pa.array(["c"], type=pa.large_string())]
    column = text_in_one_chunk(pages)
    assert column.dtype == "str"
    assert column._pa_array.num_chunks == 1
    assert pd.Series(column).tolist() == pd.Series(["a", None, "b", None, None, "c"], dtype="str").tolist()
    taken = pd.Series(column).iloc[np.array([5, 0])]
    assert taken.tolist() == ["c", "a"]
    assert len(text_in_one_chunk([])) == 0


def _positions_by_dict(ids, wanted, last):
    found = {}
    for i, v in enumerate(ids):
        if v is not None and (last or v not in found):
            found[v] = i
    return [-1 if w is None else found.get(w, -1) for w in wanted]


def test_positions_in_finds_what_a_dict_of_the_ids_finds():
    # the ids asked for are often the very ids looked in (a provenance's runs are its runs frame's): that
    # case is answered without hashing, and must answer as the lookup does, repeated ids and nulls included
    from eitp_bench.store.column_read import positions_in

    rng = random.Random(11)
    for _ in range(2000):
        n = rng.randint(1, 9)
        ids = [rng.choice([None, "a", "b", "c", "d", "e", "f"]) for _ in range(n)]
        wanted = list(ids) if rng.random() < 0.6 else [rng.choice([None, "a", "b", "c", "x"]) for _ in range(n)]
        column = pd.Series(ids, dtype="str")
        asked = column if wanted == ids and rng.random() < 0.5 else pd.Series(wanted, dtype="str")
        for last in (False, True):
            assert positions_in(column, asked, last=last).tolist() == _positions_by_dict(ids, wanted, last)

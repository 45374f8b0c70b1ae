"""SharedObjects (store/shared_objects.py) behaves as the object column of the same values would: under
filters, takes (with missing rows), concatenation, NA checks, factorizing and conversion, the rows give the
very objects, NaN and None, in their places."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eitp_bench.store.shared_objects import SharedObjects, SharedObjectsDtype

STATE, LIMITS = {"power_limit_w": 700.0}, [1, 2]


def _pair():
    values = [STATE, LIMITS, STATE, np.nan, None, STATE, LIMITS]
    column = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        column[i] = v
    shared = pd.DataFrame({"run_id": list("abcdefg"), "v": SharedObjects.of(column)})
    plain = pd.DataFrame({"run_id": list("abcdefg"), "v": pd.Series(column, dtype=object)})
    return shared, plain


def _same(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g is w or (g != g and w != w)  # the same object, or both NaN


def test_each_distinct_object_is_held_once_with_a_byte_a_row():
    shared, plain = _pair()
    array = shared["v"].array
    assert isinstance(shared["v"].dtype, SharedObjectsDtype)
    assert array.nbytes == len(shared) + 4 * 8  # four distinct objects (STATE, LIMITS, NaN, None)
    _same(shared["v"].tolist(), plain["v"].tolist())
    _same(list(shared["v"]), plain["v"].tolist())
    _same(list(np.asarray(shared["v"])), plain["v"].tolist())


def test_filters_takes_and_copies_give_the_rows_objects():
    shared, plain = _pair()
    for pick in (lambda f: f[f["run_id"].isin(["a", "d", "g"])], lambda f: f.iloc[[6, 0, 4]],
                 lambda f: f.drop_duplicates("run_id", keep="last"), lambda f: f.iloc[2:5].reset_index(drop=True),
                 lambda f: f.copy(), lambda f: f.sort_values("run_id", ascending=False)):
        _same(pick(shared)["v"].tolist(), pick(plain)["v"].tolist())
    assert shared.loc[shared["run_id"] == "b", "v"].iloc[0] is LIMITS


def test_a_missing_row_is_nan_and_isna_matches_the_object_column():
    shared, plain = _pair()
    _same(shared.reindex([0, 9, 1])["v"].tolist(), [STATE, np.nan, LIMITS])
    assert shared["v"].isna().tolist() == plain["v"].isna().tolist() == [False] * 3 + [True, True] + [False] * 2
    assert shared["v"].notna().sum() == 5


def test_concatenation_and_factorizing_keep_each_rows_object():
    shared, plain = _pair()
    _same(pd.concat([shared, shared.iloc[::-1]])["v"].tolist(), pd.concat([plain, plain.iloc[::-1]])["v"].tolist())
    codes, uniques = pd.factorize(shared["v"], use_na_sentinel=False)
    assert codes.tolist() == [0, 1, 0, 2, 3, 0, 1]
    _same(list(uniques), [STATE, LIMITS, np.nan, None])


def test_conversion_to_objects_gives_the_object_frame():
    shared, plain = _pair()
    as_objects = shared.astype({"v": object})
    assert as_objects["v"].dtype == object
    pd.testing.assert_frame_equal(as_objects, plain)
    pd.testing.assert_frame_equal(shared, shared.copy())


def test_object_codes_of_the_array_are_those_of_its_objects_listed():
    """object_codes reads a SharedObjects column's own codes (no list of its values): the same codes in
    first-seen order and the same first rows as the objects listed give, after a filter or a reorder too."""
    from eitp_bench.store.shared_objects import object_codes

    shared, _ = _pair()
    for column in (shared["v"], shared["v"].iloc[[6, 1, 5, 0, 4]], shared["v"].iloc[1:]):
        codes, firsts = object_codes(column)
        want_codes, want_firsts = object_codes(column.tolist())
        assert codes.tolist() == want_codes.tolist() and firsts == want_firsts

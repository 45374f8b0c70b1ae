"""once_per_object: one call per distinct object, the answers in the values' order."""

from eitp_bench.analysis.per_object import counts_per_object, once_per_object


def test_each_object_is_derived_once_and_equal_but_distinct_objects_apart():
    shared, twin = {"power_limit_w": 700.0}, {"power_limit_w": 700.0}
    values = [shared, twin, shared, None, shared, twin]
    calls = []

    def derive(v):
        calls.append(v)
        return len(calls)

    assert once_per_object(values, derive) == [1, 2, 1, 3, 1, 2]
    assert calls == [shared, twin, None]  # twin is equal to shared, but another object: derived on its own
    assert once_per_object([], derive) == []


def test_an_answer_that_is_a_list_stays_one_object_per_distinct_value():
    a, b = {"flags": ["x"]}, {"flags": []}
    out = once_per_object([a, b, a], lambda v: list(v["flags"]))
    assert out == [["x"], [], ["x"]]
    assert out[0] is out[2] and out[0] is not out[1]


def test_counts_per_object_counts_each_object_in_first_seen_order():
    shared, twin = {"state": 1}, {"state": 1}
    values = [twin, shared, shared, None, shared, twin, None]
    assert [(v is twin, v is shared, n) for v, n in counts_per_object(values)] == \
        [(True, False, 2), (False, True, 3), (False, False, 2)]
    assert counts_per_object([]) == []


def test_run_values_answer_as_the_dict_of_every_runs_value_would():
    """RunValues against the dict it replaces ({run_id: derive(v)} over the rows, a later row of a run id
    winning): shared and distinct mappings, values that are not mappings, answers of None left out, run ids
    absent, ids beyond ASCII, a run id held twice, ids that are prefixes of others."""
    import random

    import pandas as pd

    from eitp_bench.analysis.per_object import RunValues, run_values, values_for

    rng = random.Random(7)
    shared = [{"k": i, "keep": i % 3 != 0} for i in range(5)]
    ids = [f"r{i}" for i in range(300)] + ["r1", "r1é", "r", "r10"]  # r1 and r10 again: their last rows count
    column = [rng.choice([*shared, {"k": 99, "keep": True}, None, float("nan"), "text"]) for _ in ids]
    provenance = pd.DataFrame({"run_id": ids, "hardware.x": column})

    def derive(v):
        return ("kept", v["k"]) if v["keep"] else None

    got = run_values(provenance, "hardware.x", derive)
    want = {}
    for r, v in zip(ids, column):
        want.pop(r, None)
        if isinstance(v, dict) and derive(v) is not None:
            want[r] = derive(v)
    assert isinstance(got, RunValues) and dict(got) == want and len(got) == len(want)
    asked = [*ids, "absent", "r1é", "", "r1000"]
    assert values_for(got, asked) == [want.get(r) for r in asked] == values_for(want, asked)
    assert got.get("absent") is None and ("r1" in got) == ("r1" in want)
    other = run_values(provenance, "hardware.x", lambda v: ("fallback", v["k"]), got._positions)
    both = got.over(other)
    assert dict(both) == {**{r: ("fallback", v["k"]) for r, v in zip(ids, column) if isinstance(v, dict)}, **want}
    assert len(run_values(provenance, "hardware.missing", derive)) == 0 and not run_values(None, "x", derive)

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

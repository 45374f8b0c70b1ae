"""once_per_object: one call per distinct object, the answers in the values' order."""

from eitp_bench.analysis.per_object import once_per_object


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

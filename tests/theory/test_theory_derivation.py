"""Crossover finder on curves with a known crossing; predicted KV crossover; the measured experiment."""

import contextlib
import math
from types import SimpleNamespace

import pytest
import torch

from eitp_bench.theory.constants import landauer_j_per_bit
from eitp_bench.energy.base import Channel, Meter
from eitp_bench.records import EnergyEntry
from eitp_bench.energy.estimate import CpuTimeEstimateMeter
from eitp_bench.energy.monitor import EnergyMonitor
from eitp_bench.theory import derivation
from eitp_bench.theory.derivation import (
    find_crossover,
    kv_energy_model,
    measured_crossovers,
    predicted_crossover,
    repeat_until,
    run_derivation_experiment,
)


class StepClock:
    """A clock that advances `step` seconds per read: each operation of repeat_until 'takes' `step`."""

    def __init__(self, step: float):
        self.step, self.now, self.reads = step, 0.0, 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


def test_crossover_of_power_laws_is_exact_in_log_space():
    # 3·x^0.5 = 0.1·x^1.5 ⇔ x = 30; both are straight lines in log–log, so interpolation is exact.
    xs = [2**k for k in range(8)]
    x = find_crossover(xs, [3 * v**0.5 for v in xs], [0.1 * v**1.5 for v in xs])
    assert x == pytest.approx(30.0)


def test_crossover_constant_vs_linear_and_none():
    xs = [1, 5, 20, 100]
    assert find_crossover(xs, [10] * 4, xs) == pytest.approx(10.0)
    assert find_crossover(xs, [1] * 4, [2] * 4) is None
    assert find_crossover([1, 10], [1, 1], [1, 3]) == 1.0  # touching at the first point
    with pytest.raises(ValueError):
        find_crossover([1, 2], [1, 0], [1, 1])


def _config(**kw):
    base = dict(n_embd=64, n_layer=2, vocab_size=100, n_positions=512, n_inner=None)
    base.update(kw)
    return SimpleNamespace(**base)


def test_kv_energy_model_counts():
    # e_op = 1, e_byte = 0 → pure FLOPs. d=64, 2 layers, per layer 12·d² + 13·d = 49984 params.
    m = kv_energy_model(_config(), 1.0, 0.0, 2, [1, 3])
    layer = 2 * (12 * 64 * 64 + 13 * 64)
    head = 2 * 64 * 100
    assert m["retrieve_j"][0] == 2 * layer + 4 * 2 * 64 * 2 + head
    assert m["derive_j"][1] == 2 * layer * 4 + 4 * 2 * 64 * (4 * 5 // 2) + head


def test_predicted_crossover_none_for_gpt2_small_and_found_with_costly_memory():
    h100 = {"energy_per_flop": {"joules": 7.075e-13, "basis": "x"}, "energy_per_byte": {"joules": 4.8e-11, "basis": "y"}}
    small = _config(n_embd=768, n_layer=12, vocab_size=50257, n_positions=1024)
    assert predicted_crossover(small, h100) is None  # reuse wins at every length
    assert predicted_crossover(small, {}) is None
    # Far memory (2.5e-10 J/byte) with d=64, fp32: each cached token costs 1024 B·2.5e-10 = 2.56e-7 J to read,
    # re-deriving it ≈ 2·99,968 FLOPs·1e-12 = 2.0e-7 J, so recomputing wins for short prefixes; its
    # quadratic attention (256·L² FLOPs) catches up near L ≈ (2.56e-7 − 2.0e-7)/2.56e-10 ≈ 220.
    cfg = _config()
    slow = {"energy_per_flop_j": 1e-12, "energy_per_byte_j": 2.5e-10}
    q = predicted_crossover(cfg, slow, precision="fp32")
    assert q is not None and q.unit == "tokens" and q.operationalisation
    assert 150 < q.value < 300
    lo, hi = math.floor(q.value), math.ceil(q.value)
    m = kv_energy_model(cfg, 1e-12, 2.5e-10, 4, [lo, hi])
    assert (m["derive_j"][0] - m["retrieve_j"][0]) * (m["derive_j"][1] - m["retrieve_j"][1]) <= 0


class _FakeMonitor:
    """EnergyMonitor's window API; reports estimated joules only (as on a machine without sensors)."""

    def __init__(self, measured=False):
        self.measured = measured
        self.names = []

    @contextlib.contextmanager
    def window(self, name):
        self.names.append(name)
        energy = [SimpleNamespace(method="estimated", joules=2.0, meter="estimate")]
        w = SimpleNamespace(result=SimpleNamespace(measured_joules=5.0 if self.measured else None, energy=energy))
        yield w


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=32,
                                      bos_token_id=49, eos_token_id=49))


def test_experiment_points_carry_method_time_and_bits(tiny_model):
    monitor = _FakeMonitor()
    # 0.25 s per operation by the injected clock, 1 s windows: 4 operations per 2.0 J window
    points = run_derivation_experiment(tiny_model, seq_lens=[2, 8], depths=[1], monitor=monitor, repeats=1,
                                       min_window_s=1.0, clock=StepClock(0.25))
    assert len(points) == 2 * 2 + 2 * 2 + 2  # kv × L, checkpoint × L, checkpoint × depth
    for p in points:
        assert p["seconds"] == 0.25 and p["reps_per_window"] == 4 and p["window_s"] == 1.0
        assert p["joules_method"] == "estimated" and "ESTIMATED" in p["note"]
        assert p["joules"] == 2.0 / 4
        assert p["h_bits"] == pytest.approx(0.5 / landauer_j_per_bit(300.0))
    assert {p["strategy"] for p in points} == {"retrieve", "derive"}
    assert len(monitor.names) == len(points)
    crossings = measured_crossovers(points)
    assert {c["experiment"] for c in crossings} == {"kv_cache", "activation_checkpointing"}
    assert tiny_model.config.n_layer == 2  # the depth sweep used a copy


def test_experiment_measured_and_time_only(tiny_model):
    measured = run_derivation_experiment(tiny_model, seq_lens=[4], monitor=_FakeMonitor(measured=True), repeats=1,
                                         min_window_s=1.0, clock=StepClock(0.5))
    assert {p["joules_method"] for p in measured} == {"measured"}
    assert {p["joules"] for p in measured} == {5.0 / 2}  # 5 J window ÷ 2 operations
    bare = run_derivation_experiment(tiny_model, seq_lens=[4], monitor=None, repeats=1, min_window_s=1.0,
                                     clock=StepClock(0.5))
    assert all(p["joules"] is None and p["seconds"] == 0.5 for p in bare)
    assert not any(p["below_resolution"] for p in bare)  # time only: no meter to resolve


# ---------------------------------------------------------------- windows the meters resolve


def test_repetitions_grow_until_the_window_reaches_the_minimum():
    calls = []
    for step, min_s, reps in ((0.25, 1.0, 4), (0.3, 1.0, 4), (0.5, 0.5, 1), (0.125, 2.0, 16), (1.0, 1e-9, 1)):
        clock = StepClock(step)
        n, elapsed = repeat_until(lambda: calls.append(1), min_s, clock)
        assert n == reps and n == max(1, math.ceil(min_s / step - 1e-9))
        assert elapsed >= min_s and elapsed - step < min_s  # one operation fewer would have been too short
        assert clock.reads == reps + 1


class FakeMeter(Meter):
    """A meter with a stated counter update period that reads `joules_per_window` in every window."""

    name = "fake"

    def __init__(self, period=None, joules_per_window=6.0, method="counter"):
        if period is not None:
            self.counter_update_period_s = period
        self.joules, self.method = joules_per_window, method

    def channels(self):
        return [Channel(self.name, "cpu:0", "package")]

    def mark(self):
        return 0

    def energy_between(self, begin, end):
        return [EnergyEntry(meter=self.name, device="cpu:0", domain="package", joules=self.joules, method=self.method,
                            duration_s=0.0)]


def test_update_period_is_the_largest_known_among_the_meters():
    assert derivation.meter_update_period_s(None) == derivation.DEFAULT_UPDATE_PERIOD_S == 0.001
    assert derivation.meter_update_period_s(SimpleNamespace(meters=[CpuTimeEstimateMeter()])) == 0.001
    both = SimpleNamespace(meters=[FakeMeter(0.002), FakeMeter(0.05), CpuTimeEstimateMeter()])
    assert derivation.meter_update_period_s(both) == 0.05
    rapl = SimpleNamespace(name="rapl")
    assert derivation.meter_update_period_s(SimpleNamespace(meters=[rapl])) == 0.001

    def nvml(period):
        return SimpleNamespace(name="nvml", channels=lambda: [Channel("nvml", "gpu:0", "gpu")],
                               update_period_s=lambda ordinal: period)

    assert derivation.meter_update_period_s(SimpleNamespace(meters=[nvml(0.02), rapl])) == 0.02
    # not yet inferred: the upper end of NVML's reported 20–100 ms
    assert derivation.meter_update_period_s(SimpleNamespace(meters=[nvml(None)])) == 0.1
    assert derivation.required_window_s(1.0, 0.25) == 2.5 and derivation.required_window_s(1.0, 0.001) == 1.0
    assert derivation.resolution_s(0.001) == 1.0 and derivation.resolution_s(0.25) == 2.5


def test_windows_last_ten_counter_periods_and_energy_per_op_is_joules_over_reps(tiny_model):
    monitor = EnergyMonitor(meters=[FakeMeter(period=0.25, joules_per_window=6.0)])
    points = run_derivation_experiment(tiny_model, seq_lens=[2, 4], monitor=monitor, repeats=1, min_window_s=1.0,
                                       clock=StepClock(0.25))
    for p in points:
        # 10 periods of 0.25 s = 2.5 s > min_window_s: 10 operations of 0.25 s per window
        assert p["required_window_s"] == 2.5 and p["resolution_s"] == 2.5 and p["update_period_s"] == 0.25
        assert p["reps_per_window"] == 10 and p["window_s"] == 2.5
        assert p["joules"] == 6.0 / 10 and p["joules_method"] == "measured"
        assert p["below_resolution"] is False
    assert all(c["below_resolution"] is False for c in measured_crossovers(points))


def test_windows_shorter_than_the_resolution_are_labelled(tiny_model):
    monitor = EnergyMonitor(meters=[FakeMeter(period=None, joules_per_window=3.0)])  # no period: 1 ms
    points = run_derivation_experiment(tiny_model, seq_lens=[2, 4], monitor=monitor, repeats=1, min_window_s=0.5,
                                       clock=StepClock(0.25))
    for p in points:
        assert p["window_s"] == 0.5 and p["reps_per_window"] == 2 and p["joules"] == 1.5
        assert p["resolution_s"] == 1.0 and p["below_resolution"] is True
    crossings = measured_crossovers(points)
    assert crossings and all(c["on"] == "joules" and c["below_resolution"] is True for c in crossings)
    # the same experiment with 1 s windows is resolved
    ok = run_derivation_experiment(tiny_model, seq_lens=[2, 4], monitor=monitor, repeats=1, min_window_s=1.0,
                                   clock=StepClock(0.25))
    assert not any(p["below_resolution"] for p in ok)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf")])
def test_bad_min_window_is_a_user_error(tiny_model, bad):
    from eitp_bench.errors import UserError

    with pytest.raises(UserError, match="min_window_s"):
        run_derivation_experiment(tiny_model, seq_lens=[2], monitor=None, repeats=1, min_window_s=bad)


def test_kv_reuse_repeated_in_one_window_keeps_the_stored_prefix(tiny_model):
    # every repetition must reuse the same L cached positions: the next-token logits stay those of a full forward
    ids = torch.randint(0, 50, (1, 9), generator=torch.Generator().manual_seed(0))
    tiny_model.eval()
    with torch.no_grad():
        full = tiny_model(ids, use_cache=False).logits[:, -1]
        arg = derivation._cache_argument(tiny_model)
        past = getattr(tiny_model(ids[:, :8], use_cache=True), arg)
        for _ in range(3):
            out = tiny_model(ids[:, 8:], use_cache=True, **{arg: past}).logits[:, -1]
            if hasattr(past, "crop"):
                past.crop(-1)
            assert torch.allclose(out, full, atol=1e-5)

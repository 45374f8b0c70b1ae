"""Crossover finder on curves with a known crossing; predicted KV crossover; the measured experiment."""

import contextlib
import math
from types import SimpleNamespace

import pytest
import torch

from eitp_bench.theory.constants import landauer_j_per_bit
from eitp_bench.theory.derivation import (
    find_crossover,
    kv_energy_model,
    measured_crossovers,
    predicted_crossover,
    run_derivation_experiment,
)


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
    points = run_derivation_experiment(tiny_model, seq_lens=[2, 8], depths=[1], monitor=monitor, repeats=1)
    assert len(points) == 2 * 2 + 2 * 2 + 2  # kv × L, checkpoint × L, checkpoint × depth
    for p in points:
        assert p["seconds"] > 0
        assert p["joules_method"] == "estimated" and "ESTIMATED" in p["note"]
        assert p["h_bits"] == pytest.approx(2.0 / landauer_j_per_bit(300.0))
    assert {p["strategy"] for p in points} == {"retrieve", "derive"}
    assert len(monitor.names) == len(points)
    crossings = measured_crossovers(points)
    assert {c["experiment"] for c in crossings} == {"kv_cache", "activation_checkpointing"}
    assert tiny_model.config.n_layer == 2  # the depth sweep used a copy


def test_experiment_measured_and_time_only(tiny_model):
    measured = run_derivation_experiment(tiny_model, seq_lens=[4], monitor=_FakeMonitor(measured=True), repeats=1)
    assert {p["joules_method"] for p in measured} == {"measured"}
    assert {p["joules"] for p in measured} == {5.0}
    bare = run_derivation_experiment(tiny_model, seq_lens=[4], monitor=None, repeats=1)
    assert all(p["joules"] is None and p["seconds"] > 0 for p in bare)

"""theory_task and derivation_task on a real tiny trained model, through a real TaskContext."""

import math

import pytest
import torch

from eitp_bench.energy.monitor import EnergyMonitor
from eitp_bench.suite import load_suite
from eitp_bench.theory.constants import K_B, LN2
from eitp_bench.workloads.tasks import TaskContext
from eitp_bench.workloads.theory_tasks import derivation_settings, derivation_task, min_window_s, theory_task

torch.set_num_threads(1)
FAST = ["train.steps=2", "train.eval_every=2", "train.eval_batches=1", "data.train_tokens=3000",
        "data.val_tokens=512"]


@pytest.fixture(scope="module")
def ctx():
    suite = load_suite("smoke", FAST)
    c = TaskContext(suite=suite, arm="baseline", size="tiny", seed=0, repetition=0, device="cpu")
    c.trained_lm()
    return c


def by_name(metrics):
    return {m.name: m for m in metrics}


def test_theory_task_bounds_are_transitions_times_landauer(ctx):
    m = by_name(theory_task(ctx))
    e_l = K_B * 300.0 * LN2
    for c in ("reset", "flips", "entropy"):
        n = m[f"transitions_{c}_per_token" if c != "entropy" else "transitions_entropy_bits_per_token"].value
        assert n > 0 and math.isfinite(n)
        assert m[f"landauer_{c}_j_per_token"].value == n * e_l
    # GPT-2 tiny's MLP units bound the counts: active ≤ units, entropy ≤ 1 bit per gated unit.
    model, result = ctx.trained_lm()
    units = sum(b.mlp.c_fc.weight.shape[1] for b in model.transformer.h)
    assert m["transitions_reset_per_token"].value <= units
    assert m["transitions_entropy_bits_per_token"].value <= units
    n_params = sum(p.numel() for p in model.parameters())
    for storage, bits in (("bf16", 16), ("int8", 8), ("fp32", 32)):
        h = m[f"param_entropy_bits@{storage}"].value
        assert 0 < h <= bits + 1  # + Miller–Madow's correction
        assert m[f"e_min_j@{storage}"].value == pytest.approx(e_l * n_params * h, rel=1e-12)
    # smoke's tiny model: its fp32 weights are nearly all distinct; its bf16 and int8 codes are not
    assert m["param_entropy_degenerate@fp32"].value == 1.0
    assert m["param_entropy_degenerate@bf16"].value == 0.0 and m["param_entropy_degenerate@int8"].value == 0.0
    assert m["param_entropy_bits@fp32"].value == pytest.approx(math.log2(n_params) + 0.72, abs=0.3)
    assert m["param_entropy_bits@bf16"].value < m["param_entropy_bits@fp32"].value - 3
    # floors and the T = 1.0 misuse use the bf16 codes
    assert m["e_min_paper_t1_j"].value == pytest.approx(m["e_min_j@bf16"].value / 300.0, rel=1e-12)
    assert m["floor_write_once_j"].value == pytest.approx(m["e_min_j@bf16"].value, rel=1e-12)
    assert m["floor_state_overwrite_j"].value == pytest.approx(result.steps * n_params * 128 * e_l, rel=1e-12)
    d = result.steps * result.tokens_per_step
    assert m["training_tokens_seen"].value == d
    assert m["floor_tkachenko_j"].value == pytest.approx(2 * n_params * d * K_B * 300.0, rel=1e-12)
    assert all(x.unit in ("transitions", "bits", "J", "K", "tokens", "bool") for x in m.values())


class StepClock:
    """Advances 1/64 s per read: each derivation operation 'takes' 15.625 ms, whatever the machine."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1 / 64
        return self.now


def test_derivation_task_reports_both_strategies_per_length(ctx, monkeypatch):
    ctx.monitor = EnergyMonitor()  # no sensor here: the CPU-time estimate meter
    ctx.cache["hardware_profile"] = {"name": "test", "energy_per_flop": {"joules": 7e-13},
                                     "energy_per_byte": {"joules": 4e-11}}
    ctx.cache["derivation_clock"] = StepClock()
    ctx.energy.clear()
    try:
        m = by_name(derivation_task(ctx))
    finally:
        ctx.monitor.close()
        ctx.monitor = None
        del ctx.cache["derivation_clock"]
    # smoke's theory.min_window_s = 0.05 s: 4 operations of 1/64 s make each window 0.0625 s, under the
    # 1 s the meters resolve (max(1 s, 10 × 1 ms)), so every derivation figure is labelled.
    assert ctx.suite.theory.min_window_s == 0.05
    assert m["derivation_window_s"].value == 0.0625 and m["derivation_resolution_s"].value == 1.0
    assert m["derivation_below_resolution"].value == 1.0
    assert "crossover_measured_len" not in m  # an unresolved crossover is never written as measured
    lens, _ = derivation_settings(ctx, ctx.trained_lm()[0].config.n_positions)
    assert lens == [8, 16, 32]  # n_positions = 40 on smoke: 64 is clipped
    e_l = K_B * 300.0 * LN2
    for L in lens:
        for k in ("retrieve_j", "derive_j", "retrieve_s", "derive_s"):
            assert m[f"{k}@{L}"].value > 0 and math.isfinite(m[f"{k}@{L}"].value)
        assert m[f"h_derive_bits@{L}"].value == pytest.approx(m[f"derive_j@{L}"].value / e_l, rel=1e-12)
    estimated = any(e.method == "estimated" for e in ctx.energy)
    assert m["derivation_energy_measured"].value == (0.0 if estimated else 1.0)
    assert ctx.energy and {e.window for e in ctx.energy} == {"derivation"}
    # The predicted crossover comes from the given profile; GPT-2 arithmetic decides if there is one.
    from eitp_bench.theory.derivation import predicted_crossover
    q = predicted_crossover(ctx.trained_lm()[0].config, ctx.cache["hardware_profile"], precision="fp32")
    assert ("crossover_predicted_len" in m) == (q is not None)
    if "crossover_below_resolution_len" in m:
        assert min(lens) <= m["crossover_below_resolution_len"].value <= max(lens)


def test_suite_temperature_and_lengths_are_read_when_present(ctx):
    class Theory:
        temperature_k, seq_lens, repeats, min_window_s = 310.0, [4, 12], 1, 2.5

    class Wrapped:
        def __getattr__(self, k):
            return Theory() if k == "theory" else getattr(ctx.suite, k)

    c = TaskContext(suite=Wrapped(), arm="baseline", size="tiny", seed=0, repetition=0, device="cpu", cache=ctx.cache)
    m = by_name(theory_task(c))
    assert m["heat_sink_temperature_k"].value == 310.0
    assert m["landauer_reset_j_per_token"].value == m["transitions_reset_per_token"].value * (K_B * 310.0 * LN2)
    assert derivation_settings(c, 40) == ([4, 12], 1)
    assert min_window_s(c) == 2.5 and min_window_s(ctx) == 0.05  # smoke's, from suites/smoke.yaml

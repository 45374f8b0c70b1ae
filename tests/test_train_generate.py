"""The training loop and generation on the tiny model: real steps, exact token counts, joules wiring."""

import math
import time

import numpy as np
import pytest
import torch

from eitp_bench.energy.base import Channel, Meter
from eitp_bench.flags import flag
from eitp_bench.records import EnergyEntry
from eitp_bench.energy.monitor import EnergyMonitor
from eitp_bench.workloads.data import LMData, MarkovCorpus, as_tensors
from eitp_bench.workloads.generate import GenerationSetting, benchmark_generation, generate_once
from eitp_bench.workloads.models import build_model
from eitp_bench.workloads.objectives import make_objective
from eitp_bench.workloads.train import OptimSettings, evaluate_lm, merge_windows, train

torch.set_num_threads(1)  # the machine is shared; tiny models gain nothing from more


class ConstantPowerMeter(Meter):
    """A fake *measured* meter: exactly `watts` × elapsed seconds, as a counter would give."""

    name = "fake"

    def __init__(self, watts=10.0):
        self.watts = watts

    def channels(self):
        return [Channel("fake", "cpu:0", "package")]

    def mark(self):
        return time.monotonic()

    def energy_between(self, begin, end):
        return [EnergyEntry(meter="fake", device="cpu:0", domain="package", joules=self.watts * (end - begin),
                            method="counter", duration_s=end - begin)]


def tiny_data(vocab=16, block=16):
    corpus = MarkovCorpus(vocab, seed=0, concentration=0.05)
    return LMData(corpus.sample(20_000, 1), corpus.sample(2_048, 2), vocab, block, corpus.optimal_perplexity, corpus.entropy_rate_nats)


def run_train(data, steps, monitor=None, target=None, lr=3e-3, arm="baseline"):
    model = build_model("tiny", vocab_size=data.vocab_size, n_positions=data.block_size, seed=0)
    blocks = data.val_blocks(32)
    batches = (as_tensors(b, "cpu") for b in data.train_batches(8, seed=0))
    result = train(
        model, make_objective(arm), batches, steps=steps, settings=OptimSettings(lr), device="cpu",
        evaluate=lambda m: evaluate_lm(m, blocks, batch_size=16, device="cpu"), eval_every=max(1, steps // 2),
        tokens_per_step=8 * data.block_size, steps_per_epoch=100.0, monitor=monitor, target_val_loss=target,
    )
    return model, result


def test_training_lowers_validation_loss_towards_the_source_entropy():
    data = tiny_data()
    model = build_model("tiny", vocab_size=16, n_positions=16, seed=0)
    before = evaluate_lm(model, data.val_blocks(32), batch_size=16, device="cpu")
    _, result = run_train(data, steps=40)
    assert len(result.step_times) == 40 and [e.step for e in result.evals] == [20, 40]
    assert result.final_val_loss < before - 0.3  # it learned something real
    assert result.final_val_loss > data.entropy_rate_nats - 0.05  # and cannot beat the source
    names = {m.name for m in result.metrics()}
    assert {"step_s", "train_tokens_per_s", "final_val_ppl", "loss_component:task"} <= names
    assert "train_joules" not in names  # no monitor, no joules


def test_training_is_seeded():
    data = tiny_data()
    _, a = run_train(data, steps=4)
    _, b = run_train(data, steps=4)
    assert a.final_val_loss == b.final_val_loss


def test_measured_joules_and_energy_to_target():
    data = tiny_data()
    monitor = EnergyMonitor(meters=[ConstantPowerMeter(10.0)])
    _, result = run_train(data, steps=6, monitor=monitor, target=100.0)  # met before the first step
    m = {x.name: x.value for x in result.metrics()}
    assert m["target_reached"] == 1.0 and m["steps_to_target"] == 0
    assert "joules_to_target" not in m and "time_to_target_s" not in m  # nothing spent: no ratio to form
    # a target between the evaluation before training and the first one: crossed inside segment 1
    first, second = result.evals[1].val_loss, result.evals[0].val_loss
    monitor = EnergyMonitor(meters=[ConstantPowerMeter(10.0)])
    _, result = run_train(data, steps=6, monitor=monitor, target=(first + second) / 2)
    m = {x.name: x.value for x in result.metrics()}
    window_s = sum(w.duration_s for w in result.windows)
    assert len(result.windows) == 2
    # The meter's marks sit just inside each window's edges: joules = 10 W × (marked time) ≤ 10 W × window.
    assert m["train_joules"] == pytest.approx(10.0 * window_s, rel=1e-2)
    assert m["train_joules"] <= 10.0 * window_s
    assert m["train_joules"] >= 10.0 * m["train_s"] * 0.999  # windows hold every timed step
    assert m["train_joules_per_step"] == pytest.approx(m["train_joules"] / 6)
    assert m["target_reached"] == 1.0 and 0 < m["steps_to_target"] < 3  # inside the first segment
    assert (m["target_bracket_lo_step"], m["target_bracket_hi_step"]) == (0, 3)
    fraction = m["steps_to_target"] / 3
    assert m["joules_to_target"] == pytest.approx(fraction * result.windows[0].measured_joules)  # pro-rated by steps
    assert m["time_to_target_s"] == pytest.approx(fraction * sum(result.step_times[:3]))
    assert m["joules_to_target_window_s"] == pytest.approx(result.windows[0].duration_s)  # the window it sums
    assert m["joules_to_target_segments"] == 1 and m["time_to_target_s_segments"] == 1
    [jtt] = [x for x in result.metrics() if x.name == "joules_to_target"]
    assert [f.code for f in jtt.flags] == ["not_steady"]  # a segment of milliseconds is not a steady window
    assert "train_joules_estimated" not in m
    [entry] = result.energy_entries("train")
    assert entry.window == "train" and entry.method == "counter" and entry.joules == pytest.approx(m["train_joules"])


def test_unreached_target_is_flagged_not_invented():
    _, result = run_train(tiny_data(), steps=2, target=1e-6)
    m = {x.name: x.value for x in result.metrics()}
    assert m["target_reached"] == 0.0
    assert "time_to_target_s" not in m and "joules_to_target" not in m


def test_merge_windows_sums_and_keeps_invalid_segments_invalid():
    class R:
        def __init__(self, energy):
            self.energy = energy

    gpu = dict(meter="m", device="gpu:0", domain="gpu", method="counter")
    ok = EnergyEntry(**gpu, joules=2.0, duration_s=1.0, samples=3, max_gap_s=0.1, idle_watts=1.0)
    ok2 = EnergyEntry(**gpu, joules=3.0, duration_s=2.0, samples=4, max_gap_s=0.3, idle_watts=1.0)
    [e] = merge_windows([R([ok]), R([ok2])], "train")
    assert (e.window, e.joules, e.duration_s, e.samples, e.max_gap_s) == ("train", 5.0, 3.0, 7, 0.3)
    assert e.net_joules == 2.0 and (ok.joules, ok.window) == (2.0, None)  # the segments are left as they were
    wrapped = flag("wrap_unrepairable", "counter wrapped")
    bad = EnergyEntry(**gpu, joules=None, duration_s=1.0, flags=[wrapped])
    [e] = merge_windows([R([ok]), R([bad]), R([bad])], "train")
    assert e.joules is None and e.flags == [wrapped] and ok.flags == []


def test_eitp_arm_trains_through_the_same_loop():
    _, result = run_train(tiny_data(), steps=2, arm="eitp-coded", lr=1e-3)
    assert math.isfinite(result.final_val_loss)
    assert result.forward_passes_per_step == 3
    assert len(result.components) > 2  # every loss term is reported


# ----------------------------------------------------------------------------- generation


def eos_loving_model(vocab=32):
    """A tiny model whose every step prefers EOS: generation would stop at once if allowed."""
    model = build_model("tiny", vocab_size=vocab, n_positions=64, seed=0).eval()
    eos = model.config.eos_token_id

    def push_eos(module, inputs, output):
        output[..., eos] += 1e4
        return output

    model.lm_head.register_forward_hook(push_eos)
    return model, eos


@pytest.mark.parametrize("mode", ["greedy", "sample"])
def test_generation_produces_exactly_n_new_tokens_even_when_eos_wins(mode):
    model, eos = eos_loving_model()
    prompts = torch.randint(0, 31, (2, 5), generator=torch.Generator().manual_seed(0))
    # Control: without the min_new_tokens guard, generation stops right after EOS.
    plain = model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=12,
                           pad_token_id=eos, do_sample=False)
    assert plain.shape[1] - 5 < 12
    new = generate_once(model, prompts, GenerationSetting(mode, 2, new_tokens=12))
    assert new.shape == (2, 12)
    assert (new != eos).all()  # EOS was suppressed, not merely padded over


def test_benchmark_generation_counts_tokens_and_joules_per_token():
    model = build_model("tiny", vocab_size=32, n_positions=64, seed=0)
    prompts = torch.randint(0, 32, (4, 6), generator=torch.Generator().manual_seed(1))
    monitor = EnergyMonitor(meters=[ConstantPowerMeter(5.0)])
    res = benchmark_generation(model, prompts, GenerationSetting("sample", 4, new_tokens=10),
                               warmups=1, runs=3, seed=0, device="cpu", monitor=monitor)
    assert len(res.latencies) == 3 and res.tokens == 3 * 4 * 10
    m = {x.name: x.value for x in res.metrics(headline=True)}
    assert m["tokens_per_s@sample-b4"] == pytest.approx(120 / sum(res.latencies))
    assert m["joules_per_token@sample-b4"] == pytest.approx(res.window.measured_joules / 120)
    assert m["joules_per_token@sample-b4"] == pytest.approx(5.0 * res.window.duration_s / 120, rel=1e-2)
    assert m["tokens_per_s"] == m["tokens_per_s@sample-b4"]  # headline alias
    assert m["latency_p50_s@sample-b4"] <= m["latency_p99_s@sample-b4"]
    [entry] = res.energy_entries()
    assert entry.window == "generate@sample-b4"


def test_generation_repeats_its_timed_calls_until_the_window_is_long_enough():
    """meters.min_window_s: calls repeat until the window lasts that long; tokens count every call."""
    model = build_model("tiny", vocab_size=32, n_positions=64, seed=0)
    prompts = torch.randint(0, 32, (1, 6), generator=torch.Generator().manual_seed(1))
    monitor = EnergyMonitor(meters=[ConstantPowerMeter(5.0)])
    res = benchmark_generation(model, prompts, GenerationSetting("greedy", 1, new_tokens=4),
                               warmups=1, runs=2, seed=0, device="cpu", monitor=monitor, min_window_s=0.3)
    assert res.window.duration_s >= 0.3 and len(res.latencies) >= 2
    assert res.tokens == len(res.latencies) * 4
    # without a monitor there is no window to stretch: exactly `runs` calls
    res = benchmark_generation(model, prompts, GenerationSetting("greedy", 1, new_tokens=4),
                               warmups=0, runs=2, seed=0, device="cpu", min_window_s=0.3)
    assert len(res.latencies) == 2


def test_sampling_is_reproducible_across_arms_by_seed():
    model = build_model("tiny", vocab_size=32, n_positions=64, seed=0).eval()
    prompts = torch.randint(0, 32, (1, 4), generator=torch.Generator().manual_seed(2))
    setting = GenerationSetting("sample", 1, new_tokens=8)
    torch.manual_seed(5)
    a = generate_once(model, prompts, setting)
    torch.manual_seed(5)
    b = generate_once(model, prompts, setting)
    assert torch.equal(a, b)
    assert np.unique(a.numpy()).size > 1


def test_crossing_is_interpolated_between_the_bracketing_evaluations():
    """A known loss curve on the standard lattice (every 50 of 200 steps): L(s) = 4 − s/100 crosses 2.99 at
    step 101. The first evaluation at or below it is step 150; the crossing is read at 101, and time and
    joules are the lower evaluation's plus the same fraction of the crossing segment."""
    from eitp_bench.workloads.train import EvalPoint, interpolate_crossing

    evals = [EvalPoint(step=s, train_s=0.2 * s, val_loss=4 - s / 100, measured_j=3.0 * s, estimated_j=None)
             for s in (0, 50, 100, 150, 200)]
    hit = interpolate_crossing(evals, 2.99)
    assert (hit.lo.step, hit.hi.step, hit.segments) == (100, 150, 3)
    assert hit.step == pytest.approx(101) and hit.fraction == pytest.approx(0.02)
    assert hit.train_s == pytest.approx(20.2) and hit.measured_j == pytest.approx(303.0)
    assert hit.estimated_j is None  # never invented from a missing figure
    assert interpolate_crossing(evals, 1.0) is None  # never reached: no figure
    exact = interpolate_crossing(evals, 3.5)  # a crossing at an evaluation is that evaluation
    assert exact.step == pytest.approx(50) and exact.measured_j == pytest.approx(150.0)
    # the chord alone: the same on a straight curve
    assert interpolate_crossing(evals, 2.99, method="linear").step == pytest.approx(101)
    # a noisy plateau (an evaluation that went up) never leaves its bracket
    bumpy = [EvalPoint(0, 0.0, 4.0, 0.0, None), EvalPoint(50, 10.0, 3.0, 100.0, None),
             EvalPoint(100, 20.0, 3.2, 200.0, None), EvalPoint(150, 30.0, 2.8, 300.0, None)]
    hit = interpolate_crossing(bumpy, 2.9)
    assert (hit.lo.step, hit.hi.step) == (100, 150) and 100 < hit.step < 150
    assert interpolate_crossing(bumpy, 2.9, method="linear").step == pytest.approx(137.5)  # (3.2 − 2.9) / 0.4 of 50
    # an evaluation that came back NaN leaves no curve to follow: the chord of the bracket
    broken = bumpy[:1] + [EvalPoint(50, 10.0, float("nan"), 100.0, None)] + bumpy[2:]
    assert interpolate_crossing(broken, 2.9).step == pytest.approx(137.5)


def test_a_decelerating_loss_curve_is_read_at_its_crossing_not_at_its_chord():
    """L(s) = 2 + 2·exp(−s/90) crosses 2.5 at 90·ln 4 = 124.8 steps. The chord between the evaluations at 100
    and 150 crosses at 128.2 (2.8 % late: enough to move a 0.76× ratio below 0.75× when the other arm's
    chord is exact); the monotone cubic through the evaluations reads 124.8."""
    from eitp_bench.workloads.train import EvalPoint, interpolate_crossing

    evals = [EvalPoint(s, 0.2 * s, 2 + 2 * math.exp(-s / 90), 3.0 * s, None) for s in (0, 50, 100, 150, 200)]
    truth = 90 * math.log(4)
    assert interpolate_crossing(evals, 2.5).step == pytest.approx(truth, rel=0.002)
    assert interpolate_crossing(evals, 2.5, method="linear").step == pytest.approx(128.22, abs=0.01)

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
from eitp_bench.energy.monitor import merge_windows
from eitp_bench.workloads.train import OptimSettings, evaluate_lm, train

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
    # a target between the evaluation before training and the first one: crossed before step 3
    first, second = result.evals[1].val_loss, result.evals[0].val_loss
    monitor = EnergyMonitor(meters=[ConstantPowerMeter(10.0)])
    _, result = run_train(data, steps=6, monitor=monitor, target=(first + second) / 2)
    m = {x.name: x.value for x in result.metrics()}
    [window] = result.windows  # one training window, read at step 3 without closing it
    assert [r.name for r in monitor.results] == ["train"]
    # The meter's marks sit just inside the window's edges: joules = 10 W × (marked time) ≤ 10 W × window.
    assert m["train_joules"] == pytest.approx(10.0 * window.duration_s, rel=1e-2)
    assert m["train_joules"] <= 10.0 * window.duration_s
    assert m["train_joules"] >= 10.0 * m["train_s"] * 0.999  # the window holds every timed step
    assert m["train_joules_per_step"] == pytest.approx(m["train_joules"] / 6)
    assert m["target_reached"] == 1.0 and 0 < m["steps_to_target"] < 3  # before the evaluation at step 3
    assert (m["target_bracket_lo_step"], m["target_bracket_hi_step"]) == (0, 3)
    fraction = m["steps_to_target"] / 3
    at3 = result.evals[1]
    assert at3.measured_j == at3.read.measured_joules and 0 < at3.measured_j < m["train_joules"]
    assert m["joules_to_target"] == pytest.approx(fraction * at3.measured_j)  # pro-rated by steps from 0 J
    assert m["time_to_target_s"] == pytest.approx(fraction * sum(result.step_times[:3]))
    assert m["joules_to_target_window_s"] == at3.read.duration_s < window.duration_s  # start → the read at step 3
    assert m["joules_to_target_segments"] == 1 and m["time_to_target_s_segments"] == 1
    [jtt] = [x for x in result.metrics() if x.name == "joules_to_target"]
    assert [f.code for f in jtt.flags] == ["not_steady"]  # a span of milliseconds is not a steady window
    assert "train_joules_estimated" not in m
    [entry] = result.energy_entries("train")
    assert entry.window == "train" and entry.method == "counter" and entry.joules == pytest.approx(m["train_joules"])


class StepClock:
    """A manual clock that only training steps move: step k (0-based) lasts 1 s at 10 + k watts."""

    def __init__(self):
        self.t, self.joules = 0.0, 0.0

    def run(self, seconds, watts):
        self.t += seconds
        self.joules += seconds * watts


class StepClockMeter(Meter):
    """A counter meter on the StepClock: the exact cumulative joules are known at every step."""

    name = "fake"

    def __init__(self, clock):
        self.clock = clock

    def channels(self):
        return [Channel("fake", "gpu:0", "gpu")]

    def mark(self):
        return (self.clock.t, self.clock.joules)

    def energy_between(self, begin, end):
        return [EnergyEntry(meter="fake", device="gpu:0", domain="gpu", joules=end[1] - begin[1],
                            method="counter", duration_s=end[0] - begin[0])]


class ClockedObjective:
    """The baseline loss; each call is one step of the StepClock (1 s at 10 + step W)."""

    forward_passes_per_step = 1

    def __init__(self, clock):
        self.clock, self.inner = clock, make_objective("baseline")

    def loss(self, model, input_ids, labels, *, step, epoch):
        self.clock.run(1.0, 10.0 + step)
        return self.inner.loss(model, input_ids, labels, step=step, epoch=epoch)


def exact_joules(steps):
    return float(sum(10 + k for k in range(steps)))


def clocked_run(*, steps=8, eval_every=1, target=None, dropout=0.0, budget=None, lr=3e-3):
    """train() on the tiny LM with exact energy; evaluations cost 100 s at 1 kW on the same clock (they must
    never count)."""
    data = tiny_data()
    clock = StepClock()
    monitor = EnergyMonitor(meters=[StepClockMeter(clock)], cuda_sync=False)
    torch.manual_seed(0)
    model = build_model("tiny", vocab_size=data.vocab_size, n_positions=data.block_size, seed=0, dropout=dropout)
    blocks = data.val_blocks(32)

    def evaluate(m):
        clock.run(100.0, 1000.0)
        return evaluate_lm(m, blocks, batch_size=16, device="cpu")

    batches = (as_tensors(b, "cpu") for b in data.train_batches(8, seed=0))
    result = train(model, ClockedObjective(clock), batches, steps=steps, settings=OptimSettings(lr), device="cpu",
                   evaluate=evaluate, eval_every=eval_every, tokens_per_step=8 * data.block_size,
                   steps_per_epoch=100.0, monitor=monitor, target_val_loss=target, min_window_s=5.0,
                   snapshot_budget_bytes=budget)
    return model, result, monitor


@pytest.mark.parametrize("eval_every", [1, 3, 8])
def test_training_is_one_window_whatever_the_evaluation_density(eval_every):
    """One window; each evaluation's joules are the meter's cumulative reading at its step; no evaluation
    (100 s at 1 kW each) enters the training energy; at most ceil(steps / eval_every) - 1 snapshots."""
    _, result, monitor = clocked_run(steps=8, eval_every=eval_every)
    assert [r.name for r in monitor.results] == ["train"] and len(result.windows) == 1
    steps = [e.step for e in result.evals]
    assert steps == sorted({*range(eval_every, 8, eval_every), 8})
    assert [e.measured_j for e in result.evals] == [exact_joules(s) for s in steps]
    assert [e.read.energy[0].duration_s for e in result.evals] == [float(s) for s in steps]
    m = {x.name: x.value for x in result.metrics()}
    assert m["train_joules"] == exact_joules(8)  # 10 + … + 17 W for 1 s each: no evaluation inside
    assert m["eval_snapshots"] == math.ceil(8 / eval_every) - 1 and m["eval_snapshots_on_host"] == 0.0


def test_snapshots_leave_the_trained_model_bit_identical_and_score_the_weights_of_their_step():
    """Dropout on (the RNG matters): the model after a run with 7 snapshots is the model of a run with none,
    bit for bit; each snapshot's loss is the final loss of a run stopped at that step (constant lr)."""
    model_dense, dense, _ = clocked_run(steps=8, eval_every=1, dropout=0.1)
    model_plain, plain, _ = clocked_run(steps=8, eval_every=8, dropout=0.1)
    a, b = model_dense.state_dict(), model_plain.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert dense.final_val_loss == plain.final_val_loss
    assert evaluate_lm(model_dense, tiny_data().val_blocks(32), batch_size=16, device="cpu") == dense.final_val_loss
    for stop in (3, 5):
        _, short, _ = clocked_run(steps=stop, eval_every=stop, dropout=0.1)
        assert dense.evals[stop - 1].val_loss == short.final_val_loss


def test_snapshots_kept_on_the_host_when_the_device_budget_is_too_small():
    """The fallback path (forced with a budget of 1 byte): the same losses, the same trained model, and the
    record says where the copies were kept."""
    model_host, host, _ = clocked_run(steps=6, eval_every=2, budget=1)
    model_dev, dev, _ = clocked_run(steps=6, eval_every=2)
    assert [e.val_loss for e in host.evals] == [e.val_loss for e in dev.evals]
    assert all(torch.equal(p, q) for p, q in zip(model_host.state_dict().values(), model_dev.state_dict().values()))
    m = {x.name: x.value for x in host.metrics()}
    assert m["eval_snapshots_on_host"] == 1.0 and m["eval_snapshots"] == 2


def test_the_snapshot_store_follows_the_cuda_budget_and_the_host_refuses_what_it_cannot_hold(monkeypatch):
    from eitp_bench.errors import UserError
    from eitp_bench.workloads import snapshots

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (4000, 80_000))  # 25 % of free: 1000 B
    assert snapshots.choose_store("cuda:0", copies=10, nbytes=100) is False  # fits: on the device
    assert snapshots.choose_store("cuda:0", copies=11, nbytes=100) is True  # over: pinned host copies
    assert snapshots.choose_store("cpu", copies=10**6, nbytes=10**6) is False  # a CPU run: plain clones
    assert snapshots.choose_store("cuda:0", copies=0, nbytes=10**12) is False  # nothing to keep
    snapshots.check_host_memory(5, 100, available=1000)  # half of what is there: allowed
    with pytest.raises(UserError, match="raise train.eval_every"):
        snapshots.check_host_memory(6, 100, available=1000)


def test_the_crossing_is_read_between_dense_evaluations_on_one_window():
    """Evaluations every step; the crossing between steps k and k+1 reads the meter's exact cumulative
    joules there, pro-rated; the figure sums one window (2 edges) up to the upper read, and the
    steady-state rule (5 s) applies to that span, not to the 1-s spacing of the evaluations."""
    _, probe, _ = clocked_run(steps=8, eval_every=1)
    losses = [e.val_loss for e in probe.evals]  # steps 1..8
    for k, expect_flag in ((2, True), (6, False)):  # a bracket (k, k+1) with a span of k+1 s
        assert all(a > b for a, b in zip(losses[: k + 1], losses[1 : k + 1]))  # premise: falling up to k+1
        target = (losses[k - 1] + losses[k]) / 2
        _, result, _ = clocked_run(steps=8, eval_every=1, target=target)
        m = {x.name: x for x in result.metrics()}
        assert (m["target_bracket_lo_step"].value, m["target_bracket_hi_step"].value) == (k, k + 1)
        frac = m["steps_to_target"].value - k
        assert 0 < frac < 1
        lo_j, hi_j = exact_joules(k), exact_joules(k + 1)
        assert m["joules_to_target"].value == pytest.approx(lo_j + frac * (hi_j - lo_j), rel=1e-12)
        assert m["joules_to_target_segments"].value == 1 and m["time_to_target_s_segments"].value == 1
        hi = result.evals[k + 1]  # (step 0 is evals[0])
        assert hi.step == k + 1 and m["joules_to_target_window_s"].value == hi.read.duration_s
        assert hi.read.energy[0].duration_s == k + 1  # the span from the window's start to the upper read
        assert ("not_steady" in {f.code for f in m["joules_to_target"].flags}) is expect_flag


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
    assert (hit.lo.step, hit.hi.step, hit.segments) == (100, 150, 1)  # one training window, read at 150
    assert hit.step == pytest.approx(101) and hit.fraction == pytest.approx(0.02)
    assert hit.train_s == pytest.approx(20.2) and hit.measured_j == pytest.approx(303.0)
    assert hit.estimated_j is None  # never invented from a missing figure
    assert interpolate_crossing(evals, 1.0) is None  # never reached: no figure
    assert interpolate_crossing(evals, 4.5).segments == 0  # met before training: no window summed
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

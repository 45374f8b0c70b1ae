"""Untimed warm-up steps before the first training window: outside every window, undone, equal for every arm."""

import math
from types import SimpleNamespace

import pytest
import torch

from eitp_bench.suite import effective_settings, load_suite
from eitp_bench.workloads.data import LMData, MarkovCorpus, as_tensors
from eitp_bench.workloads.models import build_model
from eitp_bench.workloads.objectives import make_objective
from eitp_bench.workloads.train import OptimSettings, evaluate_lm, train

torch.set_num_threads(1)


def tiny_data(vocab=16, block=16):
    corpus = MarkovCorpus(vocab, seed=0, concentration=0.05)
    return LMData(corpus.sample(8_000, 1), corpus.sample(1_024, 2), vocab, block, corpus.optimal_perplexity,
                  corpus.entropy_rate_nats)


class WindowLog:
    """A fake monitor that only says whether a window is open; `open` is read by the objective below."""

    def __init__(self):
        self.open = False
        self.opened = 0

    def begin(self, name):
        log = self
        log.open, log.opened = True, log.opened + 1

        class Window:
            def so_far(self):  # a read inside the window (at an evaluation step): it stays open
                return SimpleNamespace(measured_joules=None, estimated_joules=None, energy=[], duration_s=0.0)

            def end(self):
                log.open = False  # what train() keeps of the window: no joules, no entries
                return SimpleNamespace(measured_joules=None, estimated_joules=None, energy=[], duration_s=0.0)

        return Window()


class Counting:
    """An objective that records, per loss call, whether a window was open. The record goes through a
    plain function (deepcopy keeps functions as they are), so the warm-up's copy reports here too."""

    def __init__(self, inner, record):
        self.inner, self.record = inner, record

    def loss(self, model, input_ids, labels, **kw):
        self.record()
        return self.inner.loss(model, input_ids, labels, **kw)


def run(arm, *, warmup, steps=6, monitor=None, objective=None, dropout=0.1):
    data = tiny_data()
    torch.manual_seed(0)  # the worker seeds before building the model
    model = build_model("tiny", vocab_size=16, n_positions=16, seed=0, dropout=dropout)
    blocks = data.val_blocks(16)
    batches = (as_tensors(b, "cpu") for b in data.train_batches(8, seed=0))
    result = train(
        model, objective or make_objective(arm), batches, steps=steps, settings=OptimSettings(3e-3), device="cpu",
        evaluate=lambda m: evaluate_lm(m, blocks, batch_size=16, device="cpu"), eval_every=3,
        tokens_per_step=8 * 16, steps_per_epoch=100.0, warmup_untimed_steps=warmup, monitor=monitor,
    )
    return model, result


@pytest.mark.parametrize("arm", ["baseline", "eitp-paper", "eitp-coded"])
def test_warm_up_changes_nothing_learned(arm):
    """Every arm, with dropout on (RNG) and, for eitp-coded, an objective with its own generator: the
    losses, components and weights after training are bit-identical with and without the warm-up."""
    model_a, a = run(arm, warmup=0)
    model_b, b = run(arm, warmup=3)
    assert [e.val_loss for e in b.evals] == [e.val_loss for e in a.evals]
    assert b.components == a.components
    assert all(torch.equal(p, q) for p, q in zip(model_a.state_dict().values(), model_b.state_dict().values()))
    assert (a.warmup_untimed_steps, b.warmup_untimed_steps) == (0, 3)


def test_warm_up_steps_run_outside_every_window_and_the_record_says_how_many():
    monitor, in_window = WindowLog(), []
    objective = Counting(make_objective("baseline"), lambda: in_window.append(monitor.open))
    _, result = run("baseline", warmup=3, steps=6, monitor=monitor, objective=objective)
    assert in_window == [False] * 3 + [True] * 6  # the 3 warm-up steps first, none inside a window
    assert monitor.opened == 1 and len(result.step_times) == 6  # one window; the timed steps are train.steps exactly
    metrics = {m.name: m for m in result.metrics()}
    assert metrics["steps"].value == 6 and metrics["warmup_untimed_steps"].value == 3
    assert metrics["warmup_untimed_steps"].window is None and metrics["warmup_untimed_s"].value > 0


def test_no_warm_up_when_set_to_zero():
    monitor, in_window = WindowLog(), []
    objective = Counting(make_objective("baseline"), lambda: in_window.append(monitor.open))
    _, result = run("baseline", warmup=0, steps=3, monitor=monitor, objective=objective)
    assert in_window == [True] * 3
    metrics = {m.name: m.value for m in result.metrics()}
    assert metrics["warmup_untimed_steps"] == 0 and metrics["warmup_untimed_s"] == 0


def test_the_suite_setting_is_one_for_every_arm_and_distinct_from_the_lr_warm_up():
    suite = load_suite("smoke", ["train.warmup_steps=5"])
    assert suite.train.warmup_untimed_steps == 3 and suite.train.warmup_steps == 5
    assert {effective_settings(suite, arm)["warmup_untimed_steps"] for arm in suite.arms} == {3}
    assert load_suite("smoke", ["train.warmup_untimed_steps=0"]).train.warmup_untimed_steps == 0
    from eitp_bench.suite.problems import SuiteInvalid

    with pytest.raises(SuiteInvalid):  # an arm cannot warm up differently: not a per-arm setting
        load_suite("smoke", ["arm_settings={baseline: {warmup_untimed_steps: 0}}", "allow_unequal_settings=true"])
    assert math.isfinite(suite.train.warmup_untimed_steps)

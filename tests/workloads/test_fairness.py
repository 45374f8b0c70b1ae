"""A fair experiment: equal settings (refused or NOT COMPARABLE otherwise), the dry-run plan,
tuned lr on one grid, schedules, convergence and learned-task rules."""

import json
import math
import textwrap

import pytest
import torch
from synthetic_store import eitp_records, frames_from_records

from eitp_bench.analysis.claims import INCONCLUSIVE, NOT_COMPARABLE, REFUTED, VERIFIED, judge_claims, load_claims
from eitp_bench.cli import main
from eitp_bench.errors import UserError
from eitp_bench.suite import effective_settings, load_suite, unequal_settings
from eitp_bench.workloads.train import OptimSettings

BASE = """\
name: fair
arms: [baseline, eitp-paper, eitp-coded]
tasks: [train]
repetitions: 2
device: cpu
"""


def write(tmp_path, text):
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


# ----------------------------------------------------------------------------- equal settings


@pytest.mark.parametrize("suite", ["smoke", "standard", "full"])
def test_bundled_suites_train_every_arm_with_the_same_settings(suite, capsys):
    assert main(["run", suite, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["unequal_settings"] == {}
    settings = [r["settings"] for r in plan["repetitions"]]
    for key in ("lr", "lr_schedule", "warmup_steps", "weight_decay", "grad_clip", "batch_size", "steps", "precision"):
        assert len({json.dumps(s[key]) for s in settings}) == 1, key
    assert {r["arm"] for r in plan["repetitions"]} == set(load_suite(suite).arms)


def test_dry_run_json_lists_what_this_machine_lacks_and_exits_0(capsys):
    assert main(["run", "standard", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["suite"] == "standard" and len(plan["config_hash"]) == 64
    if not torch.cuda.is_available():
        assert any(m["what"] == "CUDA GPU" and m["blocking"] for m in plan["missing"])
    rep = plan["repetitions"][0]
    assert set(rep) >= {"arm", "size", "seed", "repetition", "tasks", "settings"} and "lr" in rep["settings"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_run_stops_before_any_work_when_the_gpu_is_missing(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "standard", "--out", str(out), "--store", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "CUDA GPU" in err and "nothing was run" in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "r.sqlite").exists()


def test_an_objective_may_not_carry_its_own_lr(tmp_path, capsys):
    path = write(tmp_path, BASE + "objectives:\n  eitp-paper: {lr: 1.0e-3}\n")
    assert main(["run", path, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "objectives.eitp-paper.lr" in err and "train.lr" in err


def test_per_arm_settings_are_refused_unless_forced(tmp_path, capsys):
    path = write(tmp_path, BASE + "arm_settings:\n  eitp-paper: {lr: 1.0e-3}\n")
    assert main(["run", path, "--dry-run", "--json"]) == 2
    assert "arm_settings.eitp-paper.lr" in capsys.readouterr().err
    forced = write(tmp_path, BASE + "allow_unequal_settings: true\narm_settings:\n  eitp-paper: {lr: 1.0e-3}\n")
    assert main(["run", forced, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["unequal_settings"] == {"lr": {"baseline": 5e-5, "eitp-paper": 1e-3, "eitp-coded": 5e-5}}
    lrs = {r["arm"]: r["settings"]["lr"] for r in plan["repetitions"]}
    assert lrs == {"baseline": 5e-5, "eitp-paper": 1e-3, "eitp-coded": 5e-5}


def test_unknown_loss_coefficient_is_caught_before_any_worker(tmp_path, capsys):
    path = write(tmp_path, BASE + "objectives:\n  eitp-paper: {lambda_x: 1.0}\n")
    assert main(["run", path, "--dry-run"]) == 2
    assert "lambda_x" in capsys.readouterr().err


def test_only_the_objective_may_differ():
    suite = load_suite("smoke")
    settings = {arm: effective_settings(suite, arm) for arm in suite.arms}
    assert len({s["objective"] for s in settings.values()}) == 3  # baseline, eitp-paper, eitp-coded
    assert unequal_settings(settings) == {}
    settings["eitp-paper"]["precision"] = "bf16"
    assert unequal_settings(settings) == {"precision": {a: ("bf16" if a == "eitp-paper" else "fp32") for a in suite.arms}}


def forced_records():
    # 10 rounds: enough for Holm across the paper's headline claims to verify a planted 5× gain
    return frames_from_records(eitp_records(n_reps=10, speedup=5.0))


def test_a_claim_over_arms_with_different_settings_is_not_comparable():
    f = forced_records()
    claims = load_claims("eitp")
    suite = load_suite("smoke", ["allow_unequal_settings=true", "arm_settings.eitp-paper.lr=0.002"])
    settings = {arm: effective_settings(suite, arm) for arm in ("baseline", "eitp-paper", "eitp-compressed")}
    fair = {v.claim.id: v for v in judge_claims(f["metrics"], f["energy"], claims)}
    unfair = {v.claim.id: v for v in judge_claims(f["metrics"], f["energy"], claims, settings=settings)}
    assert fair["inference-speedup"].verdict == VERIFIED  # a planted 5× gain
    assert unfair["inference-speedup"].verdict == NOT_COMPARABLE
    assert "lr" in unfair["inference-speedup"].reason and "VERIFIED" in unfair["inference-speedup"].reason
    # model-size compares eitp-compressed (trained as eitp-paper at 0.002) with the baseline: also unfair
    assert unfair["model-size"].verdict == NOT_COMPARABLE


# ----------------------------------------------------------------------------- schedules and tuning


def test_lr_schedules_warm_up_then_decay_to_zero():
    s = OptimSettings(1.0, schedule="linear", warmup_steps=4)
    assert [s.lr_factor(i, 12) for i in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert s.lr_factor(4, 12) == 1.0 and s.lr_factor(8, 12) == 0.5 and s.lr_factor(12, 12) == 0.0
    c = OptimSettings(1.0, schedule="cosine")
    assert c.lr_factor(0, 10) == 1.0 and c.lr_factor(5, 10) == pytest.approx(0.5) and c.lr_factor(10, 10) == pytest.approx(0.0)
    assert OptimSettings(1.0).lr_factor(7, 10) == 1.0


def test_training_applies_the_shared_settings():
    """The loop really uses lr, schedule, decay and clipping: checked on a one-parameter model."""
    from eitp_bench.workloads.train import train

    class Quadratic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([10.0]))

    class Objective:
        forward_passes_per_step = 1

        def loss(self, model, ids, labels, *, step, epoch):
            loss = 50.0 * (model.w**2).sum()  # gradient 100·w = 1000: far above the clip
            return loss, {"task": float(loss)}

    seen = []

    def batches():
        while True:
            yield torch.zeros(1), torch.zeros(1)

    model = Quadratic()
    settings = OptimSettings(0.1, schedule="linear", warmup_steps=0, weight_decay=0.0, grad_clip=1.0)
    result = train(model, Objective(), batches(), steps=4, settings=settings, device="cpu",
                   evaluate=lambda m: seen.append(float(m.w)) or 0.0, eval_every=1, tokens_per_step=1,
                   steps_per_epoch=1.0)
    # AdamW's first steps move by ≈ lr·factor whatever the (clipped) gradient: 0.1·(1, .75, .5, .25)
    assert seen == pytest.approx([9.9, 9.825, 9.775, 9.75], abs=1e-4)
    assert result.lr == 0.1


def tiny_suite(tmp_path, extra=""):
    return load_suite(write(tmp_path, """\
        name: tune
        arms: [baseline, eitp-paper]
        tasks: [train]
        repetitions: 1
        device: cpu
        threads: 1
        data: {kind: markov, vocab_size: 16, block_size: 16, train_tokens: 4000, val_tokens: 1024}
        train: {steps: 4, batch_size: 4, eval_every: 4, eval_batches: 1, lr_policy: tuned,
                lr_grid: [1.0e-5, 3.0e-3], tune_steps: 6}
        """ + extra))


def test_tuned_policy_picks_from_the_same_grid_and_records_it(tmp_path):
    from eitp_bench.workloads.tasks import TaskContext, train_task

    suite = tiny_suite(tmp_path)
    assert effective_settings(suite, "baseline")["lr"] == "tuned"
    ctx = TaskContext(suite, "baseline", "tiny", 0, 0, "cpu")
    metrics = {m.name: m.value for m in train_task(ctx)}
    losses = {lr: metrics[f"lr_tuning_loss@{lr:g}"] for lr in (1e-5, 3e-3)}
    assert metrics["lr"] == min(losses, key=losses.get)  # the grid point with the lowest held-out loss
    assert metrics["lr"] == 3e-3  # 6 steps at 1e-5 barely move a fresh model
    assert metrics["lr_tuning_grid_points"] == 2 and metrics["lr_tuning_s"] > 0


# ----------------------------------------------------------------------------- convergence and learning


def verdicts_of(records):
    f = frames_from_records(records)
    return {v.claim.id: v for v in judge_claims(f["metrics"], f["energy"], load_claims("eitp"))}


def test_a_candidate_that_misses_the_target_is_censored_at_its_budget_not_dropped():
    # 9 of 10 candidate runs miss the target having spent ~1000 J; the baseline reaches it with ~800 J:
    # each censored round's ratio is above 1000/800 > 0.75 whatever the candidate would have needed
    v = verdicts_of(eitp_records(n_reps=10, energy_ratio=1.0, converged=(1, 10)))["training-energy"]
    assert v.verdict == REFUTED and "1 of 10" in v.reason and "censored" in v.reason
    assert v.censored == {"eitp-paper": 9, "baseline": 0, "both": 0, "rounds": 10}
    assert v.n_candidate == 10  # censored runs count: nothing dropped


def test_a_candidate_that_misses_the_target_cheaply_proves_nothing_either_way():
    # the candidate's budget (~500 J) is below what would refute "≤ 0.75 × 800 J": no verdict, no coin flip
    v = verdicts_of(eitp_records(n_reps=10, energy_ratio=0.5, converged=(5, 10)))["training-energy"]
    assert v.verdict == INCONCLUSIVE and v.censored["eitp-paper"] == 5
    assert v.ci_high == float("inf") and "unbounded" in v.reason


def test_converged_arms_are_judged_and_the_counts_are_said():
    v = verdicts_of(eitp_records(n_reps=10, energy_ratio=0.5))["training-energy"]
    assert v.verdict == VERIFIED and "10 of 10" in v.reason


def test_long_range_needs_a_baseline_that_learned_the_task():
    # chance 0.1; baseline accuracy 0.11 over 6 × 64 queries: not distinguishable from chance
    v = verdicts_of(eitp_records(n_reps=6, retrieval_ratio=2.0, base_acc=0.11, chance=0.1))["long-range"]
    assert v.verdict == INCONCLUSIVE and "task not learned" in v.reason
    learned = verdicts_of(eitp_records(n_reps=6, retrieval_ratio=1.0, base_acc=0.5, chance=0.1))["long-range"]
    assert "task not learned" not in learned.reason and learned.verdict == REFUTED


def test_clopper_pearson_lower_bound_used_by_the_learned_gate():
    from scipy.stats import beta

    # 50/384 correct against chance 0.1: lower 95 % bound ≈ 0.098 < 0.1 → not learned; 60/384 → learned
    assert beta.ppf(0.025, 50, 384 - 50 + 1) < 0.1 < beta.ppf(0.025, 60, 384 - 60 + 1)
    assert math.isclose(beta.ppf(0.025, 60, 325), 0.1211, abs_tol=5e-4)

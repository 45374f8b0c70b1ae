"""The verdict rules of issue 17 on small fixed-seed cases: REFUTED under Holm like VERIFIED, censored
to-target runs, and paired counts. (Instrument widening: tests/analysis/test_instrument.py; Monte-Carlo error
rates with more trials: benchmarks/stats_error_rates.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from synthetic_store import frames_from_records, record

from eitp_bench.analysis import stats
from eitp_bench.analysis.stats import paired
from eitp_bench.analysis.claims import INCONCLUSIVE, REFUTED, VERIFIED, Claim, judge_claims

INF = math.inf


# ----------------------------------------------------------------------------- ties and ±∞ in the signed-rank test


def test_signed_rank_with_ties_and_infinities_is_the_exact_mid_rank_distribution():
    # |d| ranks: 0.5 → 1, 1 → 2, ∞, ∞ → 3.5 each; doubled 2, 4, 7, 7; positive sum 18 of 20.
    # Of the 16 equally likely sign patterns, sums ≥ 18 are {4, 7, 7} and {2, 4, 7, 7}: p = 2/16
    d = [INF, INF, 1.0, -0.5]
    assert stats.signed_rank_p_ties(d, "greater") == pytest.approx(2 / 16)
    assert stats.signed_rank_p_ties(d, "less") == pytest.approx(15 / 16)  # sums ≤ 18: all but 20
    assert stats.signed_rank_p_ties([0.0, 0.0], "greater") == 1.0


def test_signed_rank_with_ties_agrees_with_the_exact_test_on_untied_data():
    d = np.random.default_rng(4).normal(0.3, 1, 12)
    for alt in ("less", "greater", "two-sided"):
        assert stats.signed_rank_p_ties(d, alt) == pytest.approx(paired._signed_rank_p(d, alt))


# ----------------------------------------------------------------------------- censoring


def test_censored_rounds_are_bounded_by_the_budget():
    lo, hi = stats.censored_log_ratio_bounds([2.0, INF, 4.0, INF], [4.0, 5.0, INF, INF],
                                             [9.0, 10.0, 9.0, 10.0], [9.0, 9.0, 8.0, 9.0])
    assert lo[0] == hi[0] == pytest.approx(math.log(0.5))
    assert lo[1] == pytest.approx(math.log(10 / 5)) and hi[1] == INF  # needed more than 10 where b needed 5
    assert lo[2] == -INF and hi[2] == pytest.approx(math.log(4 / 8))  # b needed more than 8 where c needed 4
    assert lo[3] == -INF and hi[3] == INF
    lo, hi = stats.censored_log_ratio_bounds([INF], [5.0], [float("nan")], [9.0])  # budget unknown
    assert lo[0] == -INF and hi[0] == INF


def test_censored_effect_takes_each_sides_worst_case_and_never_invents_a_bound():
    c = [1.0] * 8 + [INF, INF]
    b = [2.0] * 8 + [2.0, 2.0]
    # censored candidate runs had a budget of 3 (ratio > 1.5): the lower side is finite, the upper is not
    eff = stats.censored_paired_ratio_effect(c, b, candidate_budget=[3.0] * 10, baseline_budget=[3.0] * 10,
                                             threshold=1.0, direction="lower_is_better")
    assert eff.ci_high == INF and 0 < eff.ci_low < 1
    assert not stats.clears(eff, 1.0, "lower_is_better") and not stats.falls_short(eff, 1.0, "lower_is_better")
    assert "2 candidate and 0 baseline" in eff.note
    # the one-sided p against "not below 1" ranks the two +∞ rounds as the largest against the claim
    hi = np.log([0.5] * 8 + [INF, INF])
    assert eff.p_threshold == pytest.approx(stats.signed_rank_p_ties(hi, "less"))


def test_an_interval_open_on_one_side_decides_only_on_its_finite_side():
    open_above = stats.Effect(1.2, 1.05, INF, 0.01, 10, 10, "Wilcoxon exact")
    assert stats.falls_short(open_above, 1.0, "lower_is_better")  # at least 5 % worse: refutes "≤ 1×"
    assert not stats.clears(open_above, 1.0, "lower_is_better")
    assert stats.clears(open_above, 1.0, "higher_is_better")  # "≥ 1×" rests on the finite 1.05
    assert not stats.falls_short(stats.Effect(1.2, float("nan"), 0.9, 0.01, 10, 10, "x"), 1.0, "higher_is_better")


def _to_target_records(rng, n, slow=1.0, budget_q=0.5, sd_seed=0.10, sd_run=0.10, fail_c=None):
    """Paired training rounds: time to target ~ seed level × run noise (× `slow` for the candidate).
    Every run stops at the budget B (the `budget_q` quantile of the baseline's time); a run slower than
    B misses the target (censored), its train_s = B. `fail_c` sets the candidate's own budget quantile."""
    from scipy.stats import norm

    sd = math.hypot(sd_seed, sd_run)
    budget = float(np.exp(norm.ppf(budget_q) * sd))
    budget_c = budget if fail_c is None else float(slow * np.exp(norm.ppf(1 - fail_c) * sd))
    out = []
    for rep in range(n):
        level = rng.normal(0, sd_seed)
        for arm, factor, b in (("baseline", 1.0, budget), ("eitp-paper", slow, budget_c)):
            t = factor * float(np.exp(level + rng.normal(0, sd_run)))
            m = {"target_reached": float(t <= b), "train_s": b, "final_val_loss": 3.0}
            if t <= b:
                m["time_to_target_s"] = t
            out.append(record(arm, "train", rep, m))
    return out


TIME_CLAIM = Claim(id="faster", quote="q", paper_figure="f", metric="time_to_target_s", task="train",
                   to_target=True, candidate="eitp-paper", baseline="baseline", direction="lower_is_better",
                   threshold=1.0)


def _judge_one(records, claim):
    f = frames_from_records(records)
    return judge_claims(f["metrics"], f["energy"], [claim], n_resamples=200)[0]


def test_identical_arms_converging_half_the_time_are_rarely_refuted():
    # the old "candidate converged in fewer than half its runs → REFUTED" flipped a coin here
    rng = np.random.default_rng(17)
    verdicts = [_judge_one(_to_target_records(rng, 10), TIME_CLAIM) for _ in range(40)]
    assert sum(v.verdict == REFUTED for v in verdicts) <= 4  # nominal ≤ 2.5 %: 1 in 40 expected at most
    assert all(v.censored["rounds"] == 10 for v in verdicts)
    assert sum(v.censored["eitp-paper"] for v in verdicts) > 100  # about half of 400 runs censored


def test_a_slower_candidate_that_often_fails_is_not_verified_from_its_survivors():
    # 10 % slower, missing the target in 45 % of its runs: its converged runs are its fast ones
    rng = np.random.default_rng(18)
    verdicts = [_judge_one(_to_target_records(rng, 20, slow=1.1, fail_c=0.45, budget_q=0.9), TIME_CLAIM)
                for _ in range(25)]
    assert not any(v.verdict == VERIFIED for v in verdicts)


def test_a_clearly_faster_candidate_with_censored_baseline_runs_is_verified():
    # candidate twice as fast; the baseline misses the target in about half its runs. Each censored
    # baseline round is bounded (the candidate reached it before the baseline's budget ran out).
    v = _judge_one(_to_target_records(np.random.default_rng(19), 12, slow=0.5), TIME_CLAIM)
    assert v.censored["baseline"] >= 3 and v.censored["eitp-paper"] == 0
    assert v.verdict == VERIFIED and v.design == "paired, censored"


# ----------------------------------------------------------------------------- REFUTED under Holm


def _claims_at(n_claims: int):
    return [Claim(id=f"c{i}", quote="q", paper_figure="f", metric=f"m{i}", task="t", candidate="eitp-paper",
                  baseline="baseline", direction="lower_is_better", threshold=1.0) for i in range(n_claims)]


def _records_with_log_ratios(log_ratios: list[list[float]]):
    out = []
    for rep in range(len(log_ratios[0])):
        base = {f"m{i}": 100.0 * (1 + 0.01 * rep) for i in range(len(log_ratios))}
        cand = {f"m{i}": base[f"m{i}"] * math.exp(d[rep]) for i, d in enumerate(log_ratios)}
        out += [record("baseline", "t", rep, base), record("eitp-paper", "t", rep, cand)]
    return out


def test_refuted_is_holm_adjusted_across_the_family_like_verified():
    # 10 claims × 10 rounds. c0: every round short of the claim (p = 2⁻¹⁰, adjusted ≈ 0.01): REFUTED.
    # c1: 9 of 10 rounds short — the interval falls short (unadjusted: REFUTED), but p = 3/1024, adjusted
    # at Holm's second step to 9 · 3/1024 ≥ 0.025: INCONCLUSIVE. The others straddle.
    rng = np.random.default_rng(5)
    rows = [list(0.05 + 0.01 * np.arange(10)), [-0.045] + list(0.04 + 0.01 * np.arange(9))]
    rows += [list(rng.normal(0, 0.05, 10)) for _ in range(8)]
    f = frames_from_records(_records_with_log_ratios(rows))
    v = {x.claim.id: x for x in judge_claims(f["metrics"], f["energy"], _claims_at(10))}
    assert v["c0"].verdict == REFUTED and v["c0"].p_refute_adjusted < 0.025
    assert stats.falls_short(stats.paired_ratio_effect(np.exp(rows[1]), np.ones(10)), 1.0, "lower_is_better")
    assert v["c1"].verdict == INCONCLUSIVE and "refute this many claims" in v["c1"].reason
    assert v["c1"].plan and "next suite" in v["c1"].plan  # a plan for the next suite, as for any INCONCLUSIVE
    assert v["c1"].p_refute < 0.025 <= v["c1"].p_refute_adjusted
    assert v["c0"].family == [f"c{i}" for i in range(10)] and v["c0"].family_size == 10


def test_least_favourable_null_family_wise_error_both_directions():
    # every claim exactly at its claimed value: P(any REFUTED) and P(any VERIFIED) per report ≤ 5 %
    # (Holm on each side at 0.025; the same decision the judge makes, on the Effects directly)
    rng = np.random.default_rng(6)
    any_ver = any_ref = 0
    trials = 150
    for _ in range(trials):
        effs_v, effs_r = [], []
        for _claim in range(10):
            d = rng.normal(0, 0.05, 10)
            e = stats.paired_ratio_effect(np.exp(d), np.ones(10), threshold=1.0, direction="lower_is_better")
            effs_v.append(e.p_threshold)
            effs_r.append(stats.paired_ratio_effect(np.exp(d), np.ones(10), threshold=1.0,
                                                    direction="higher_is_better").p_threshold)
        any_ver += bool((stats.holm(effs_v) < 0.025).any())
        any_ref += bool((stats.holm(effs_r) < 0.025).any())
    assert any_ver / trials <= 0.06 and any_ref / trials <= 0.06  # nominal ≤ 2.5 % each


# ----------------------------------------------------------------------------- paired counts


def test_long_range_counts_are_paired_by_round_and_pairing_finds_a_gain_unpaired_misses():
    # a shared seed effect moves both arms' accuracy per round (0.3 … 0.7); the candidate is 1.25× better
    rng = np.random.default_rng(7)
    levels = rng.uniform(0.3, 0.55, 10)
    q = 400
    kb = rng.binomial(q, levels)
    kc = rng.binomial(q, np.minimum(1.0, 1.25 * levels))
    n = np.full(10, q)
    paired = stats.proportion_ratio_effect(kc, n, kb, n, paired=True, threshold=1.0, direction="higher_is_better")
    unpaired = stats.proportion_ratio_effect(kc, n, kb, n, paired=False, threshold=1.0,
                                             direction="higher_is_better")
    assert paired.ci_high - paired.ci_low < unpaired.ci_high - unpaired.ci_low
    assert stats.clears(paired, 1.0, "higher_is_better")


# ----------------------------------------------------------------------------- what the findings JSON says


def test_findings_json_states_the_family_both_p_values_and_censored_runs():
    from synthetic_store import eitp_records

    from eitp_bench.analysis.claims import load_claims
    from eitp_bench.analysis.findings import analyse
    from eitp_bench.analysis.frames import load_frames

    recs = eitp_records(n_reps=10, energy_ratio=1.0, converged=(7, 10))
    g = analyse(load_frames(frames_from_records(recs)), load_claims("eitp"), n_resamples=300).to_json()["groups"][0]
    family = g["multiplicity"]["headline"]
    assert "training-energy" in family["claims"] and family["size"] == len(family["claims"])
    row = next(x for x in g["verdicts"] if x["claim"] == "training-energy")
    assert row["family"] == family["claims"] and row["design"] == "paired, censored"
    assert row["censored"] == {"eitp-paper": 3, "baseline": 0, "both": 0, "rounds": 10}
    assert 0 <= row["p_refute"] <= row["p_refute_adjusted"] <= 1 and row["p_verify"] is not None


def test_an_unbounded_interval_is_valid_json_and_says_which_side_is_open():
    import json

    from synthetic_store import eitp_records

    from eitp_bench.analysis.claims import load_claims
    from eitp_bench.analysis.findings import analyse
    from eitp_bench.analysis.frames import load_frames

    recs = eitp_records(n_reps=10, energy_ratio=0.5, converged=(5, 10))  # cheap failures: no upper bound
    doc = analyse(load_frames(frames_from_records(recs)), load_claims("eitp"), n_resamples=300).to_json()
    json.dumps(doc, allow_nan=False)  # strict JSON: no Infinity, no NaN
    row = next(x for x in doc["groups"][0]["verdicts"] if x["claim"] == "training-energy")
    assert row["verdict"] == "INCONCLUSIVE" and row["ci"][1] is None and row["ci_unbounded"] == ["above"]

"""Statistics against known truths: planted effects, hand-computed values, analytic answers."""

import numpy as np
import pytest

from eitp_bench.analysis import stats
from eitp_bench.analysis.stats import paired, unpaired


def test_planted_2x_effect_ci_covers_truth_and_excludes_1():
    rng = np.random.default_rng(3)
    base = rng.lognormal(0, 0.05, 10)
    cand = 2.0 * rng.lognormal(0, 0.05, 10)
    eff = stats.ratio_effect(cand, base, seed=1)
    assert eff.ci_method == "BCa"
    assert eff.ci_low < 2.0 < eff.ci_high
    assert eff.ci_low > 1.5
    # complete separation of 10 vs 10: U = 100, normal approximation with continuity correction
    z = (100 - 50 - 0.5) / np.sqrt(10 * 10 * 21 / 12)
    from scipy.stats import norm
    assert eff.p_value == pytest.approx(2 * norm.sf(z), rel=1e-6)


def test_ratio_is_ratio_of_medians():
    eff = stats.ratio_effect([1, 2, 3, 4, 100], [1, 1, 1.5, 2, 2], seed=0)
    assert eff.ratio == pytest.approx(3 / 1.5)


def test_degenerate_samples_fall_back_to_percentile_and_say_so():
    eff = stats.ratio_effect([10.0] * 6, [5.0] * 6)
    assert eff.ci_method == "percentile"
    assert "percentile" in eff.note
    assert (eff.ratio, eff.ci_low, eff.ci_high) == (2.0, 2.0, 2.0)
    # A zero-width interval is no evidence: it never clears nor falls short of a threshold.
    assert eff.degenerate and eff.constant and eff.design == "unpaired"
    assert not stats.clears(eff, 1.5, "higher_is_better")
    assert not stats.falls_short(eff, 2.5, "higher_is_better")


def test_zero_baseline_median_is_an_error():
    with pytest.raises(ValueError, match="baseline median is 0"):
        stats.ratio_effect([1, 2, 3], [0, 0, 0])


def test_benjamini_hochberg_hand_computed():
    p = [0.01, 0.04, 0.03, 0.20]
    # sorted: .01,.03,.04,.20 → .01·4/1=.04, .03·4/2=.06, .04·4/3=.0533→min(.0533,.2)→ monotone: .04,.0533,.0533,.2
    q = stats.benjamini_hochberg(p)
    assert q == pytest.approx([0.04, 0.05333333, 0.05333333, 0.20])


def test_median_ci_order_statistics():
    med, lo, hi = stats.median_ci(np.arange(20))
    assert (med, lo, hi) == (9.5, 5.0, 14.0)  # X(6), X(15): coverage 1 − 2·P(Bin(20,½) ≤ 5) = 0.9586
    assert np.isnan(stats.median_ci([1, 2, 3])[1])  # too few for a 95 % order-statistic interval


def test_cv():
    assert stats.coefficient_of_variation([1.0, 3.0]) == pytest.approx(np.sqrt(2) / 2)


def test_change_point_found_at_the_step():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(10, 0.2, 30), rng.normal(11, 0.2, 20)]
    assert stats.change_points(x) == [30]


def test_no_change_point_on_flat_noise():
    hits = sum(bool(stats.change_points(np.random.default_rng(s).normal(10, 1, 60))) for s in range(50))
    assert hits <= 5


# --- the one threshold rule -------------------------------------------------------------------

def _effect(low, high, **kw):
    return stats.Effect(1.0, low, high, 0.5, 6, 6, "test", **kw)


def test_threshold_rule_is_strict_and_directional():
    assert stats.clears(_effect(1.01, 1.2), 1.0, "higher_is_better")
    assert not stats.clears(_effect(1.0, 1.2), 1.0, "higher_is_better")  # touching is not clearing
    assert stats.clears(_effect(0.8, 0.99), 1.0, "lower_is_better")
    assert not stats.clears(_effect(0.8, 1.0), 1.0, "lower_is_better")
    assert stats.falls_short(_effect(0.8, 0.99), 1.0, "higher_is_better")
    assert not stats.falls_short(_effect(0.8, 1.0), 1.0, "higher_is_better")
    assert stats.falls_short(_effect(1.01, 1.2), 1.0, "lower_is_better")
    assert not stats.clears(_effect(1.1, 1.2, degenerate=True), 1.0, "higher_is_better")
    assert not stats.clears(_effect(float("nan"), 1.2), 1.0, "higher_is_better")
    with pytest.raises(ValueError, match="direction"):
        stats.clears(_effect(1.1, 1.2), 1.0, "up")


# --- paired effects ---------------------------------------------------------------------------

def _rounds(rng, n, gain, seed_cv=0.10, noise_cv=0.01):
    """Baseline and candidate per round: a shared round level (the seed effect) × small own noise."""
    level = 20.0 * rng.lognormal(0, seed_cv, n)
    return level * gain * rng.lognormal(0, noise_cv, n), level * rng.lognormal(0, noise_cv, n)


def test_signed_rank_distribution_and_critical_values_match_tables():
    # Exact null distribution of T+ for n = 3: subsets of {1,2,3} → sums 0,1,2,3,3,4,5,6.
    assert paired._signed_rank_cdf(3) * 8 == pytest.approx([1, 2, 3, 5, 6, 7, 8])
    # Two-sided 5 % critical values of the signed-rank test (tables): n = 10 → 8, n = 20 → 52.
    assert paired._signed_rank_k(10, 0.95)[0] == 8 + 1
    assert paired._signed_rank_k(20, 0.95)[0] == 52 + 1
    # Too few rounds for 95 %: [min, max], with its true coverage 1 − 2·2⁻ⁿ.
    assert paired._signed_rank_k(5, 0.95)[:2] == (1, 1 - 2 / 32)


def test_paired_effect_on_hand_computed_rounds():
    # Log-ratios ln 2 · (1, 2, 3): Walsh averages ln 2 · (1, 1.5, 2, 2, 2.5, 3) → HL = 2 ln 2 → ratio 4.
    base = np.array([1.0, 3.0, 5.0])
    eff = stats.paired_ratio_effect(base * [2, 4, 8], base)
    assert eff.ratio == pytest.approx(4.0)
    assert (eff.ci_low, eff.ci_high) == pytest.approx((2.0, 8.0))  # n = 3: [min, max]
    assert eff.design == "paired" and eff.confidence == pytest.approx(0.75)
    assert "cannot give a 95 % signed-rank interval" in eff.note
    assert eff.p_value == pytest.approx(0.25)  # all 3 positive: 2 · 2⁻³


def test_paired_p_values_are_scipys_exact_signed_rank():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(5)
    c, b = rng.lognormal(0.05, 0.1, 12), rng.lognormal(0, 0.1, 12)
    eff = stats.paired_ratio_effect(c, b, threshold=1.02, direction="higher_is_better")
    d = np.log(c) - np.log(b)
    assert eff.p_value == pytest.approx(wilcoxon(d, method="exact").pvalue, rel=1e-12)
    assert eff.p_threshold == pytest.approx(
        wilcoxon(d - np.log(1.02), alternative="greater", method="exact").pvalue, rel=1e-12)


def test_paired_interval_and_threshold_p_agree():
    """Interval and p come from one test: CI clears t ⇔ one-sided p < α/2 (exact, untied)."""
    rng = np.random.default_rng(11)
    agree = 0
    for _ in range(150):
        n = int(rng.integers(6, 31))
        c, b = _rounds(rng, n, 0.97, noise_cv=0.03)
        for t, direction in ((1.0, "lower_is_better"), (0.98, "higher_is_better")):
            eff = stats.paired_ratio_effect(c, b, threshold=t, direction=direction)
            assert stats.clears(eff, t, direction) == (eff.p_threshold < 0.025)
            agree += 1
    assert agree == 300


def test_planted_paired_3pc_gain_under_10pc_seed_spread_is_found_at_n6():
    """3 % gain (per-round noise cv 1 %) under a 10 % seed-to-seed spread, 6 rounds, 200 seeds:
    paired verifies (CI below 1, strict) in ≥ 80 %; the unpaired ratio of medians in < 20 %."""
    paired = unpaired = 0
    for s in range(200):
        c, b = _rounds(np.random.default_rng(s), 6, 0.97)
        paired += stats.clears(stats.paired_ratio_effect(c, b), 1.0, "lower_is_better")
        unpaired += stats.clears(stats.ratio_effect(c, b, n_resamples=2000, seed=s), 1.0, "lower_is_better")
    assert paired / 200 >= 0.80
    assert unpaired / 200 < 0.20


def test_paired_null_rarely_verifies():
    hits = 0
    for s in range(400):
        c, b = _rounds(np.random.default_rng(1000 + s), 8, 1.0, noise_cv=0.02)
        hits += stats.clears(stats.paired_ratio_effect(c, b), 1.0, "lower_is_better")
    assert hits / 400 <= 0.05  # nominal one-sided rate: 2.5 %


def test_paired_rounds_drop_missing_and_constant_rounds_are_degenerate():
    eff = stats.paired_ratio_effect([2.0, np.nan, 2.2, 2.4, 2.1, 2.6, 2.3], [1.0, 1.0, 1.1, 1.2, 1.05, 1.3, 1.15])
    assert eff.n_candidate == 6 and "1 round(s) without both arms dropped" in eff.note
    assert eff.degenerate and eff.constant and "same ratio 2" in eff.reason
    assert (eff.ci_low, eff.ci_high) == pytest.approx((2.0, 2.0))
    assert not stats.clears(eff, 1.5, "higher_is_better")
    with pytest.raises(ValueError, match="equal length"):
        stats.paired_ratio_effect([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="positive"):
        stats.paired_ratio_effect([1, 2, 0], [1, 2, 3])


def test_walsh_bisection_matches_the_full_array(monkeypatch):
    rng = np.random.default_rng(2)
    c, b = rng.lognormal(0, 0.2, 120), rng.lognormal(0.01, 0.2, 120)
    c[:30] = b[:30] * 1.01  # ties among the log-ratios
    full = stats.paired_ratio_effect(c, b)
    monkeypatch.setattr(paired, "WALSH_FULL_MAX_N", 10)
    bisected = stats.paired_ratio_effect(c, b)
    assert (bisected.ratio, bisected.ci_low, bisected.ci_high) == (full.ratio, full.ci_low, full.ci_high)
    assert full.ci_method == "Wilcoxon normal"


# --- unpaired bootstrap -----------------------------------------------------------------------

def test_bootstrap_medians_have_the_naive_bootstraps_distribution():
    rng = np.random.default_rng(4)
    for n in (7, 8):
        x = np.sort(rng.lognormal(0, 0.3, n))
        fast = unpaired._bootstrap_medians(x, 100_000, rng)
        naive = np.median(x[rng.integers(0, n, (100_000, n))], axis=1)
        for q in (0.025, 0.25, 0.5, 0.75, 0.975):  # exact values where the mass sits
            assert abs(np.mean(fast <= np.quantile(naive, q)) - np.mean(naive <= np.quantile(naive, q))) < 0.01


def test_jackknife_medians_closed_form():
    rng = np.random.default_rng(0)
    for n in (2, 5, 6):
        x = np.sort(rng.normal(size=n))
        assert unpaired._jackknife_medians(x) == pytest.approx([np.median(np.delete(x, i)) for i in range(n)])


def test_ratio_effect_bca_agrees_with_scipy_within_monte_carlo_error():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(8)
    c, b = rng.lognormal(0.1, 0.2, 30), rng.lognormal(0, 0.2, 25)
    eff = stats.ratio_effect(c, b, n_resamples=50_000)
    ref = bootstrap((c, b), lambda x, y, axis=-1: np.median(x, axis=axis) / np.median(y, axis=axis),
                    vectorized=True, n_resamples=50_000, random_state=1).confidence_interval
    assert eff.ci_method == "BCa"
    assert eff.ci_low == pytest.approx(ref.low, rel=0.01) and eff.ci_high == pytest.approx(ref.high, rel=0.01)


# --- discrete metrics -------------------------------------------------------------------------

def test_proportion_ratio_katz_interval_hand_computed():
    # 60/100 vs 40/100 in 4 runs of 25 each arm, no run-to-run spread beyond the counts.
    eff = stats.proportion_ratio_effect([15] * 4, [25] * 4, [10] * 4, [25] * 4)
    se = np.sqrt(0.4 / 60 + 0.6 / 40)  # Katz: (1 − p)/k per arm
    assert eff.ratio == pytest.approx(1.5)
    assert (eff.ci_low, eff.ci_high) == pytest.approx((1.5 * np.exp(-1.959964 * se), 1.5 * np.exp(1.959964 * se)))
    assert "binomial variance" in eff.note and eff.estimator == "ratio of pooled proportions"


def test_proportion_between_run_spread_widens_the_interval():
    spread = stats.proportion_ratio_effect([5, 25, 10, 20], [25] * 4, [10] * 4, [25] * 4)
    assert "between-run variance used" in spread.note and "t on 3 df" in spread.note
    flat = stats.proportion_ratio_effect([15] * 4, [25] * 4, [10] * 4, [25] * 4)
    assert spread.ratio == flat.ratio and spread.ci_low < flat.ci_low


def _tied_null(paired, overdispersion, seed):
    rng = np.random.default_rng(seed)
    runs, queries = int(rng.integers(5, 9)), int(rng.integers(16, 129))
    n = np.full(runs, queries)
    if overdispersion:  # seeds differ in how well they learned: beta-binomial runs
        a = 0.5 * (1 / overdispersion - 1)
        pb = rng.beta(a, a, runs)
        pc = pb if paired else rng.beta(a, a, runs)
    else:
        pb = pc = np.full(runs, 0.5)
    return stats.proportion_ratio_effect(rng.binomial(n, pc), n, rng.binomial(n, pb), n, paired=paired)


@pytest.mark.parametrize("paired,overdispersion", [(False, 0.0), (True, 0.0), (False, 0.1), (True, 0.1)])
def test_null_on_tied_discrete_accuracies_rarely_verifies(paired, overdispersion):
    """Both arms at accuracy 0.5, 16–128 queries per run, 5–8 runs, 400 seeds: ≤ 5 % VERIFIED at 1.0."""
    hits = sum(stats.clears(_tied_null(paired, overdispersion, s), 1.0, "higher_is_better") for s in range(400))
    assert hits / 400 <= 0.05


def test_planted_accuracy_gain_is_found():
    hits = 0
    for s in range(100):
        rng = np.random.default_rng(s)
        n = np.full(6, 64)
        hits += stats.clears(stats.proportion_ratio_effect(rng.binomial(n, 0.65), n, rng.binomial(n, 0.4), n),
                             1.0, "higher_is_better")
    assert hits >= 90


def test_degenerate_counts_never_verify():
    zero = stats.proportion_ratio_effect([5, 6, 7], [10] * 3, [0, 0, 0], [10] * 3, threshold=1.0,
                                         direction="higher_is_better")
    assert zero.degenerate and "no correct answer at all for the baseline" in zero.reason
    assert not stats.clears(zero, 1.0, "higher_is_better") and zero.p_threshold == 1.0
    ceiling = stats.proportion_ratio_effect([10] * 3, [10] * 3, [10] * 3, [10] * 3)
    assert ceiling.degenerate and "ceiling" in ceiling.reason
    identical = stats.proportion_ratio_effect([5] * 3, [10] * 3, [5] * 3, [10] * 3, paired=True)
    assert identical.ratio == 1.0 and not stats.clears(identical, 1.0, "higher_is_better")
    assert not stats.falls_short(identical, 1.0, "higher_is_better")
    with pytest.raises(ValueError, match="0 ≤ k ≤ n"):
        stats.proportion_ratio_effect([11, 1], [10, 10], [1, 1], [10, 10])


# --- multiplicity -----------------------------------------------------------------------------

def test_holm_hand_computed():
    # sorted .005,.01,.03,.04 → ×4,×3,×2,×1 = .02,.03,.06,.04 → running max .02,.03,.06,.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = stats.holm([0.01, np.nan, 0.04])  # a claim without a test is not counted
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert stats.holm([]).size == 0


def test_holm_controls_family_wise_error_over_seven_null_claims():
    p = np.random.default_rng(0).uniform(size=(20_000, 7))
    raw = (p < 0.05).any(axis=1).mean()
    adjusted = (np.apply_along_axis(stats.holm, 1, p[:4000]) < 0.05).any(axis=1).mean()
    assert raw > 0.25 and adjusted <= 0.06


# --- quality gates as non-inferiority ---------------------------------------------------------

@pytest.mark.parametrize("paired", [True, False])
def test_four_percent_worse_rarely_passes_a_three_percent_gate_at_n5(paired):
    old = new = 0
    for s in range(200):
        rng = np.random.default_rng(s)
        c, b = _rounds(rng, 5, 1.04, seed_cv=0.10 if paired else 0.0, noise_cv=0.03)
        g = stats.non_inferiority(c, b, max_relative_loss=0.03, direction="lower_is_better", paired=paired,
                                  n_resamples=2000, seed=s)
        new += bool(g.holds)
        old += np.median(c) / np.median(b) - 1 <= 0.03  # the old rule: medians, no uncertainty
    assert new / 200 <= 0.05
    assert old / 200 >= 0.25


def test_non_inferiority_holds_for_an_equal_candidate_and_reports_bounds():
    rng = np.random.default_rng(3)
    c, b = _rounds(rng, 12, 1.0, noise_cv=0.005)
    g = stats.non_inferiority(c, b, max_relative_loss=0.03, direction="lower_is_better", paired=True)
    assert g.holds is True and g.lower_loss < g.estimate < g.upper_loss < 0.03
    acc = stats.non_inferiority(c * 0.8, b, max_relative_loss=0.03, direction="higher_is_better", paired=True)
    assert acc.holds is False and acc.shown_worse and acc.estimate == pytest.approx(0.2, abs=0.01)
    none = stats.non_inferiority([1.0], [1.0], max_relative_loss=0.03, direction="lower_is_better", paired=True)
    assert none.holds is None and "cannot be compared" in none.reason


# --- fixed-n design ---------------------------------------------------------------------------

def test_repetitions_for_power_hits_its_power_in_simulation():
    sd, true, thr = 0.03, np.log(0.97), 0.0
    plan = stats.repetitions_for_power(sd, true, thr)
    assert plan.repetitions is not None and 8 <= plan.repetitions <= 14
    rng = np.random.default_rng(0)
    n = plan.repetitions
    hits = sum(stats.clears(stats.paired_ratio_effect(np.exp(rng.normal(true, sd, n)), np.ones(n)),
                            1.0, "lower_is_better") for _ in range(300))
    assert 0.72 <= hits / 300 <= 0.95


def test_repetitions_for_power_says_when_no_n_settles_it():
    assert stats.repetitions_for_power(0.05, 0.1, 0.1).repetitions is None
    assert "sits on the threshold" in stats.repetitions_for_power(0.05, 0.1, 0.1).reason
    assert stats.repetitions_for_power(0.0, 0.1, 0.0).repetitions is None
    assert stats.repetitions_for_power(1.0, 1e-4, 0.0).repetitions is None  # beyond any practical suite
    assert stats.repetitions_for_power(0.001, 0.5, 0.0).repetitions == 6  # the exact test's floor at α = 5 %
    assert stats.repetitions_for_power(0.001, 0.5, 0.0, alpha=0.05 / 7).repetitions == 9  # 2⁻⁹ ≤ 0.025/7


def test_sequential_looks_one_batch():
    slots = [("baseline", "lm", "tiny", r) for r in range(5)] + [("eitp", "lm", "tiny", r) for r in range(5)]
    starts = [f"2024-05-01T10:{m:02d}:00Z" for m in range(10)]
    looks = stats.sequential_looks(slots, starts)
    assert (looks.batches, looks.sizes, looks.warning) == (1, [10], None)


def test_sequential_looks_top_up_by_repeated_rounds_and_by_idle_gap():
    slots = [("baseline", r) for r in range(5)] * 2
    looks = stats.sequential_looks(slots, list(range(10)))
    assert looks.batches == 2 and looks.sizes == [5, 5] and "top-up" in looks.warning
    # New repetition numbers, but started a day after the first batch had finished.
    slots = [("baseline", r) for r in range(8)]
    starts = [0, 60, 120, 180, 86_400, 86_460, 86_520, 86_580]
    looks = stats.sequential_looks(slots, starts, [s + 50 for s in starts])
    assert looks.sizes == [4, 4]
    # A long repetition is not a gap: the idle time counts from the end of the last run.
    looks = stats.sequential_looks([1, 2], [0, 7200], [7100, 7300])
    assert looks.batches == 1


def test_sequential_looks_takes_slots_as_integer_codes_as_it_takes_tuples():
    tuples = [("baseline", r % 4) for r in range(9)] + [("eitp", 0), ("baseline", 0)]
    starts = [0, 1, 2, 3, 4, 5, 6, 7, 9_000, 9_001, 9_002]
    codes = [sorted(set(tuples)).index(t) for t in tuples]
    want = stats.sequential_looks(tuples, starts)
    assert want.sizes == [4, 4, 2, 1]  # slots seen again, twice; an idle gap; a slot seen again
    assert stats.sequential_looks(codes, starts) == want


def test_fewest_rounds_to_verify_under_holm():
    assert [stats.min_paired_rounds(m) for m in (1, 2, 7)] == [6, 7, 9]
    for m in (1, 3, 7, 20):  # 2⁻ⁿ clears the first Holm step (α/2)/m; one round fewer does not
        n = stats.min_paired_rounds(m)
        assert 2.0**-n < 0.025 / m <= 2.0 ** -(n - 1)


def test_methods_paragraph_states_the_rules():
    text = stats.methods_paragraph(n_claims=7)
    for phrase in ("Hodges–Lehmann", "Wilcoxon", "strictly beyond", "Holm-adjusted across the 7 claims",
                   "below 0.025", "at least 9 paired rounds", "below 6 rounds", "10 000-resample BCa",
                   "non-inferiority", "several batches"):
        assert phrase in text


def test_sequential_looks_reads_iso_times_with_offsets():
    starts = ["2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01 10:30:00"]
    looks = stats.sequential_looks([("a", 0), ("a", 1), ("a", 2)], starts)  # 10:00, 10:00, 10:30 UTC
    assert looks.sizes == [3]
    assert stats.sequential_looks([], []).batches == 0


def test_sequential_looks_names_a_year_of_nightly_batches_in_one_short_line():
    slots = [("baseline", r) for r in range(3)] * 365  # the same three rounds, stored every night
    looks = stats.sequential_looks(slots, [86_400 * (i // 3) + i % 3 for i in range(3 * 365)])
    assert looks.batches == 365 and looks.sizes == [3] * 365
    assert "365 separate batches (3 + 3 + 3 + … + 3 + 3 + 3 = 1,095 runs)" in looks.warning
    assert len(looks.warning) < 400
    few = stats.sequential_looks([("a", r) for r in range(2)] * 3, list(range(6)))
    assert "3 separate batches (2 + 2 + 2 runs)" in few.warning


def test_seconds_of_iso_texts_in_one_call_equal_the_per_item_parse():
    """The vectorised path (all texts) gives exactly what datetime.fromisoformat gives item by item (the
    path a list with a number or None takes): naive times as UTC, offsets and 'Z' honoured."""
    from datetime import datetime, timedelta, timezone

    from eitp_bench.analysis.stats.planning import seconds

    rng = np.random.default_rng(3)
    start = datetime(2024, 2, 29, tzinfo=timezone.utc)
    texts = [(start + timedelta(seconds=float(s))).isoformat() for s in rng.uniform(0, 3e8, 500)]
    texts += ["2026-01-01T00:00:00Z", "2026-03-01T10:11:12", "2026-03-01T10:11:12.5+02:00",
              "2025-12-31T23:59:59.999999-05:30"]
    whole = seconds(texts)
    one_by_one = seconds([*texts, None])[:-1]  # a None sends the list down the per-item loop
    assert np.array_equal(whole, one_by_one)
    assert whole[-3] == datetime(2026, 3, 1, 10, 11, 12, tzinfo=timezone.utc).timestamp()
    with pytest.raises(ValueError):
        seconds(["2026-01-01T00:00:00", "not a time"])  # the loop says what is wrong

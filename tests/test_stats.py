"""Statistics against known truths: planted effects, hand-computed values, analytic answers."""

import numpy as np
import pytest

from eitp_bench import stats


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


def test_zero_baseline_median_is_an_error():
    with pytest.raises(ValueError, match="baseline median is 0"):
        stats.ratio_effect([1, 2, 3], [0, 0, 0])


def test_reps_needed_scales_with_inverse_square_of_distance():
    # half-width 0.2, distance 0.1 from the threshold, n=8 → 8·(0.2/0.1)² = 32
    assert stats.reps_needed(8, 0.9, 1.3, 1.1, 1.0) == 32
    assert stats.reps_needed(8, 0.9, 1.3, 1.0, 1.0) is None


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

"""stats.distributions gives scipy.stats' figures bit for bit, and the mid-ranks equal scipy's rankdata.

These helpers exist only so that a report need not import scipy.stats (about half a second); every figure
must stay what scipy.stats says, edges included, so each is compared with scipy.stats itself here.
"""

import math

import numpy as np
import pytest
from scipy import stats as sps

from eitp_bench.analysis import stats
from eitp_bench.analysis.stats import distributions as dist
from eitp_bench.analysis.stats.paired import doubled_mid_ranks

NAN = math.nan
DFS = [1, 1.5, 2, 3, 4.5, 7, 10, 29, 30, 31, 100, 1e3, 1e5, 1e8, 1e12, math.inf]
PROBS = [1e-300, 1e-100, 1e-16, 1e-12, 1e-6, 1e-3, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9,
         0.95, 0.975, 0.99, 0.999, 1 - 1e-6, 1 - 1e-12, 1 - 1e-15, math.nextafter(1.0, 0.0)]
EDGE_PROBS = [0.0, 1.0, -0.1, 1.1, NAN, -math.inf, math.inf]
XS = [-math.inf, -1e300, -1e10, -40.0, -6.0, -3.0, -1.96, -1.0, -0.5, -1e-300, -0.0, 0.0, 1e-300, 0.5, 1.0, 1.96,
      3.0, 6.0, 40.0, 1e10, 1e300, math.inf, NAN]
BAD_DFS = [0, -1, -math.inf, NAN]


def same(ours: float, scipys) -> bool:
    """Bit for bit: the same float64 (NaN and NaN count as the same; so do 0.0 and -0.0, equal values)."""
    theirs = float(scipys)
    assert type(ours) is float
    return (math.isnan(ours) and math.isnan(theirs)) or ours == theirs


def mismatches(pairs):
    return [(args, ours, float(theirs)) for args, ours, theirs in pairs if not same(ours, theirs)]


def test_t_ppf_is_scipy_stats_t_ppf_on_a_grid_with_edges():
    pairs = [((q, df), dist.t_ppf(q, df), sps.t.ppf(q, df)) for df in DFS + BAD_DFS for q in PROBS + EDGE_PROBS]
    assert mismatches(pairs) == []
    assert dist.t_ppf(0.0, 5) == -math.inf  # scipy.special.stdtrit(5, 0) alone would say +inf


def test_t_cdf_and_sf_are_scipy_stats_on_a_grid_of_negative_and_positive_t():
    pairs = [((x, df), dist.t_cdf(x, df), sps.t.cdf(x, df)) for df in DFS + BAD_DFS for x in XS]
    pairs += [((x, df), dist.t_sf(x, df), sps.t.sf(x, df)) for df in DFS + BAD_DFS for x in XS]
    assert mismatches(pairs) == []
    assert 0 < dist.t_sf(40.0, 3) < 1e-4 and dist.t_sf(-40.0, 3) > 1 - 1e-4  # the tails, not 1 − cdf


def test_t_helpers_on_random_arguments():
    rng = np.random.default_rng(7)
    dfs = np.concatenate([rng.integers(1, 60, 300), rng.uniform(0.2, 500, 300)])
    qs, xs = rng.uniform(0, 1, 600), rng.standard_t(3, 600) * 4
    pairs = [((q, df), dist.t_ppf(float(q), float(df)), sps.t.ppf(q, df)) for q, df in zip(qs, dfs)]
    pairs += [((x, df), dist.t_cdf(float(x), float(df)), sps.t.cdf(x, df)) for x, df in zip(xs, dfs)]
    pairs += [((x, df), dist.t_sf(float(x), float(df)), sps.t.sf(x, df)) for x, df in zip(xs, dfs)]
    assert mismatches(pairs) == []


def test_beta_ppf_is_scipy_stats_beta_ppf_for_clopper_pearson_bounds_and_edges():
    rng = np.random.default_rng(11)
    cases = []
    for n in [1, 2, 5, 20, 100, 1_000, 10_000, 1_000_000]:  # the bound the learned gate draws: Beta(k, n − k + 1)
        for k in sorted({1, 2, n // 3 or 1, n // 2 or 1, n - 1 or 1, n}):
            cases += [(q, k, n - k + 1) for q in (0.025, 0.05, 0.5, 0.975)]
    cases += [(float(q), float(a), float(b)) for q, a, b in
              zip(rng.uniform(0, 1, 300), rng.uniform(0.05, 50, 300), rng.uniform(0.05, 50, 300))]
    cases += [(q, 2.0, 3.0) for q in EDGE_PROBS + [1e-300, math.nextafter(1.0, 0.0)]]
    cases += [(0.3, a, b) for a, b in [(0, 1), (1, 0), (-1, 2), (NAN, 2), (2, NAN)]]
    pairs = [(c, dist.beta_ppf(*c), sps.beta.ppf(*c)) for c in cases]
    assert mismatches(pairs) == []


def test_binom_ppf_and_sf_are_scipy_stats_binom_on_a_grid_with_edges():
    cases = [(q, n, p) for n in [0, 1, 2, 5, 9, 10, 50, 51, 200, 10_000] for p in [0.0, 0.1, 0.5, 0.9, 1.0]
             for q in PROBS[::3] + EDGE_PROBS]
    cases += [(0.3, n, p) for n, p in [(-1, 0.5), (2.5, 0.5), (5, -0.1), (5, 1.1), (NAN, 0.5), (5, NAN)]]
    pairs = [(c, dist.binom_ppf(*c), sps.binom.ppf(*c)) for c in cases]
    ks = [-math.inf, -2, -1, -0.5, 0, 0.5, 1, 2, 4.9, 5, 8, 9, 10, 11, 50, math.inf, NAN]
    sf_cases = [(k, n, p) for n in [0, 1, 5, 10, 51, 200] for p in [0.0, 0.1, 0.5, 0.9, 1.0] for k in ks]
    sf_cases += [(1, n, p) for n, p in [(-1, 0.5), (2.5, 0.5), (5, -0.1), (5, 1.1), (NAN, 0.5), (5, NAN)]]
    pairs += [(c, dist.binom_sf(*c), sps.binom.sf(*c)) for c in sf_cases]
    assert mismatches(pairs) == []


def test_binom_sf_is_the_one_sided_binomtest_p_value_the_quality_gate_uses():
    pairs = [((above, n), stats.binom_sf(above - 1, n, 0.5), sps.binomtest(above, n, 0.5, alternative="greater").pvalue)
             for n in range(1, 60) for above in range(0, n + 1)]
    assert mismatches(pairs) == []


def test_median_ci_and_count_effects_are_unchanged_against_scipy_stats():
    # median_ci's order statistic comes from binom.ppf; the Katz interval and its p-values from t quantiles.
    rng = np.random.default_rng(3)
    for n in range(1, 80):
        v = rng.normal(size=n)
        k = int(sps.binom.ppf(0.025, n, 0.5))
        _, lo, hi = stats.median_ci(v)
        s = np.sort(v)
        if k >= 1:
            assert (lo, hi) == (float(s[k - 1]), float(s[n - k]))
        else:  # too few values for a 95 % order-statistic interval
            assert math.isnan(lo) and math.isnan(hi)
    kc, kb = np.array([20.0, 70, 25, 65]), np.array([30.0, 35, 40, 30])
    e = stats.proportion_ratio_effect(kc, [100] * 4, kb, [100] * 4, paired=True, threshold=1.05,
                                      direction="higher_is_better")
    assert "between-run variance" in e.note and "t on 3 df" in e.note  # runs differ more than binomial noise
    pc, pb = kc.sum() / 400, kb.sum() / 400
    z = (kc - pc * 100) / kc.sum() - (kb - pb * 100) / kb.sum()
    se, log_r = math.sqrt(4 / 3 * float(np.sum(z**2))), math.log(pc / pb)
    q = float(sps.t.ppf(0.975, 3))
    assert (e.ci_low, e.ci_high) == (math.exp(log_r - q * se), math.exp(log_r + q * se))
    assert e.p_value == float(2 * sps.t.sf(abs(log_r) / se, 3))
    assert e.p_threshold == float(sps.t.sf((log_r - math.log(1.05)) / se, 3))
    lower = stats.proportion_ratio_effect(kc, [100] * 4, kb, [100] * 4, paired=True, threshold=1.05,
                                          direction="lower_is_better")
    assert lower.p_threshold == float(sps.t.cdf((log_r - math.log(1.05)) / se, 3))


def test_doubled_mid_ranks_are_scipys_average_ranks_doubled_with_ties_and_infinities():
    rng = np.random.default_rng(5)
    samples = [np.array([]), np.array([3.0]), np.array([1.0, 1.0, 1.0]), np.array([2.0, -1.0, 2.0, 5.0, -1.0])]
    for n in (2, 5, 13, 50, 200, 1000):
        samples.append(rng.normal(size=n))  # untied
        samples.append(rng.integers(-4, 5, n).astype(float))  # many ties
        ties_inf = rng.integers(0, 6, n).astype(float)
        ties_inf[rng.random(n) < 0.2] = math.inf
        ties_inf[rng.random(n) < 0.1] = -math.inf
        samples.append(ties_inf)
    for x in samples:
        expected = np.rint(2 * sps.rankdata(x)).astype(np.int64)
        got = doubled_mid_ranks(x)
        assert got.dtype == np.int64 and np.array_equal(got, expected), x
        assert np.array_equal(got / 2, sps.rankdata(x))  # the mid-ranks themselves, exactly


def test_signed_rank_p_values_are_unchanged_against_scipy():
    # The exact path (≤ 50 untied rounds) counts ranks without scipy.stats; it still equals scipy's exact test.
    rng = np.random.default_rng(9)
    for n in (3, 8, 20, 50):
        d = rng.normal(0.2, 1, n)
        for alt in ("two-sided", "greater", "less"):
            ours = stats.paired._signed_rank_p(d, alt)
            assert ours == pytest.approx(sps.wilcoxon(d, alternative=alt, method="exact").pvalue, rel=1e-12, abs=1e-15)
    # With ties: the permutation p from the doubled mid-ranks, against a brute-force enumeration of the signs.
    x = np.array([1.0, -1.0, 2.0, 2.0, -3.0, 3.0, 3.0, math.inf])
    mid = sps.rankdata(np.abs(x))
    observed = mid[x > 0].sum()
    signs = (np.arange(2 ** len(x))[:, None] >> np.arange(len(x))) & 1
    sums = (signs * mid).sum(axis=1)
    assert stats.signed_rank_p_ties(x, "greater") == pytest.approx(float(np.mean(sums >= observed)), rel=1e-12)
    assert stats.signed_rank_p_ties(x, "less") == pytest.approx(float(np.mean(sums <= observed)), rel=1e-12)

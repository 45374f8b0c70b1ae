"""Statistics that state what they assume. Pure functions: numbers in, numbers out.

One repetition (one fresh process) is one sample; the arms of a round share its seed, so a
claim is judged on *paired* rounds whenever it can be:

- `paired_ratio_effect`: per-round log-ratios d_i = ln(candidate_i / baseline_i). The effect is
  exp(Hodges–Lehmann estimate of d) (the median of the Walsh averages (d_i + d_j)/2, i ≤ j: the
  median-type estimate that belongs to the signed-rank test), with the exact distribution-free
  Wilcoxon signed-rank interval (normal approximation above 50 rounds) and the signed-rank p-value.
  Interval and p-value come from the same test, so "interval clears t" ⇔ "one-sided p < α/2"
  (exact when no ties). Assumes rounds are independent and the log-ratios symmetric about their
  centre; makes no assumption on the seed-to-seed spread, which pairing cancels.
- `ratio_effect` (unpaired, when rounds cannot be paired): ratio of medians with a bootstrap BCa
  interval (percentile fallback) and a two-sided Mann–Whitney U p-value. The bootstrap medians are
  drawn from their exact resampling distribution through uniform order statistics (O(1) per
  resample instead of O(n)), so 10 000 resamples cost milliseconds at any n.
- `proportion_ratio_effect`: accuracies that are counts (k correct of n queries per run) are judged
  as counts: ratio of pooled proportions with a Katz log interval whose variance is the larger of
  the binomial variance (normal quantile) and the between-run variance (cluster-robust, paired by
  round when possible; t quantile on runs − 1 degrees of freedom).
- `clears` / `falls_short`: the one comparison with a threshold, strict, and never on a
  degenerate (zero-width or undefined) interval.
- `holm` (family-wise, across the claims of one paper) and `benjamini_hochberg` (false discovery
  rate, for many regression series).
- `non_inferiority`: a quality gate holds when the upper confidence bound of the relative quality
  loss is below the allowed loss.
- `repetitions_for_power`: advice for the next suite (fixed n, never a stopping rule);
  `sequential_looks` spots stores that hold several batches (top-ups) of one configuration.

`methods_paragraph()` states all of this in one paragraph for the report.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Literal, Optional, Sequence

import numpy as np
from scipy import stats as sps
from scipy.special import ndtr, ndtri

MIN_REPETITIONS = 5  # fewer per arm: no verdict
DEFAULT_RESAMPLES = 10_000
EXACT_MAX_N = 50  # signed-rank interval and p exact up to this many rounds (scipy's own cut-off)
WALSH_FULL_MAX_N = 2_000  # above this, Walsh order statistics by bisection (no n²/2 array)
LOG_TIE = 1e-12  # log-ratios closer than this are equal (ln(2.2) − ln(1.1) ≠ ln 2 in floating point)

Direction = Literal["higher_is_better", "lower_is_better"]


@dataclass(frozen=True)
class Effect:
    """An effect (candidate ÷ baseline, or a difference) with its interval and test.

    `ratio` is the point estimate; `ci_low`/`ci_high` the interval at `confidence` (the coverage
    actually achieved: exact intervals at few rounds can fall short of the nominal level, and the
    note says so). `p_value` is two-sided against "no difference" (ratio 1, or difference 0);
    `p_threshold`, when a threshold was given, is one-sided against "does not clear the threshold"
    (the p-value to adjust across claims). A `degenerate` effect (zero-width or undefined interval)
    never clears or falls short of anything; `reason` says why, `constant` when every round gave
    the very same value (a deterministic metric, or ties).
    """

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    n_candidate: int
    n_baseline: int
    ci_method: str  # "Wilcoxon exact", "Wilcoxon normal", "BCa", "percentile", "Katz cluster-robust"
    note: str = ""
    design: Literal["paired", "unpaired"] = "unpaired"
    estimator: str = "ratio of medians"
    confidence: float = 0.95
    degenerate: bool = False
    reason: str = ""
    constant: bool = False
    p_threshold: Optional[float] = None
    threshold: Optional[float] = None
    direction: Optional[str] = None
    sd_log: float = float("nan")  # SD of one round's log-ratio (paired) or of ln c − ln b for one run each

    @property
    def estimate(self) -> float:
        return self.ratio


def _clean(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def _check_direction(direction: Optional[str]) -> None:
    if direction not in ("higher_is_better", "lower_is_better"):
        raise ValueError(f"direction must be higher_is_better or lower_is_better, got {direction!r}")


# ---------------------------------------------------------------------------------------------
# The one rule for comparing an effect with a threshold
# ---------------------------------------------------------------------------------------------

def clears(effect: Effect, threshold: float, direction: str) -> bool:
    """True when the whole interval lies strictly beyond the threshold in the better direction.

    Strict (`ci_low > t` for higher-is-better, `ci_high < t` for lower-is-better); never for a
    degenerate effect, a non-finite deciding bound or a NaN bound.
    """
    _check_direction(direction)
    bound = effect.ci_low if direction == "higher_is_better" else effect.ci_high
    if not _judgeable(effect, bound):
        return False
    return bound > threshold if direction == "higher_is_better" else bound < threshold


def falls_short(effect: Effect, threshold: float, direction: str) -> bool:
    """True when the whole interval lies strictly on the worse side of the threshold (same strictness)."""
    _check_direction(direction)
    bound = effect.ci_high if direction == "higher_is_better" else effect.ci_low
    if not _judgeable(effect, bound):
        return False
    return bound < threshold if direction == "higher_is_better" else bound > threshold


def _judgeable(effect: Effect, bound: float) -> bool:
    """The bound that decides must be finite; the other may be infinite (a censored to-target interval
    unbounded on the far side) but never NaN; a degenerate effect decides nothing."""
    other_nan = math.isnan(effect.ci_low) or math.isnan(effect.ci_high)
    return not effect.degenerate and math.isfinite(bound) and not other_nan


# ---------------------------------------------------------------------------------------------
# Paired: Wilcoxon signed-rank / Hodges–Lehmann on per-round log-ratios
# ---------------------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ ≤ s), s = 0 … n(n+1)/2, for the signed-rank statistic of n untied non-zero values."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    top = 0
    for i in range(1, n + 1):  # add rank i: each subset sum s also appears as s + i
        counts[i: top + i + 1] += counts[: top + 1].copy()
        top += i
    cdf = np.cumsum(counts) / 2.0**n
    cdf.setflags(write=False)
    return cdf


def _signed_rank_k(n: int, confidence: float) -> tuple[int, float, str]:
    """(k, achieved coverage, method): the interval is [W(k), W(N−k+1)], 1-based Walsh order statistics."""
    half = (1 - confidence) / 2
    if n <= EXACT_MAX_N:
        cdf = _signed_rank_cdf(n)
        ok = np.nonzero(cdf <= half + 1e-12)[0]
        k = int(ok[-1]) + 1 if ok.size else 1  # too few rounds: [min, max], with its lower coverage
        return k, float(1 - 2 * cdf[k - 1]), "Wilcoxon exact"
    mu = n * (n + 1) / 4
    sigma = math.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    k = max(1, int(math.floor(mu + 0.5 - float(ndtri(1 - half)) * sigma)))
    return k, float(1 - 2 * ndtr((k - 0.5 - mu) / sigma)), "Wilcoxon normal"


def _walsh_order_stats(d_sorted: np.ndarray, ks: Sequence[int]) -> np.ndarray:
    """The k-th smallest (0-based) Walsh averages (d_i + d_j)/2, i ≤ j, of a sorted sample."""
    n = len(d_sorted)
    ks = np.asarray(ks, dtype=np.int64)
    if n <= WALSH_FULL_MAX_N:
        upper = np.arange(n)[:, None] <= np.arange(n)[None, :]
        w = np.add.outer(d_sorted, d_sorted)[upper]  # pairwise sums, i ≤ j; halved below
        return np.partition(w, np.unique(ks))[ks] / 2
    return np.array([_walsh_select(d_sorted, int(k)) for k in ks])


def _walsh_count_le(d: np.ndarray, x: float) -> int:
    """#{i ≤ j : (d_i + d_j)/2 ≤ x} for sorted d, in O(n log n)."""
    j = np.searchsorted(d, 2 * x - d, side="right")  # for each i: j < j_i have d_i + d_j ≤ 2x
    return int(np.maximum(j - np.arange(len(d)), 0).sum())


def _walsh_select(d: np.ndarray, k: int) -> float:
    """k-th smallest Walsh average (0-based) by bisection on the value, then the exact value."""
    lo, hi = float(d[0]) - 1.0, float(d[-1])  # count(lo) = 0 ≤ k < count(hi) = N
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid <= lo or mid >= hi:
            break
        if _walsh_count_le(d, mid) <= k:
            lo = mid
        else:
            hi = mid
    # The answer is the smallest Walsh average above lo (all Walsh averages in (lo, hi] are tied).
    idx = np.arange(len(d))
    j = np.maximum(idx, np.searchsorted(d, 2 * lo - d, side="right"))
    ok = j < len(d)
    return float(np.min((d[idx[ok]] + d[j[ok]]) / 2))


def _signed_rank_p(d: np.ndarray, alternative: str) -> float:
    """Wilcoxon signed-rank p of `d` against 0: exact (the same distribution as the interval) for at
    most 50 untied non-zero values, scipy otherwise (permutation ≤ 13 values, normal above)."""
    if np.all(d == 0):
        return 1.0
    a = np.abs(d)
    n = len(d)
    if n <= EXACT_MAX_N and np.all(a > 0) and len(np.unique(a)) == n:
        cdf = _signed_rank_cdf(n)
        t_plus = int(np.sum(sps.rankdata(a)[d > 0]))
        greater = 1.0 - (cdf[t_plus - 1] if t_plus > 0 else 0.0)  # P(T ≥ t+)
        less = float(cdf[t_plus])  # P(T ≤ t+)
        if alternative == "greater":
            return float(greater)
        if alternative == "less":
            return less
        return float(min(1.0, 2 * min(greater, less)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(sps.wilcoxon(d, alternative=alternative).pvalue)
    return p if math.isfinite(p) else 1.0


def paired_ratio_effect(
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    confidence: float = 0.95,
    threshold: Optional[float] = None,
    direction: Optional[str] = None,
    n_resamples: Optional[int] = None,
    seed: int = 0,
) -> Effect:
    """Paired effect candidate ÷ baseline over rounds (pair i = round i, same seed).

    Per-round log-ratios d_i = ln(c_i / b_i); effect = exp(Hodges–Lehmann estimate of d), interval
    = exp of the exact Wilcoxon signed-rank (Walsh-average) interval, p = two-sided signed-rank test
    of d against 0. With `threshold` and `direction`, `p_threshold` is the one-sided signed-rank p
    of "does not clear": d − ln t tested towards the better side. Rounds with a missing value in
    either arm are dropped (and counted in the note). Values must be positive.
    `n_resamples` and `seed` are accepted for a uniform call signature; the interval is exact.
    """
    del n_resamples, seed
    c = np.asarray(candidate, dtype=float).ravel()
    b = np.asarray(baseline, dtype=float).ravel()
    if c.shape != b.shape:
        raise ValueError(f"paired samples must have equal length, got {len(c)} and {len(b)}")
    keep = np.isfinite(c) & np.isfinite(b)
    dropped = int((~keep).sum())
    c, b = c[keep], b[keep]
    if len(c) < 2:
        raise ValueError(f"need at least 2 complete rounds, got {len(c)}")
    if np.any(c <= 0) or np.any(b <= 0):
        raise ValueError("a ratio effect needs positive values in both arms")
    d = np.sort(np.log(c) - np.log(b))
    n = len(d)
    k, coverage, method = _signed_rank_k(n, confidence)
    big_n = n * (n + 1) // 2
    low, high, mid_lo, mid_hi = _walsh_order_stats(d, [k - 1, big_n - k, (big_n - 1) // 2, big_n // 2])
    est = (mid_lo + mid_hi) / 2  # Hodges–Lehmann: the median of the Walsh averages
    notes = []
    if dropped:
        notes.append(f"{dropped} round(s) without both arms dropped")
    if coverage < confidence - 1e-9:
        notes.append(f"{n} rounds cannot give a {100 * confidence:g} % signed-rank interval; "
                     f"[min, max] covers {100 * coverage:.2f} %")
    ties = len(np.unique(d)) < n or np.any(d == 0)
    if ties and method == "Wilcoxon exact" and np.ptp(d) > 0:
        notes.append("tied log-ratios: the interval's coverage is approximate")
    p = _signed_rank_p(d, "two-sided")
    p_thr = None
    if threshold is not None:
        _check_direction(direction)
        if threshold <= 0:
            raise ValueError("a ratio threshold must be positive")
        alt = "greater" if direction == "higher_is_better" else "less"
        p_thr = _signed_rank_p(d - math.log(threshold), alt)
    constant = bool(np.ptp(d) <= LOG_TIE)
    degenerate, reason = False, ""
    if constant:
        degenerate = True
        reason = (f"every round gives the same ratio {math.exp(est):.6g}: no spread to build an interval from "
                  "(a deterministic metric, or tied values)")
    elif high - low <= LOG_TIE:
        degenerate = True
        reason = "zero-width interval from tied log-ratios"
    return Effect(
        math.exp(est), math.exp(low), math.exp(high), p, n, n, method, "; ".join(notes),
        design="paired", estimator="Hodges–Lehmann of per-round log-ratios", confidence=coverage,
        degenerate=degenerate, reason=reason, constant=constant, p_threshold=p_thr,
        threshold=threshold, direction=direction, sd_log=float(np.std(d, ddof=1)),
    )


# ---------------------------------------------------------------------------------------------
# Paired with censoring: to-target figures of runs that missed the target within their budget
# ---------------------------------------------------------------------------------------------

TIES_EXACT_MAX_N = 200  # exact mid-rank signed-rank distribution up to this many non-zero values


def signed_rank_p_ties(d: Sequence[float], alternative: str) -> float:
    """Signed-rank p of `d` against 0 that allows ties and ±∞: the exact permutation distribution of
    the sum of positive mid-ranks (each sign ± with probability ½ given |d|), zeros dropped.

    Mid-ranks are multiples of ½, so twice the statistic is an integer and the distribution is one
    small convolution. ±∞ are the largest magnitudes (tied with each other): a run that never reached
    its target ranks beyond every finite one, with its sign known. Normal approximation with the tie
    correction above TIES_EXACT_MAX_N values.
    """
    x = np.asarray(d, dtype=float).ravel()
    if np.any(np.isnan(x)):
        raise ValueError("signed-rank p of NaN values")
    x = x[x != 0]
    n = len(x)
    if n == 0:
        return 1.0
    ranks2 = np.rint(2 * sps.rankdata(np.abs(x))).astype(np.int64)  # doubled mid-ranks: integers
    s_obs = int(ranks2[x > 0].sum())
    total = int(ranks2.sum())
    if n <= TIES_EXACT_MAX_N:
        counts = np.zeros(total + 1)
        counts[0] = 1.0
        for r in ranks2:  # each value adds its rank with probability ½
            counts[r:] = counts[r:] + counts[: total + 1 - r].copy()
        pmf = counts / counts.sum()
        greater = float(pmf[s_obs:].sum())
        less = float(pmf[: s_obs + 1].sum())
    else:
        mu, var = total / 2, float(np.sum(ranks2.astype(float) ** 2)) / 4
        z_hi, z_lo = (s_obs - 1 - mu) / math.sqrt(var), (s_obs + 1 - mu) / math.sqrt(var)  # continuity ½ (×2)
        greater, less = float(1 - ndtr(z_hi)), float(ndtr(z_lo))
    if alternative == "greater":
        return min(1.0, greater)
    if alternative == "less":
        return min(1.0, less)
    return float(min(1.0, 2 * min(greater, less)))


def censored_log_ratio_bounds(candidate, baseline, candidate_budget, baseline_budget):
    """Per round, the interval [lo, hi] that must hold the log-ratio ln(c/b) of to-target figures.

    A value of +∞ marks a run that did not reach the target within its budget (its figure is beyond
    the budget B: the time or energy the run had). Converged pair: lo = hi = ln(c/b). Candidate
    censored: ln(c/b) > ln(B_c/b), hi = +∞. Baseline censored: ln(c/b) < ln(c/B_b), lo = −∞. Both
    censored: (−∞, +∞). An unknown budget (NaN) leaves that side unbounded.
    """
    c, b = (np.asarray(x, dtype=float).ravel() for x in (candidate, baseline))
    bc, bb = (np.asarray(x, dtype=float).ravel() for x in (candidate_budget, baseline_budget))
    if not (c.shape == b.shape == bc.shape == bb.shape):
        raise ValueError("paired censored samples and budgets must have one entry per round")
    cens_c, cens_b = np.isposinf(c), np.isposinf(b)
    if np.any(np.isnan(c)) or np.any(np.isnan(b)):
        raise ValueError("a to-target figure is NaN: a run either reached its target (a number) or not (+∞)")
    if np.any(c[~cens_c] <= 0) or np.any(b[~cens_b] <= 0):
        raise ValueError("a ratio effect needs positive values in both arms")
    with np.errstate(all="ignore"):
        both = ~cens_c & ~cens_b
        lo = np.full(c.shape, -np.inf)
        hi = np.full(c.shape, np.inf)
        lo[both] = hi[both] = np.log(c[both]) - np.log(b[both])
        known_bc = cens_c & ~cens_b & (bc > 0) & np.isfinite(bc)
        lo[known_bc] = np.log(bc[known_bc]) - np.log(b[known_bc])
        known_bb = cens_b & ~cens_c & (bb > 0) & np.isfinite(bb)
        hi[known_bb] = np.log(c[known_bb]) - np.log(bb[known_bb])
    return lo, hi


def censored_paired_ratio_effect(
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    candidate_budget: Sequence[float],
    baseline_budget: Sequence[float],
    confidence: float = 0.95,
    threshold: Optional[float] = None,
    direction: Optional[str] = None,
) -> Effect:
    """Paired to-target effect candidate ÷ baseline when some runs never reached the target (+∞).

    Each round's log-ratio is only known to lie in [lo, hi] (`censored_log_ratio_bounds`). The
    signed-rank statistic and the Walsh-average order statistics are monotone in every value, so the
    worst case for each side is computed from the bound that is worst for it: the interval is
    [W_k(lo), W_{N−k+1}(hi)] (it contains the interval the true figures would give, so it covers at
    least as often), and the one-sided p against the claim uses hi for "lower is better" and lo for
    "higher is better" (at least the p the true figures would give). ±∞ rank beyond every finite
    value (`signed_rank_p_ties`). No run is dropped and no share-converged threshold is applied: an
    arm that often fails simply gives a wide or one-sided interval, and an interval unbounded on
    the side that matters never decides. The estimate counts each censored run at its budget (the
    least it could have needed): a bound, labelled as such.
    """
    c = np.asarray(candidate, dtype=float).ravel()
    b = np.asarray(baseline, dtype=float).ravel()
    lo, hi = censored_log_ratio_bounds(c, b, candidate_budget, baseline_budget)
    n = len(lo)
    if n < 2:
        raise ValueError(f"need at least 2 complete rounds, got {n}")
    k, coverage, method = _signed_rank_k(n, confidence)
    big_n = n * (n + 1) // 2
    low = float(_walsh_order_stats(np.sort(lo), [k - 1])[0])
    high = float(_walsh_order_stats(np.sort(hi), [big_n - k])[0])
    cens_c, cens_b = int(np.isposinf(c).sum()), int(np.isposinf(b).sum())
    both = int((np.isposinf(c) & np.isposinf(b)).sum())
    at_budget = np.where(np.isposinf(c), lo, np.where(np.isposinf(b), hi, lo))
    at_budget = np.sort(at_budget[np.isfinite(at_budget)])
    est = math.nan
    if len(at_budget):
        m = len(at_budget) * (len(at_budget) + 1) // 2
        mid = _walsh_order_stats(at_budget, [(m - 1) // 2, m // 2])
        est = float(np.mean(mid))
    p_less, p_greater = signed_rank_p_ties(hi, "less"), signed_rank_p_ties(lo, "greater")
    p_thr = None
    if threshold is not None:
        _check_direction(direction)
        if threshold <= 0:
            raise ValueError("a ratio threshold must be positive")
        shift = math.log(threshold)
        p_thr = (signed_rank_p_ties(hi - shift, "less") if direction == "lower_is_better"
                 else signed_rank_p_ties(lo - shift, "greater"))
    note = (f"censored at the budget: {cens_c} candidate and {cens_b} baseline run(s) of {n} rounds did not reach "
            f"the target ({both} round(s) both); the interval takes each censored round's worst case")
    if coverage < confidence - 1e-9:
        note += f"; {n} rounds cannot give a {100 * confidence:g} % signed-rank interval"
    finite = np.isfinite(lo) & np.isfinite(hi) & (lo == hi)
    sd = float(np.std(lo[finite], ddof=1)) if finite.sum() > 1 else math.nan
    return Effect(
        math.exp(est) if math.isfinite(est) else math.nan, math.exp(low), math.exp(high),
        float(min(1.0, 2 * min(p_less, p_greater))), n, n, f"{method}, censored (worst case per side)", note,
        design="paired", estimator="Hodges–Lehmann of per-round log-ratios, censored runs at their budget",
        confidence=coverage, p_threshold=p_thr, threshold=threshold, direction=direction, sd_log=sd,
    )


# ---------------------------------------------------------------------------------------------
# Unpaired: ratio of medians, bootstrap BCa with exact-in-distribution resampled medians
# ---------------------------------------------------------------------------------------------

def _bootstrap_medians(x_sorted: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of `n_resamples` bootstrap resamples of x, drawn without building the resamples.

    A resample is n i.i.d. draws x_(⌊nU⌋) with U uniform; the map is monotone, so its j-th order
    statistic is x_(⌊n U_(j)⌋) with U_(j) ~ Beta(j, n − j + 1), and the next one is
    U_(j+1) = U_(j) + (1 − U_(j))·Beta(1, n − j). Same distribution as the naive bootstrap, O(1) each.
    """
    n = len(x_sorted)
    if n % 2:
        j = (n + 1) // 2
        u = rng.beta(j, n - j + 1, n_resamples)
        return x_sorted[np.minimum((u * n).astype(np.intp), n - 1)]
    j = n // 2
    u1 = rng.beta(j, n - j + 1, n_resamples)
    u2 = u1 + (1 - u1) * rng.beta(1, n - j, n_resamples)
    lo = x_sorted[np.minimum((u1 * n).astype(np.intp), n - 1)]
    hi = x_sorted[np.minimum((u2 * n).astype(np.intp), n - 1)]
    return (lo + hi) / 2


def _jackknife_medians(x_sorted: np.ndarray) -> np.ndarray:
    """Median of x with each value left out in turn (closed form on the sorted sample, O(n))."""
    n = len(x_sorted)
    m = n - 1
    removed = np.arange(n)

    def at(pos: int) -> np.ndarray:  # value at position pos of the sorted sample without `removed`
        return x_sorted[pos + (pos >= removed)]

    if m % 2:
        return at((m - 1) // 2)
    return (at(m // 2 - 1) + at(m // 2)) / 2


def _bca_or_percentile(theta_hat: float, theta_b: np.ndarray, jackknives: list[np.ndarray],
                       confidence: float) -> tuple[float, float, str, str]:
    """BCa interval (Efron & Tibshirani 14.3, 15.4; the multi-sample acceleration as in scipy);
    percentile from the same resamples when BCa is undefined, and say so."""
    alpha = (1 - confidence) / 2
    with np.errstate(all="ignore"):
        b = len(theta_b)
        pct = (np.count_nonzero(theta_b < theta_hat) + np.count_nonzero(theta_b <= theta_hat)) / (2 * b)
        z0 = ndtri(pct)
        nums, dens = 0.0, 0.0
        for jk in jackknives:
            u = (len(jk) - 1) * (jk.mean() - jk)
            nums += np.sum(u**3) / len(jk) ** 3
            dens += np.sum(u**2) / len(jk) ** 2
        a = nums / (6 * dens**1.5)
        z = ndtri(alpha)
        a1 = ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
        a2 = ndtr(z0 + (z0 - z) / (1 - a * (z0 - z)))
    if all(math.isfinite(v) for v in (a1, a2)):
        low, high = np.percentile(theta_b, [100 * a1, 100 * a2])
        if math.isfinite(low) and math.isfinite(high):
            return float(low), float(high), "BCa", ""
    low, high = np.percentile(theta_b, [100 * alpha, 100 * (1 - alpha)])
    note = "BCa undefined for these samples (too little variation); percentile interval used"
    return float(low), float(high), "percentile", note


def _mann_whitney(a: np.ndarray, b: np.ndarray, alternative: str = "two-sided") -> float:
    if np.all(a == a[0]) and np.all(b == b[0]) and a[0] == b[0]:
        return 1.0  # identical constant samples: no evidence of a difference
    return float(sps.mannwhitneyu(a, b, alternative=alternative).pvalue)


def ratio_effect(
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    threshold: Optional[float] = None,
    direction: Optional[str] = None,
) -> Effect:
    """Unpaired: ratio of medians candidate ÷ baseline, bootstrap CI (BCa, percentile fallback),
    two-sided Mann–Whitney p. Use only when rounds cannot be paired; the Effect says `unpaired`.

    With `threshold`/`direction`, `p_threshold` is the one-sided Mann–Whitney p of c/t against b
    (a shift test on the log scale: coherent with the interval only approximately).
    """
    c, b = np.sort(_clean(candidate)), np.sort(_clean(baseline))
    if len(c) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples per arm, got {len(c)} and {len(b)}")
    mb = float(np.median(b))
    if mb == 0:
        raise ValueError("baseline median is 0: a ratio is undefined")
    mc = float(np.median(c))
    theta = mc / mb
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        theta_b = _bootstrap_medians(c, n_resamples, rng) / _bootstrap_medians(b, n_resamples, rng)
        jack = [_jackknife_medians(c) / mb, mc / _jackknife_medians(b)]
    finite = np.isfinite(theta_b)
    if not finite.all():  # a resampled baseline median of 0
        theta_b = theta_b[finite]
    if theta_b.size:
        low, high, method, note = _bca_or_percentile(theta, theta_b, jack, confidence)
    else:
        low = high = theta
        method, note = "percentile", "every resampled baseline median is 0"
    p_thr = None
    if threshold is not None:
        _check_direction(direction)
        alt = "greater" if direction == "higher_is_better" else "less"
        p_thr = _mann_whitney(c / threshold, b, alt)
    constant = bool(np.ptp(c) == 0 and np.ptp(b) == 0)
    degenerate, reason = False, ""
    if constant:
        degenerate, reason = True, "both arms are constant: no spread to build an interval from"
    elif not (high > low):
        degenerate, reason = True, "zero-width interval (too little variation, or ties)"
    with np.errstate(all="ignore"):
        lc, lb = np.log(c[c > 0]), np.log(b[b > 0])
        sd = float(math.sqrt(np.var(lc, ddof=1) + np.var(lb, ddof=1))) if len(lc) > 1 and len(lb) > 1 else math.nan
    return Effect(theta, low, high, _mann_whitney(c, b), len(c), len(b), method, note, design="unpaired",
                  estimator="ratio of medians", confidence=confidence, degenerate=degenerate, reason=reason,
                  constant=constant, p_threshold=p_thr, threshold=threshold, direction=direction, sd_log=sd)


def median_difference_effect(
    differences: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Effect:
    """Median of per-run differences (e.g. measured − bound) with a bootstrap CI (BCa, percentile
    fallback) and a two-sided Wilcoxon signed-rank p against 0."""
    d = np.sort(_clean(differences))
    if len(d) < 2:
        raise ValueError(f"need at least 2 samples, got {len(d)}")
    med = float(np.median(d))
    theta_b = _bootstrap_medians(d, n_resamples, np.random.default_rng(seed))
    low, high, method, note = _bca_or_percentile(med, theta_b, [_jackknife_medians(d)], confidence)
    constant = bool(np.ptp(d) == 0)
    degenerate = constant or not (high > low)
    reason = ("every run gives the same difference" if constant
              else "zero-width interval (ties)" if degenerate else "")
    return Effect(med, low, high, _signed_rank_p(d, "two-sided"), len(d), 0, method, note, design="paired",
                  estimator="median of differences", confidence=confidence, degenerate=degenerate,
                  reason=reason, constant=constant)


# ---------------------------------------------------------------------------------------------
# Discrete metrics: counts as counts
# ---------------------------------------------------------------------------------------------

def _counts(k, n, arm: str) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(k, dtype=float).ravel()
    n = np.asarray(n, dtype=float).ravel()
    if k.shape != n.shape:
        raise ValueError(f"{arm}: {len(k)} counts but {len(n)} query totals")
    keep = np.isfinite(k) & np.isfinite(n)
    k, n = np.round(k[keep]), np.round(n[keep])
    if np.any(n <= 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError(f"{arm}: counts must satisfy 0 ≤ k ≤ n and n > 0")
    return k, n


def proportion_ratio_effect(
    k_cand: Sequence[float],
    n_cand: Sequence[float],
    k_base: Sequence[float],
    n_base: Sequence[float],
    *,
    paired: bool = False,
    confidence: float = 0.95,
    threshold: Optional[float] = None,
    direction: Optional[str] = None,
) -> Effect:
    """Ratio of pooled proportions (Σk_c/Σn_c) ÷ (Σk_b/Σn_b) for accuracies that are counts.

    One entry per run: k correct of n queries. Interval: Katz log interval,
    var ln R = max(binomial, between-run), binomial = (1 − p_c)/K_c + (1 − p_b)/K_b (queries
    independent; the floor no run-level spread can go below), between-run = the cluster-robust
    (ratio-estimator) variance with runs as clusters (paired: per-round differences of the arms'
    influence, so a seed effect shared by both arms cancels). The binomial variance takes a normal
    quantile; the between-run one, being estimated, a t quantile on runs − 1 degrees of freedom (the
    fewer of the two arms' when unpaired). p-values come from the same statistic and quantile.
    `sd_log` is se·√runs, a per-round SD to feed `repetitions_for_power`.
    Degenerate (never verifies): no correct answer in an arm, both arms at 100 %, or zero variance.
    """
    kc, nc = _counts(k_cand, n_cand, "candidate")
    kb, nb = _counts(k_base, n_base, "baseline")
    if paired and len(kc) != len(kb):
        raise ValueError(f"paired counts need one entry per round in both arms, got {len(kc)} and {len(kb)}")
    rc, rb = len(kc), len(kb)
    if rc < 2 or rb < 2:
        raise ValueError(f"need at least 2 runs per arm, got {rc} and {rb}")
    big_kc, big_nc, big_kb, big_nb = kc.sum(), nc.sum(), kb.sum(), nb.sum()
    pc, pb = big_kc / big_nc, big_kb / big_nb
    design = "paired" if paired else "unpaired"
    common = dict(design=design, estimator="ratio of pooled proportions", confidence=confidence,
                  threshold=threshold, direction=direction)
    if threshold is not None:
        _check_direction(direction)
    nan = float("nan")

    def degenerate(ratio, low, high, reason, constant=False):
        return Effect(ratio, low, high, 1.0, rc, rb, "Katz cluster-robust", "", degenerate=True, reason=reason,
                      constant=constant, p_threshold=None if threshold is None else 1.0, **common)

    if big_kc == 0 or big_kb == 0:
        who = " and ".join(a for a, kk in (("candidate", big_kc), ("baseline", big_kb)) if kk == 0)
        return degenerate(pc / pb if big_kb else nan, nan, nan,
                          f"no correct answer at all for the {who}: the ratio of accuracies is 0 or undefined")
    if pc == 1 and pb == 1:
        return degenerate(1.0, 1.0, 1.0, "both arms answered every query correctly: at the ceiling, "
                                         "a ratio cannot be bounded", constant=True)
    ratio = pc / pb
    log_r = math.log(ratio)
    binomial = (1 - pc) / big_kc + (1 - pb) / big_kb
    zc = (kc - pc * nc) / big_kc
    zb = (kb - pb * nb) / big_kb
    if paired:
        z = zc - zb
        between = rc / (rc - 1) * float(np.sum(z**2))
        df = rc - 1
    else:
        between = rc / (rc - 1) * float(np.sum(zc**2)) + rb / (rb - 1) * float(np.sum(zb**2))
        df = min(rc, rb) - 1
    if between <= binomial:  # queries' binomial noise dominates: a known-form variance, normal quantile
        var, df, which = binomial, math.inf, "binomial"
    else:  # runs differ more than binomial noise: an estimated variance, t quantile
        var, which = between, "between-run"
    se = math.sqrt(var)
    if se == 0:
        return degenerate(ratio, ratio, ratio, "zero variance in the counts", constant=True)
    q = float(sps.t.ppf(1 - (1 - confidence) / 2, df))
    low, high = math.exp(log_r - q * se), math.exp(log_r + q * se)
    p = float(2 * sps.t.sf(abs(log_r) / se, df))
    p_thr = None
    if threshold is not None:
        tstat = (log_r - math.log(threshold)) / se
        p_thr = float(sps.t.sf(tstat, df) if direction == "higher_is_better" else sps.t.cdf(tstat, df))
    dof = "normal quantile" if math.isinf(df) else f"t on {df} df"
    note = f"{which} variance used ({int(big_kc)}/{int(big_nc)} vs {int(big_kb)}/{int(big_nb)}; {dof})"
    return Effect(ratio, low, high, p, rc, rb, "Katz cluster-robust", note, p_threshold=p_thr,
                  sd_log=se * math.sqrt(min(rc, rb)), **common)


# ---------------------------------------------------------------------------------------------
# Multiplicity
# ---------------------------------------------------------------------------------------------

def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values in the input order (family-wise error control).

    The i-th smallest of m p-values becomes max over j ≤ i of (m − j + 1)·p_(j), capped at 1.
    NaN entries (claims with no test) stay NaN and do not count towards m.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    vals = p[ok]
    order = np.argsort(vals, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * vals[order]))
    res = np.empty(m)
    res[order] = adjusted
    out[ok] = res
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """BH-adjusted p-values (q-values) in the input order (false discovery rate)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    return sps.false_discovery_control(p, method="bh")


# ---------------------------------------------------------------------------------------------
# Quality gates as non-inferiority
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Gate:
    """A non-inferiority quality gate.

    holds: True when the upper confidence bound of the relative quality loss is below the allowed
    loss; False otherwise; None when it cannot be computed (missing data, degenerate interval).
    `upper_loss`/`lower_loss` bound the loss, `estimate` is its point estimate (0.04 = 4 % worse).
    `shown_worse` is True when even the lower bound exceeds the allowed loss: the candidate is shown
    to lose too much (a judge may REFUTE on that, and call a gate that merely does not hold unproven).
    """

    holds: Optional[bool]
    upper_loss: float
    estimate: float
    reason: str
    lower_loss: float = float("nan")
    shown_worse: bool = False
    effect: Optional[Effect] = field(default=None, repr=False)
    # one-sided p against "the loss is within the allowed loss" (what a REFUTED on the gate rests on,
    # Holm-adjusted with the claims' other REFUTED p-values); 1 when it cannot be computed
    p_worse: float = 1.0


def non_inferiority(
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    max_relative_loss: float,
    direction: str,
    paired: bool,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Gate:
    """Quality gate: does the candidate lose at most `max_relative_loss` (0.03 = 3 %) of the quality?

    Relative loss = c/b − 1 for a lower-is-better metric (perplexity), 1 − c/b for higher-is-better
    (accuracy), from `paired_ratio_effect` (paired) or `ratio_effect` (unpaired). The bound used is
    the upper end of the two-sided `confidence` interval (one-sided 97.5 % at 0.95). Strict: the
    gate holds when upper_loss < max_relative_loss.
    """
    _check_direction(direction)
    nan = float("nan")
    # "worse than allowed" is a ratio beyond 1 + loss (lower is better) or below 1 − loss (higher is better)
    worse_t, worse_dir = ((1 + max_relative_loss, "higher_is_better") if direction == "lower_is_better"
                          else (1 - max_relative_loss, "lower_is_better"))
    test = dict(threshold=worse_t, direction=worse_dir) if worse_t > 0 else {}
    try:
        if paired:
            eff = paired_ratio_effect(candidate, baseline, confidence=confidence, **test)
        else:
            eff = ratio_effect(candidate, baseline, confidence=confidence, n_resamples=n_resamples, seed=seed,
                               **test)
    except ValueError as err:
        return Gate(None, nan, nan, f"quality cannot be compared: {err}")
    p_worse = eff.p_threshold if eff.p_threshold is not None and not eff.degenerate else 1.0
    if direction == "lower_is_better":
        est, lower, upper = eff.ratio - 1, eff.ci_low - 1, eff.ci_high - 1
    else:
        est, lower, upper = 1 - eff.ratio, 1 - eff.ci_high, 1 - eff.ci_low
    text = (f"quality loss {100 * est:+.2f} % ({100 * eff.confidence:.4g} % interval "
            f"{100 * lower:+.2f} … {100 * upper:+.2f} %, {eff.design}) vs allowed {100 * max_relative_loss:g} %")
    if eff.degenerate:
        return Gate(None, upper, est, f"{text}: the loss cannot be bounded ({eff.reason})", lower, False, eff)
    if upper < max_relative_loss:
        return Gate(True, upper, est, f"{text}: upper bound below the allowed loss", lower, False, eff, p_worse)
    worse = lower > max_relative_loss
    why = "even the lower bound exceeds the allowed loss" if worse else "upper bound not below the allowed loss"
    return Gate(False, upper, est, f"{text}: {why}", lower, worse, eff, p_worse)


# ---------------------------------------------------------------------------------------------
# Fixed-n design: advice for the next suite, and a warning about top-ups
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PowerPlan:
    """Repetitions per arm (rounds, when paired) a next suite would need, or None with the reason."""

    repetitions: Optional[int]
    reason: str


def repetitions_for_power(
    effect_sd_log: float,
    true_log_ratio: float,
    threshold_log: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    max_repetitions: int = 100_000,
) -> PowerPlan:
    """Rounds a NEXT suite needs for its (1 − alpha) interval to exclude the threshold with `power`,
    if the true log-ratio were `true_log_ratio` and one round's log-ratio had SD `effect_sd_log`.

    n = ((t_{1−α/2, n−1} + t_{power, n−1}) · sd / |Δ|)² ÷ (3/π), Δ = true − threshold (iterated for
    the t quantiles; 3/π is the signed-rank test's efficiency against the t-test on normal data), and
    at least the smallest n whose exact signed-rank test can reach α (2^−n ≤ α/2). For an unpaired
    design pass sd = √(sd_c² + sd_b²) of ln values and read the result per arm. When claims are
    Holm-adjusted across m claims, pass alpha/m. Advice to fix n up front, never a stopping rule:
    adding repetitions to a run because it was inconclusive inflates false verdicts.
    """
    delta = abs(true_log_ratio - threshold_log)
    if not (math.isfinite(effect_sd_log) and math.isfinite(delta)):
        return PowerPlan(None, "no finite spread or estimate to plan from")
    if effect_sd_log <= 0:
        return PowerPlan(None, "no spread between rounds: nothing to plan from (a deterministic metric?)")
    if delta == 0 or delta < 1e-12 * max(1.0, abs(threshold_log)):
        return PowerPlan(None, "the estimate sits on the threshold: no number of repetitions is expected to settle it")
    n_exact = max(2, math.ceil(math.log2(2 / alpha)))
    are = 3 / math.pi
    n = n_exact
    for _ in range(100):
        df = max(n - 1, 1)
        need = ((sps.t.ppf(1 - alpha / 2, df) + sps.t.ppf(power, df)) * effect_sd_log / delta) ** 2 / are
        new = max(n_exact, math.ceil(need))
        if new == n or new > max_repetitions:
            n = new
            break
        n = new
    if n > max_repetitions:
        return PowerPlan(None, f"more than {max_repetitions} repetitions would be needed: the estimate is too close "
                               "to the threshold for any practical suite")
    return PowerPlan(n, f"{n} rounds for a {100 * (1 - alpha):g} % interval to exclude the threshold with "
                        f"{100 * power:g} % power if the true ratio were {math.exp(true_log_ratio):.4g} "
                        f"(round-to-round SD of ln ratio {effect_sd_log:.3g}); fix it in the next suite, do not top up")


@dataclass(frozen=True)
class Looks:
    """How many separate batches of repetitions one configuration's runs came in."""

    batches: int
    sizes: list[int]
    warning: Optional[str]


def _seconds(values) -> np.ndarray:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(math.nan)
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out.append(float(v))
        else:  # ISO 8601; naive times are taken as UTC, as the records write them
            from datetime import datetime, timezone

            t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            out.append((t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp())
    return np.asarray(out, dtype=float)


def sequential_looks(
    rounds: Sequence[Iterable],
    started_at: Sequence,
    finished_at: Optional[Sequence] = None,
    *,
    max_idle_s: float = 3600.0,
) -> Looks:
    """Batches of one configuration's runs (call once per config hash), and a warning if more than one.

    `rounds[i]` identifies run i's slot, e.g. (arm, task, size, repetition); `started_at` /
    `finished_at` are ISO strings or seconds. A new batch starts when (a) a slot already seen in the
    current batch appears again (the same repetitions were run again), or (b) a run starts more than
    `max_idle_s` after every earlier run had finished (someone came back later). Several batches
    may be top-ups of an earlier, inconclusive run: a fixed-n test's error rates then no longer hold.
    """
    start = _seconds(started_at)
    end = _seconds(finished_at) if finished_at is not None else start.copy()
    end = np.where(np.isfinite(end), end, start)
    slots = [tuple(r) if not isinstance(r, (str, bytes)) and isinstance(r, Iterable) else (r,) for r in rounds]
    if len(slots) != len(start):
        raise ValueError("rounds and started_at must have one entry per run")
    order = np.argsort(np.where(np.isfinite(start), start, np.inf), kind="stable")
    sizes: list[int] = []
    seen: set = set()
    last_end = -math.inf
    for i in order:
        idle = start[i] - last_end if math.isfinite(start[i]) else 0.0
        if not sizes or slots[i] in seen or idle > max_idle_s:
            sizes.append(0)
            seen = set()
        sizes[-1] += 1
        seen.add(slots[i])
        if math.isfinite(end[i]):
            last_end = max(last_end, end[i])
    warning = None
    if len(sizes) > 1:
        warning = (f"these runs came in {len(sizes)} separate batches ({' + '.join(map(str, sizes))} runs): if later "
                   "batches were added because an earlier result was inconclusive (a top-up), the intervals and "
                   "p-values overstate the evidence; fix the repetitions up front and run a fresh suite")
    return Looks(len(sizes), sizes, warning)


def min_paired_rounds(n_claims: int = 1, alpha: float = 0.05) -> int:
    """Fewest paired rounds with which any claim can be VERIFIED under Holm across `n_claims`.

    With n rounds the smallest one-sided signed-rank p is 2⁻ⁿ (every round on the better side);
    Holm's first step needs it below (α/2)/m: n = ⌊log2(2m/α)⌋ + 1 (6 for one claim, 9 for 7).
    """
    return int(math.floor(math.log2(2 * max(1, n_claims) / alpha))) + 1


def methods_paragraph(*, confidence: float = 0.95, alpha: float = 0.05, n_claims: Optional[int] = None,
                      resamples: int = DEFAULT_RESAMPLES) -> str:
    """Every statistical choice, in one paragraph a reviewer can check (for the report and README)."""
    pct = f"{100 * confidence:g} %"
    draws = f"{resamples:,}".replace(",", " ")
    few = next(n for n in range(2, 64) if 2.0 ** (1 - n) <= 1 - confidence + 1e-12)
    family = f"the {n_claims} claims" if n_claims else "the claims"
    need = (f"; with {n_claims} claims that needs at least {min_paired_rounds(n_claims, alpha)} paired rounds"
            if n_claims else "")
    return (
        "Arms of a round share its seed, so they are compared round by round: the effect is the "
        "Hodges–Lehmann estimate of the per-round log-ratios candidate ÷ baseline, with the exact Wilcoxon "
        f"signed-rank {pct} interval and p-value (assumed: independent rounds, log-ratios symmetric about "
        f"their centre; below {few} rounds the interval is [min, max], shown with its lower coverage). "
        f"Unpaired rows use the ratio of medians, a {draws}-resample BCa bootstrap and a Mann–Whitney "
        "test. Accuracies are judged as counts: ratio of pooled accuracies, log (Katz) interval with the larger "
        "of the binomial and the run-to-run variance (paired by round when the rounds pair). A claim is VERIFIED "
        "only when its interval lies strictly beyond the claimed value, is not degenerate (zero width, no "
        "correct answer, both arms at 100 %), and its one-sided p-value against the claimed value, "
        f"Holm-adjusted across {family} in this report, is below {alpha / 2:g}{need}. REFUTED needs the "
        "interval strictly on the other side (or the quality gate shown failed) and the one-sided p-value "
        f"against the claim holding, Holm-adjusted across the same claims, below {alpha / 2:g} (with a "
        "quality gate, twice the smaller of the effect's and the gate's p). A run that misses its quality target "
        "within its budget is censored there, not dropped: its round's log-ratio is only bounded, and each side "
        "of the interval and each one-sided p takes the worst case of the bounds (a side left unbounded decides "
        "nothing). An energy ratio's interval is widened by the sensors' residual systematic bound "
        "|e/T (candidate) − e/T (baseline)|, e = D + P/2 from the qualification, before it is judged. A quality gate "
        "holds when the upper bound of the relative quality loss is below the allowed loss (non-inferiority). "
        "Repetitions are fixed by the suite; “repetitions needed” is an 80 %-power plan for the next suite, "
        "and the report warns when a configuration's runs came in several batches (top-ups inflate false "
        "verdicts)."
    )


# ---------------------------------------------------------------------------------------------
# Descriptive helpers and change points (compare, regress)
# ---------------------------------------------------------------------------------------------

def coefficient_of_variation(values: Sequence[float]) -> float:
    """Sample stdev ÷ |mean| (NaN for fewer than 2 values or a zero mean)."""
    v = _clean(values)
    if len(v) < 2 or np.mean(v) == 0:
        return float("nan")
    return float(np.std(v, ddof=1) / abs(np.mean(v)))


def median_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Median with a distribution-free order-statistic CI (binomial); (median, nan, nan) when n is too small."""
    v = np.sort(_clean(values))
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    med = float(np.median(v))
    alpha = 1 - confidence
    # Largest k with P(Bin(n, ½) < k) ≤ α/2: [v[k-1], v[n-k]] covers the median with ≥ confidence.
    k = int(sps.binom.ppf(alpha / 2, n, 0.5))
    if k < 1:
        return med, float("nan"), float("nan")
    return med, float(v[k - 1]), float(v[n - k])


def noise_scale(values: np.ndarray) -> float:
    """Robust noise σ of a series: MAD of first differences ÷ (√2 · 0.6745), immune to steps."""
    diffs = np.diff(values)
    if diffs.size == 0:
        return 0.0
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return mad / (math.sqrt(2) * 0.6745)


def change_points(values: Sequence[float], *, min_size: int = 3, penalty_factor: float = 5.0) -> list[int]:
    """Indices where a new segment starts (PELT, L2 cost, penalty = factor · σ² · ln n).

    ruptures' KernelCPD with a linear kernel is PELT on the L2 cost (sum of squared
    deviations from each segment's mean), implemented in C: ~1000× faster than rpt.Pelt.
    """
    import ruptures as rpt

    v = np.asarray(values, dtype=float)
    n = len(v)
    if n < 2 * min_size:
        return []
    sigma = noise_scale(v)
    if sigma == 0:  # noiseless: any change is real; use a tiny penalty relative to the scale
        sigma = max(1e-12, 1e-6 * float(np.max(np.abs(v)) or 1.0))
    penalty = penalty_factor * sigma**2 * math.log(n)
    algo = rpt.KernelCPD(kernel="linear", min_size=min_size).fit(v.reshape(-1, 1))
    return [int(i) for i in algo.predict(pen=penalty)[:-1]]  # last breakpoint is always n

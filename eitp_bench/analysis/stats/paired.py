"""Paired rounds: the arms of a round share its seed, so a claim is judged round by round whenever it can be.

- `paired_ratio_effect`: per-round log-ratios d_i = ln(candidate_i / baseline_i). The effect is
  exp(Hodges–Lehmann estimate of d) (the median of the Walsh averages (d_i + d_j)/2, i ≤ j: the
  median-type estimate that belongs to the signed-rank test), with the exact distribution-free
  Wilcoxon signed-rank interval (normal approximation above 50 rounds) and the signed-rank p-value.
  Interval and p-value come from the same test, so "interval clears t" ⇔ "one-sided p < α/2"
  (exact when no ties). Assumes rounds are independent and the log-ratios symmetric about their
  centre; makes no assumption on the seed-to-seed spread, which pairing cancels.
- `signed_rank_p_ties`: the signed-rank p-value with tied values (mid-ranks).
- `censored_paired_ratio_effect`: a round whose run missed its quality target within its budget is
  censored there, not dropped: its log-ratio is only bounded (`censored_log_ratio_bounds`).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np
from scipy.special import ndtr, ndtri

from eitp_bench.analysis.stats.effect import Effect, LOG_TIE, _check_direction


EXACT_MAX_N = 50  # signed-rank interval and p exact up to this many rounds (scipy's own cut-off)
WALSH_FULL_MAX_N = 2_000  # above this, Walsh order statistics by bisection (no n²/2 array)


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


def doubled_mid_ranks(x: np.ndarray) -> np.ndarray:
    """2 × the mid-ranks of x (ties share the average of their ranks), as integers: 2·rank is whole.

    The same figures as rint(2 · scipy.stats.rankdata(x)) (its "average" method: first rank of a tie
    group + (size − 1)/2), without importing scipy.stats; a tie group at 0-based sorted positions
    i … i + c − 1 gets 2·(i + 1) + c − 1. ±∞ are values like any other (tied with their equals).
    """
    x = np.asarray(x, dtype=float).ravel()
    n = len(x)
    order = np.argsort(x, kind="stable")
    y = x[order]
    starts = np.flatnonzero(np.concatenate(([True], y[1:] != y[:-1])))  # first position of each tie group
    sizes = np.diff(np.append(starts, n))
    out = np.empty(n, dtype=np.int64)
    out[order] = np.repeat(2 * (starts + 1) + sizes - 1, sizes)
    return out


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
        t_plus = int(np.sum(doubled_mid_ranks(a)[d > 0])) // 2  # untied: whole ranks, doubled
        greater = 1.0 - (cdf[t_plus - 1] if t_plus > 0 else 0.0)  # P(T ≥ t+)
        less = float(cdf[t_plus])  # P(T ≤ t+)
        if alternative == "greater":
            return float(greater)
        if alternative == "less":
            return less
        return float(min(1.0, 2 * min(greater, less)))
    from scipy.stats import wilcoxon  # ~0.5 s to import: only for ties or more than 50 rounds

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = float(wilcoxon(d, alternative=alternative).pvalue)
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
    ranks2 = doubled_mid_ranks(np.abs(x))  # mid-ranks are multiples of ½: doubled, integers
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

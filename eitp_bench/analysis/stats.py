"""Statistics that state what they assume.

One repetition (one fresh process) is one sample. An effect is the ratio of
medians, candidate ÷ baseline, with a bootstrap BCa 95 % CI and a two-sided
Mann–Whitney U p-value. Change points use `ruptures` (PELT, L2 cost) with a
penalty scaled to the series' own noise; many tests are controlled with
Benjamini–Hochberg.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import stats as sps

MIN_REPETITIONS = 5  # fewer per arm: no verdict
DEFAULT_RESAMPLES = 10_000


@dataclass(frozen=True)
class Effect:
    """A ratio of medians with its confidence interval and test."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    n_candidate: int
    n_baseline: int
    ci_method: str  # "BCa" or "percentile" (the fallback when BCa cannot be computed)
    note: str = ""


def _ratio_of_medians(candidate, baseline, axis=-1):
    # `vectorized` statistic: scipy passes resample batches along `axis`.
    return np.median(candidate, axis=axis) / np.median(baseline, axis=axis)


def _clean(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return arr[np.isfinite(arr)]


def ratio_effect(
    candidate: Sequence[float],
    baseline: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Effect:
    """Ratio of medians candidate ÷ baseline, bootstrap CI (BCa, percentile fallback), Mann–Whitney p."""
    c, b = _clean(candidate), _clean(baseline)
    if len(c) < 2 or len(b) < 2:
        raise ValueError(f"need at least 2 samples per arm, got {len(c)} and {len(b)}")
    if np.median(b) == 0:
        raise ValueError("baseline median is 0: a ratio is undefined")
    ratio = float(_ratio_of_medians(c, b))
    p_value = _mann_whitney(c, b)
    low, high, method, note = _bootstrap_ci(
        (c, b), _ratio_of_medians, confidence=confidence, n_resamples=n_resamples, seed=seed
    )
    return Effect(ratio, low, high, p_value, len(c), len(b), method, note)


def _mann_whitney(a: np.ndarray, b: np.ndarray) -> float:
    if np.all(a == a[0]) and np.all(b == b[0]) and a[0] == b[0]:
        return 1.0  # identical constant samples: no evidence of a difference
    return float(sps.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def _bootstrap_ci(data, statistic, *, confidence, n_resamples, seed):
    """BCa first; when it fails (degenerate samples give NaN), percentile, and say so."""
    rng = np.random.default_rng(seed)
    largest = max(len(d) for d in data)
    kwargs = dict(
        confidence_level=confidence,
        n_resamples=n_resamples,
        vectorized=True,
        paired=False,
        random_state=rng,
        # Resample in batches of ~2M values: cache-sized arrays are 2–3× faster for large samples.
        batch=max(100, min(n_resamples, 2_000_000 // largest)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = sps.bootstrap(data, statistic, method="BCa", **kwargs)
        except (ValueError, FloatingPointError, ZeroDivisionError):  # BCa's jackknife can fail outright
            kwargs["random_state"] = np.random.default_rng(seed)
            res = sps.bootstrap(data, statistic, method="percentile", **kwargs)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if math.isfinite(low) and math.isfinite(high):
        return low, high, "BCa", ""
    # Percentile interval from the same resamples: no second bootstrap.
    tail = 100 * (1 - confidence) / 2
    dist = res.bootstrap_distribution
    dist = dist[np.isfinite(dist)]
    if dist.size:
        low, high = (float(v) for v in np.percentile(dist, [tail, 100 - tail]))
    else:  # every resample undefined
        low = high = float(statistic(*[np.asarray(d) for d in data]))
    note = "BCa undefined for these samples (too little variation); percentile interval used"
    return low, high, "percentile", note


def median_difference_effect(
    differences: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Effect:
    """Median of per-run differences (e.g. measured − bound) with a bootstrap CI and a Wilcoxon p."""
    d = _clean(differences)
    if len(d) < 2:
        raise ValueError(f"need at least 2 samples, got {len(d)}")
    med = float(np.median(d))
    low, high, method, note = _bootstrap_ci(
        (d,), lambda x, axis=-1: np.median(x, axis=axis),
        confidence=confidence, n_resamples=n_resamples, seed=seed,
    )
    if np.all(d == 0):
        p = 1.0
    else:
        p = float(sps.wilcoxon(d, alternative="two-sided").pvalue)
    return Effect(med, low, high, p, len(d), 0, method, note)


def reps_needed(n: int, ci_low: float, ci_high: float, estimate: float, threshold: float) -> Optional[int]:
    """Estimated repetitions per arm to settle an inconclusive comparison.

    Assumes the CI half-width shrinks as 1/√n and the point estimate stays put:
    n_needed = n · (half-width / |estimate − threshold|)². An estimate, not a promise.
    None when the estimate sits on the threshold (no n would settle it).
    """
    distance = abs(estimate - threshold)
    if distance == 0 or n <= 0:
        return None
    half_width = (ci_high - ci_low) / 2
    return max(n + 1, math.ceil(n * (half_width / distance) ** 2))


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """BH-adjusted p-values (q-values) in the input order."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    return sps.false_discovery_control(p, method="bh")


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

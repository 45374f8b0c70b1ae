"""Descriptive helpers and change points for series of runs (compare, regress).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from eitp_bench.analysis.stats.distributions import binom_ppf
from eitp_bench.analysis.stats.effect import _clean


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
    k = int(binom_ppf(alpha / 2, n, 0.5))
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

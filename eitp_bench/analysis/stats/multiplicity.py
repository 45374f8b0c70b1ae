"""Many tests at once: `holm` (family-wise, across the claims of one paper) and `benjamini_hochberg`
(false discovery rate, for many regression series).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


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
    from scipy.stats import false_discovery_control  # ~0.5 s to import: only where BH is asked for

    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    return false_discovery_control(p, method="bh")

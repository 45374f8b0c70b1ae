"""Student-t, beta and binomial tails and quantiles from scipy.special, without importing scipy.stats.

Importing scipy.stats costs about half a second (it pulls in scipy.spatial, optimize, sparse, ...), more
than the statistics of a whole report. Its distributions are thin wrappers over scipy.special routines
(read in scipy 1.17, stats/_continuous_distns.py and _discrete_distns.py):

- t_gen._cdf(x, df) = special.stdtr(df, x); t_gen._sf(x, df) = special.stdtr(df, -x);
  t_gen._ppf(q, df) = special.stdtrit(df, q) (public routines);
- beta_gen._ppf(q, a, b) = special._ufuncs._beta_ppf(q, a, b); binom_gen._ppf(q, n, p) =
  special._ufuncs._binom_ppf(q, n, p); binom_gen._sf(k, n, p) = special._ufuncs._binom_sf(floor(k), n, p).
  These three are private names, so they are imported under a guard: a scipy that renames them falls back
  to scipy.stats itself (slower to import, same figures). The public special.betaincinv and bdtrc are
  other routines (betaincinv is Boost's ibeta_inv under another policy than the beta quantile's): equal
  figures are only likely there, not certain, so they are not used.

The rv_continuous / rv_discrete wrappers (stats/_distn_infrastructure.py) call those routines only inside
the support and answer the edges themselves: a bad shape or NaN gives NaN, ppf(0) and ppf(1) the ends of
the support (stdtrit(df, 0) alone would say +inf), cdf/sf beyond the ends 0 or 1, the binomial sf clipped
to [0, 1]. The functions below repeat that, so every figure is the one scipy.stats gives, bit for bit
(tests/analysis/test_stats_distributions.py compares them on grids). Scalars only: all the package asks for.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import stdtr, stdtrit

try:  # the very ufuncs scipy.stats.beta.ppf, binom.ppf and binom.sf call
    from scipy.special._ufuncs import _beta_ppf, _binom_ppf, _binom_sf
except ImportError:  # pragma: no cover - depends on the installed scipy
    _beta_ppf = _binom_ppf = _binom_sf = None


def _positive(*shapes: float) -> bool:
    """Every shape parameter > 0 (NaN fails), as scipy.stats' default argument check asks."""
    return all(s > 0 for s in shapes)


def t_cdf(x: float, df: float) -> float:
    """P(T ≤ x), T Student-t on `df` degrees of freedom (df = inf: standard normal); = scipy.stats.t.cdf."""
    if not _positive(df) or math.isnan(x):
        return math.nan
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    return float(stdtr(df, x))


def t_sf(x: float, df: float) -> float:
    """P(T > x) = scipy.stats.t.sf (computed as cdf(−x), not 1 − cdf: no cancellation in the tail)."""
    if not _positive(df) or math.isnan(x):
        return math.nan
    if math.isinf(x):
        return 0.0 if x > 0 else 1.0
    return float(stdtr(df, -x))


def t_ppf(q: float, df: float) -> float:
    """The q-quantile of Student-t on `df` degrees of freedom; = scipy.stats.t.ppf."""
    if not _positive(df) or not 0 <= q <= 1:  # NaN fails the comparison too
        return math.nan
    if q == 0 or q == 1:
        return math.inf if q == 1 else -math.inf
    return float(stdtrit(df, q))


def beta_ppf(q: float, a: float, b: float) -> float:
    """The q-quantile of Beta(a, b) (Clopper–Pearson bounds); = scipy.stats.beta.ppf."""
    if _beta_ppf is None:  # pragma: no cover - a scipy that moved its private ufunc
        from scipy.stats import beta

        return float(beta.ppf(q, a, b))
    if not _positive(a, b) or not 0 <= q <= 1:
        return math.nan
    if q == 0 or q == 1:
        return float(q)  # the ends of the support [0, 1]
    return float(_beta_ppf(q, a, b))


def _binomial_ok(n: float, p: float) -> bool:
    """scipy.stats.binom's argument check: n a whole number ≥ 0, 0 ≤ p ≤ 1."""
    return bool(n >= 0 and np.floor(n) == n and 0 <= p <= 1)


def binom_ppf(q: float, n: float, p: float) -> float:
    """The smallest k with P(Bin(n, p) ≤ k) ≥ q, as a float; = scipy.stats.binom.ppf."""
    if _binom_ppf is None:  # pragma: no cover - a scipy that moved its private ufunc
        from scipy.stats import binom

        return float(binom.ppf(q, n, p))
    if not _binomial_ok(n, p) or not 0 <= q <= 1:
        return math.nan
    if q == 0 or q == 1:
        return float(n) if q == 1 else -1.0  # the support's end, and one below its start
    return float(_binom_ppf(q, n, p))


def binom_sf(k: float, n: float, p: float) -> float:
    """P(Bin(n, p) > k); = scipy.stats.binom.sf. With k = j − 1 it is binomtest(j, n, p, "greater")'s p."""
    if _binom_sf is None:  # pragma: no cover - a scipy that moved its private ufunc
        from scipy.stats import binom

        return float(binom.sf(k, n, p))
    if not _binomial_ok(n, p) or math.isnan(k):
        return math.nan
    if k < 0:
        return 1.0
    if k >= n:
        return 0.0
    return float(np.clip(_binom_sf(np.floor(k), n, p), 0, 1))

"""Accuracies that are counts (k correct of n queries per run) judged as counts.

`proportion_ratio_effect`: ratio of pooled proportions with a Katz log interval whose variance is the
larger of the binomial variance (normal quantile) and the between-run variance (cluster-robust, paired by
round when possible; t quantile on runs − 1 degrees of freedom).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from eitp_bench.analysis.stats.distributions import t_cdf, t_ppf, t_sf
from eitp_bench.analysis.stats.effect import Effect, _check_direction


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
    q = t_ppf(1 - (1 - confidence) / 2, df)
    low, high = math.exp(log_r - q * se), math.exp(log_r + q * se)
    p = 2 * t_sf(abs(log_r) / se, df)
    p_thr = None
    if threshold is not None:
        tstat = (log_r - math.log(threshold)) / se
        p_thr = t_sf(tstat, df) if direction == "higher_is_better" else t_cdf(tstat, df)
    dof = "normal quantile" if math.isinf(df) else f"t on {df} df"
    note = f"{which} variance used ({int(big_kc)}/{int(big_nc)} vs {int(big_kb)}/{int(big_nb)}; {dof})"
    return Effect(ratio, low, high, p, rc, rb, "Katz cluster-robust", note, p_threshold=p_thr,
                  sd_log=se * math.sqrt(min(rc, rb)), **common)

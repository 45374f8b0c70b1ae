"""The effect of one claim: the right test for its samples (paired, unpaired, censored, counts, exact),
thresholds shifted by the sensors' systematic bound, and the power plan an INCONCLUSIVE verdict shows.
"""

from __future__ import annotations

from typing import Optional

from eitp_bench.analysis.claims.registry import Claim
from eitp_bench.analysis.claims.samples import _count_samples, _paired


def _effect(claim: Claim, rows, samples: dict, metric: str, n_resamples: int, seed: int,
            threshold: Optional[float] = None, direction: Optional[str] = None, *, pairs=False):
    """(Effect, design note): counts as counts (paired by round when rounds pair), censored to-target
    figures by the paired censored test, deterministic metrics exactly, otherwise paired by round
    (Wilcoxon/Hodges–Lehmann) when rounds pair, else the unpaired ratio of medians. `threshold` and
    `direction` (default: the claim's) set the one-sided p-value the Effect carries; `pairs`, when
    given, is `_paired(samples, claim)` already computed."""
    import numpy as np

    from eitp_bench.analysis import stats

    t = claim.threshold if threshold is None else threshold
    direction = direction or claim.direction
    cand, base = samples[claim.candidate], samples[claim.baseline]
    pairs = _paired(samples, claim) if pairs is False else pairs
    paired = pairs is not None and len(pairs) >= stats.MIN_REPETITIONS
    if claim.count_metric:
        counted = _count_effect(claim, rows, samples, t, direction, pairs)
        if counted is not None:
            return counted
    censored = any(np.isposinf(df["value"].to_numpy(dtype=float)).any() for df in (cand, base))
    if censored:
        return _censored_effect(pairs if paired else None, t, direction)
    if cand["value"].nunique() == 1 and base["value"].nunique() == 1:
        return _exact_effect(float(cand["value"].iloc[0]), float(base["value"].iloc[0]), len(cand), len(base),
                             t, direction), "exact"
    if paired:
        eff = stats.paired_ratio_effect(pairs["value_c"], pairs["value_b"], threshold=t, direction=direction)
        return eff, "paired"
    eff = stats.ratio_effect(cand["value"], base["value"], n_resamples=n_resamples, seed=seed, threshold=t,
                             direction=direction)
    return eff, "unpaired (rounds could not be paired)"


def _flip(direction: str) -> str:
    return "lower_is_better" if direction == "higher_is_better" else "higher_is_better"


def _exact_effect(c: float, b: float, n_c: int, n_b: int, threshold: float, direction: str):
    """A deterministic metric (the same in every repetition, e.g. model bytes): the ratio is exact."""
    from eitp_bench.analysis.stats import Effect

    r = c / b if b else float("inf")
    beyond = r > threshold if direction == "higher_is_better" else r < threshold
    return Effect(ratio=r, ci_low=r, ci_high=r, p_value=0.0 if r != 1 else 1.0, n_candidate=n_c, n_baseline=n_b,
                  ci_method="exact (identical in every repetition)", design="paired", estimator="exact ratio",
                  p_threshold=0.0 if beyond else 1.0, threshold=threshold, direction=direction)


def _censored_effect(pairs, t: float, direction: str):
    """Runs that missed the target are +∞ at their budget: judged only paired, by round."""
    from eitp_bench.analysis import stats

    if pairs is None:
        raise ValueError("some runs missed the quality target and rounds could not be paired: a censored "
                         "comparison needs the arms' runs paired by round (same size, seed and repetition)")
    budget_c = pairs["budget_c"] if "budget_c" in pairs.columns else [float("nan")] * len(pairs)
    budget_b = pairs["budget_b"] if "budget_b" in pairs.columns else [float("nan")] * len(pairs)
    eff = stats.censored_paired_ratio_effect(pairs["value_c"], pairs["value_b"], candidate_budget=budget_c,
                                             baseline_budget=budget_b, threshold=t, direction=direction)
    return eff, "paired, censored"


def _count_effect(claim: Claim, rows, samples: dict, t: float, direction: str, pairs):
    """Accuracies as counts: paired by round (a round's two arms share its seed and queries) when every
    run pairs, else unpaired; None when the records carry no query counts."""
    from eitp_bench.analysis import stats

    n_runs = (len(samples[claim.candidate]), len(samples[claim.baseline]))
    if pairs is not None and (len(pairs), len(pairs)) == n_runs and len(pairs) >= stats.MIN_REPETITIONS:
        aligned = {claim.candidate: pairs.rename(columns={"run_id_c": "run_id", "value_c": "value"}),
                   claim.baseline: pairs.rename(columns={"run_id_b": "run_id", "value_b": "value"})}
        counts = _count_samples(claim, rows, aligned)
        if counts is not None:
            (k_c, n_c), (k_b, n_b) = counts
            return stats.proportion_ratio_effect(k_c, n_c, k_b, n_b, paired=True, threshold=t,
                                                 direction=direction), "counts, paired by round"
    counts = _count_samples(claim, rows, samples)
    if counts is None:
        return None
    (k_c, n_c), (k_b, n_b) = counts
    return stats.proportion_ratio_effect(k_c, n_c, k_b, n_b, paired=False, threshold=t,
                                         direction=direction), "counts"


def _shifted_thresholds(t: float, direction: str, delta: float) -> tuple[float, float]:
    """(threshold the statistical interval must clear, threshold it must fall short of) so that the
    interval widened by a relative systematic bound δ — [lo/(1+δ), hi/(1−δ)] — clears / falls short of t."""
    if not delta:
        return t, t
    if direction == "lower_is_better":  # hi/(1−δ) < t ⇔ hi < t(1−δ); lo/(1+δ) > t ⇔ lo > t(1+δ)
        return t * (1 - delta), t * (1 + delta)
    return t * (1 + delta), t * (1 - delta)


def _widened(eff, delta: float):
    """The effect with its interval widened by a relative systematic bound δ (< 1)."""
    import dataclasses

    if not delta:
        return eff
    return dataclasses.replace(eff, ci_low=eff.ci_low / (1 + delta), ci_high=eff.ci_high / (1 - delta))


def _unbounded_side(eff) -> str:
    """Words for an interval unbounded on the side a VERIFIED or REFUTED would rest on (censored runs)."""
    import math

    if not (math.isfinite(eff.ci_low) and eff.ci_low > 0):
        return "no lower bound: too many runs missed the target, or missed it with an unknown budget"
    if not math.isfinite(eff.ci_high):
        return "no upper bound: too many runs missed the target"
    return ""


def _power_plan(sd_log: float, log_ratio: float, log_threshold: float, *, alpha: float) -> str:
    from eitp_bench.analysis.stats import repetitions_for_power

    plan = repetitions_for_power(sd_log, log_ratio, log_threshold, alpha=alpha)
    if plan.repetitions is None:
        return f"next suite: {plan.reason}"
    return (f"next suite: about {plan.repetitions} repetitions per arm for 80 % power if the effect is as "
            "estimated (fix it up front; topping this run up would inflate false verdicts)")

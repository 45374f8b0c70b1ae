"""Quality gates: `non_inferiority` holds when the upper confidence bound of the relative quality loss is
below the allowed loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from eitp_bench.analysis.stats.effect import DEFAULT_RESAMPLES, Effect, _check_direction
from eitp_bench.analysis.stats.paired import paired_ratio_effect
from eitp_bench.analysis.stats.unpaired import ratio_effect


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

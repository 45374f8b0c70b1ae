"""What every test returns and the one comparison with a threshold.

- `Effect`: an effect (candidate ÷ baseline, or a difference) with its interval, test and caveats.
- `clears` / `falls_short`: the one comparison with a threshold, strict, and never on a
  degenerate (zero-width or undefined) interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import numpy as np


MIN_REPETITIONS = 5  # fewer per arm: no verdict
DEFAULT_RESAMPLES = 10_000
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

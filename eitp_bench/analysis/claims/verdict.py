"""A verdict and its six words: VERIFIED, REFUTED, INCONCLUSIVE, NOT MEASURED, NO DATA, NOT COMPARABLE
(judge.py says when each is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from eitp_bench.analysis.claims.registry import Claim


VERIFIED, REFUTED, INCONCLUSIVE = "VERIFIED", "REFUTED", "INCONCLUSIVE"
NOT_MEASURED, NO_DATA = "NOT MEASURED", "NO DATA"
NOT_COMPARABLE = "NOT COMPARABLE"


@dataclass
class Verdict:
    claim: Claim
    verdict: str
    reason: str
    ratio: Optional[float] = None  # kind ratio: candidate ÷ baseline; kind bound: median(measured − bound)
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    p_value: Optional[float] = None
    n_candidate: int = 0
    n_baseline: int = 0
    metric: Optional[str] = None  # the metric actually judged (resolves "@*")
    ci_method: Optional[str] = None
    gate: Optional[str] = None  # what the quality gate found, in words
    design: Optional[str] = None  # paired (by round), unpaired, counts, exact (deterministic metric)
    p_threshold: Optional[float] = None  # one-sided p against "does not clear the claim" (VERIFIED side)
    p_adjusted: Optional[float] = None  # Holm-adjusted across the claims of its family in this report
    family_size: int = 0
    plan: Optional[str] = None  # power-based advice for the next suite (never a reason to top up)
    provisional: bool = False  # the interval clears; Holm decides
    plan_inputs: Optional[tuple] = None  # (sd of a round's log-ratio, log estimate, log threshold)
    # energy claims on qualified runs: the residual systematic bound that widened the interval
    # {"systematic", "statistical_ci", "widened_ci", "rule", <arm>: {"lag_s", "window_s", "edges", "bias", "runs"}}
    resolution: Optional[dict] = None
    p_refute: Optional[float] = None  # one-sided p against "the claim holds" (REFUTED side; gate included)
    p_refute_adjusted: Optional[float] = None  # Holm-adjusted across the same family as p_adjusted
    provisional_refute: bool = False  # the interval falls short (or the gate is shown worse); Holm decides
    family: Optional[list] = None  # ids of the claims Holm adjusted across (both directions), this report
    # to-target claims: runs that did not reach the target, censored at their budget
    # {<candidate>: n, <baseline>: n, "both": rounds where both missed, "rounds": n}
    censored: Optional[dict] = None
    isolation: Optional[dict] = None  # energy claims: {arm: repetitions started beside other work}
    n_rounds: int = 0  # distinct rounds the verdict rests on (copies of a round stored twice count once)
    n_batches: int = 0  # batches that stored them (analysis/rounds.evidence)
    throttled: Optional[list] = None  # energy/speed claims: the throttled windows skipped (analysis/throttle.py)

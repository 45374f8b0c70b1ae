"""A claim's quality gate (non-inferiority of the candidate's quality) and the p-value a REFUTED verdict uses with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from eitp_bench.analysis.claims.registry import Claim
from eitp_bench.analysis.claims.samples import _paired


def _refute_p(p_short: Optional[float], gate: "GateResult") -> Optional[float]:
    """One-sided p against "the claim holds" (effect beyond the claimed value and quality within the gate):
    Bonferroni over its two parts when the claim has a quality gate that could be tested."""
    if p_short is None:
        return None
    if gate.p_worse is None:
        return p_short
    return min(1.0, 2 * min(p_short, gate.p_worse))


@dataclass
class GateResult:
    holds: Optional[bool]  # None: quality cannot be shown (missing data, degenerate interval)
    shown_worse: bool
    text: str
    p_worse: Optional[float] = None  # one-sided p against "quality within the gate"; None: no gate or untestable


def _check_gate(claim: Claim, metrics_df, *, paired: bool = True) -> GateResult:
    """Quality gates as non-inferiority: the gate holds when the upper confidence bound of the quality
    loss is below the allowed loss; it fails (REFUTED) only when even the lower bound exceeds it."""
    from eitp_bench.analysis import stats

    gate = claim.quality_gate
    if gate is None:
        return GateResult(True, False, "none")
    task = gate.task or claim.task
    rows = metrics_df if task is None else metrics_df[metrics_df["task"] == task]
    rows = rows[rows["name"] == gate.metric]
    if "status" in rows.columns:
        rows = rows[rows["status"] == "ok"]
    if gate.max_value is not None:
        arm = gate.arm or claim.candidate
        values = rows.loc[rows["arm"] == arm, "value"].to_numpy(dtype=float)
        if len(values) == 0:
            return GateResult(None, False, f"no {gate.metric} for {arm} (task {task})")
        med, lo, hi = stats.median_ci(values)
        text = f"median {gate.metric} of {arm} = {med:.3g}, 95 % interval [{lo:.3g}, {hi:.3g}] vs allowed {gate.max_value:g}"
        # sign test of "median ≤ allowed", the test behind the order-statistic interval: scipy's
        # binomtest(above, n, 0.5, alternative="greater") p-value is binom.sf(above − 1, n, 0.5)
        above = int((values > gate.max_value).sum())
        p_worse = stats.binom_sf(above - 1, len(values), 0.5)
        if hi < gate.max_value:
            return GateResult(True, False, f"{text}: upper bound below the allowed value", p_worse)
        worse = lo > gate.max_value
        why = "even the lower bound exceeds it" if worse else "upper bound not below it"
        return GateResult(False, worse, f"{text}: {why}", p_worse)
    cand = rows[rows["arm"] == claim.candidate]
    base = rows[rows["arm"] == claim.baseline]
    if cand.empty or base.empty:
        return GateResult(None, False, f"no {gate.metric} for both {claim.candidate} and {claim.baseline} (task {task})")
    if cand["value"].nunique() == 1 and base["value"].nunique() == 1:  # deterministic: compared exactly
        c, b = float(cand["value"].iloc[0]), float(base["value"].iloc[0])
        loss = (c / b - 1) if gate.direction == "lower_is_better" else (1 - c / b)
        text = (f"{gate.metric}: quality loss {100 * loss:+.2f} % (the same in every repetition: exact) vs allowed "
                f"{100 * gate.max_relative_loss:g} %")
        return GateResult(loss < gate.max_relative_loss, loss > gate.max_relative_loss, text,
                          0.0 if loss > gate.max_relative_loss else 1.0)
    pairs = _paired({claim.candidate: cand, claim.baseline: base}, claim) if paired else None
    if pairs is not None and len(pairs) >= stats.MIN_REPETITIONS:
        g = stats.non_inferiority(pairs["value_c"], pairs["value_b"], max_relative_loss=gate.max_relative_loss,
                                  direction=gate.direction, paired=True)
    else:
        g = stats.non_inferiority(cand["value"], base["value"], max_relative_loss=gate.max_relative_loss,
                                  direction=gate.direction, paired=False)
    return GateResult(g.holds, bool(g.shown_worse), f"{gate.metric}: {g.reason}",
                      g.p_worse if g.effect is not None else None)

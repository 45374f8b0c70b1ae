"""Caveats a verdict carries from the runs' conditions: what the measured joules cover (scope) and
whether the GPU was shared or the CPU busy (isolation).
"""

from __future__ import annotations

from eitp_bench.analysis.per_object import values_for
from eitp_bench.analysis.claims.verdict import INCONCLUSIVE, NOT_MEASURED, NO_DATA, Verdict


# ---------------------------------------------------------------- what the measured joules cover


def _scope_checks(v: Verdict, rows, energy_df) -> None:
    """MIG slices → NOT MEASURED; CPU work measured on GPUs only → INCONCLUSIVE; GPU-only totals and
    Grace Hopper scopes → named in the reason (analysis/instrument.energy_scope)."""
    from eitp_bench.analysis.instrument import energy_scope

    if v.metric is None or v.verdict in (NO_DATA, NOT_MEASURED):
        return
    task_rows = rows if v.claim.task is None else rows[rows["task"] == v.claim.task]
    arms = [a for a in (v.claim.candidate, v.claim.baseline) if a]
    named = task_rows[task_rows["arm"].isin(arms) & (task_rows["name"] == v.metric)]
    windows = set(named["window"].dropna()) if "window" in named.columns else set()
    scope = energy_scope(set(named["run_id"]), energy_df, windows)
    if scope["refuse"] or scope["inconclusive"]:
        why = "; ".join(scope["refuse"] or scope["inconclusive"])
        v.reason = f"{why}; the statistics would say {v.verdict}: {v.reason}"
        v.verdict = NOT_MEASURED if scope["refuse"] else INCONCLUSIVE
        v.provisional, v.p_threshold, v.plan_inputs, v.plan = False, None, None, None
        v.provisional_refute, v.p_refute = False, None  # out of both Holm families
    elif scope["notes"]:
        v.reason = f"{v.reason}; scope: {'; '.join(scope['notes'])}"


# ---------------------------------------------------------------- instrument and run conditions


def _isolation_caveat(v: Verdict, rows, conditions: dict) -> None:
    """Isolation caveats (runs started beside other work) named in an energy verdict and counted."""
    claim = v.claim
    if v.metric is None:
        return
    task_rows = rows if claim.task is None else rows[rows["task"] == claim.task]
    run_ids = {arm: set(task_rows.loc[(task_rows["arm"] == arm) & (task_rows["name"] == v.metric), "run_id"])
               for arm in (claim.candidate, claim.baseline)}
    found = {arm: values_for(conditions, ids) for arm, ids in run_ids.items()}  # a batch: a RunValues' lookup
    affected = {arm: sum(bool(c) for c in codes) for arm, codes in found.items()}
    if any(affected.values()):
        codes = sorted({c for per_run in found.values() for run_codes in per_run for c in run_codes or ()})
        v.isolation = affected
        v.reason = (f"{v.reason}; caveat: runs that started beside other work ({', '.join(codes)}): "
                    + ", ".join(f"{arm} {n} of {len(run_ids[arm])}" for arm, n in affected.items()))

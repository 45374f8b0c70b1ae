"""Which of a paper's claims a suite's plan can judge, and how many paired rounds Holm needs for them.

Read before anything runs (`run --dry-run`): a claim is judged when its candidate and baseline arms are in
the suite and so are the tasks its metric and quality gate come from (as analysis/findings.py selects the
claims of a group by its arms). Holm runs across each group (headline, ablation) of the judged claims, so
the rounds the plan needs are `stats.min_paired_rounds(len(judged claims of that group))`.
"""

from __future__ import annotations

from eitp_bench.analysis.stats import min_paired_rounds
from eitp_bench.suite import Suite


def _tasks_needed(claim) -> set[str]:
    tasks = {claim.task} if claim.task else set()
    gate = claim.quality_gate
    if gate is not None and (gate.task or claim.task):
        tasks.add(gate.task or claim.task)
    return tasks


def _named_by_suite(claim_id: str, suite_claims: list[str]) -> bool:
    """suite.claims names families (`inference_speedup` covers inference-speedup and -compressed)."""
    flat = claim_id.replace("-", "").replace("_", "")
    return any(flat.startswith(name.replace("_", "")) for name in suite_claims)


def claim_plan(suite: Suite, claim_set) -> dict:
    """{"groups": {group: {"judged": [ids], "not_judged": {id: why}, "rounds_needed": n, "rounds": suite.repetitions,
    "enough": bool}}, "unjudged_named": claims the suite's `claims:` key names that the plan cannot judge}."""
    arms, tasks = set(suite.arms), set(suite.tasks)
    out: dict = {}
    unjudged_named = []
    for claim in claim_set.claims:
        group = out.setdefault(claim.group, {"judged": [], "not_judged": {}})
        missing_arms = [a for a in (claim.candidate, claim.baseline) if a and a not in arms]
        missing_tasks = sorted(_tasks_needed(claim) - tasks)
        if missing_arms or missing_tasks:
            why = "; ".join(filter(None, [f"arm {', '.join(missing_arms)} not in the suite" if missing_arms else "",
                                          f"task {', '.join(missing_tasks)} not in the suite" if missing_tasks else ""]))
            group["not_judged"][claim.id] = why
            if _named_by_suite(claim.id, list(suite.claims)):
                unjudged_named.append(f"{claim.id}: {why}")
        else:
            group["judged"].append(claim.id)
    for group in out.values():  # noqa: B007
        n = len(group["judged"])
        group["rounds_needed"] = min_paired_rounds(n) if n else 0
        group["rounds"] = suite.repetitions
        group["enough"] = n == 0 or suite.repetitions >= group["rounds_needed"]
    return {"groups": out, "unjudged_named": unjudged_named}

"""The suite's own proof, per configuration × machine: the A/A check and the planted effect.

Both compare a control arm (suite/arms.CONTROL_ARMS) with the baseline it copies, run in the same
rounds, through the claims judge's own rules (`claims.judge_one`: paired by round, censored to-target
runs, counts as counts, measured joules only, the instrument bound on energy intervals).

A/A (`baseline-aa` is the baseline under a second name): one comparison per metric a claim of the
registry reads against the baseline (its metric and task). A metric *differs* when its two-sided
p-value, Holm-adjusted across the A/A metrics checked, is below α = 0.05 AND its 95 % interval for
the ratio excludes 1. Holm holds the chance that a machine with no setup difference fails at all at
≤ α, so a healthy machine passes at least 95 % of the time. A failed A/A check demotes every VERIFIED
or REFUTED verdict of its group to INCONCLUSIVE (`demote_on_aa_failure`): the setup itself makes
differences, so a difference between two arms says nothing about the arms.

Planted (`baseline-planted` is the baseline plus extra matrix products per forward pass, their whole
cost measured in every run by an A/B in the arm's own process: workloads/planted.py): the ratio each
planted run's own record implies from its planted share — training time 1 / (1 − share), generation
speed 1 − share — is set against the ratio the judge detects (the products' own seconds,
`*_product_share`, are shown beside it: they miss the after-effects the A/B sees). The effect is
*detected* when the interval excludes 1 on the planted side, and *within its interval* when that
interval meets the planted ratio's own interval: the planted ratio is the median over the planted
runs, each a measurement with its own spread, so it comes with a distribution-free ≥ 95 % interval
for that median (order statistics of the per-run ratios: `median_interval`), widened on each side
for the A/B's own method error (`ab_error`: what it misses of a baseline step matters more the larger
the planted share). Status: detected (every metric detected within its
interval), "detected, size off" (every metric detected, an interval misses its planted ratio), missed
(a metric not detected, or with the wrong sign), not checked. Training energy is checked for its
sign only: the planted products' own power is not metered apart, so their share of the joules is
not known.
"""

from __future__ import annotations

import math
from typing import Optional

from eitp_bench.suite.arms import AA_ARM, BASELINE_ARM, PLANTED_ARM

AA_ALPHA = 0.05
NOT_CHECKED_VERDICTS = ("NO DATA", "NOT MEASURED")
AA_RULE = ("a metric differs when its two-sided p, Holm-adjusted across the A/A metrics checked, is below 0.05 "
           "and its 95 % interval for the ratio excludes 1 (a machine with no setup difference passes ≥ 95 % "
           "of the time)")
# What the planted arm's A/B may miss of a baseline step, as a share of it. The A/B times a few warm steps
# of one batch after a lead-in, outside every window (workloads/planted.py); the run times every step of its
# own batches, the first with a fresh optimizer's state, with the window's reads and the evaluation
# snapshots between them. Those per-step costs are the same with and without the planted work, so the A/B
# overstates the run's ratio R by (1 + m)·R / (R + m): nothing at a small planted share, most at a large one.
# On the 2-core CPU at R ≈ 8.6 (planted_fraction 20) the A/B read 1.2-4.7 % above the ratio the judge
# detected (m ≈ 1.4-5.4 %, the largest where a load slowed the later rounds), with both intervals ±0.3-1 %
# wide: that method error alone called healthy runs "size off" (docs/self-checks.md).
PLANTED_AB_MISSED_STEP = 0.06
PLANTED_RULE = ("detected: the interval excludes 1 on the planted side; within its interval: it meets the interval "
                "(order statistics, ≥ 95 %) of the median ratio the planted runs' own A/B timings imply, widened "
                f"on each side by the A/B's method error, (1 + m)·R / (R + m) at a ratio R of times with m = "
                f"{PLANTED_AB_MISSED_STEP:g} of a baseline step it does not see (±5.3 % at 8.6×, ±1.1 % at 1.25×); "
                "energy: sign only")

# (task, metric the judge compares, the planted arm's share metric, how the share moves the metric)
PLANTED_METRICS = (
    ("train", "train_s", "planted_train_share", "time"),
    ("generate", "tokens_per_s", "planted_generate_share", "rate"),
    ("train", "train_joules", "planted_train_share", "energy"),
)


def self_checks(metrics, energy, claims, *, n_resamples: int = 10_000, seed: int = 0,
                instrument: Optional[dict] = None) -> dict:
    """{"aa": {...}, "planted": {...}} for the control arms present in this group's runs (a key is
    absent when its arm did not run)."""
    arms = set(map(str, metrics["arm"].unique())) if len(metrics) else set()
    out = {}
    if AA_ARM in arms and BASELINE_ARM in arms:
        out["aa"] = aa_check(metrics, energy, claims, n_resamples=n_resamples, seed=seed, instrument=instrument)
    if PLANTED_ARM in arms and BASELINE_ARM in arms:
        out["planted"] = planted_check(metrics, energy, n_resamples=n_resamples, seed=seed, instrument=instrument)
    return out


def _claim_list(claims) -> list:
    return list(getattr(claims, "claims", claims))


def aa_metrics(claims) -> list[tuple[Optional[str], str, list]]:
    """(task, metric, [claim ids]) for every metric a ratio claim reads against the baseline, once each."""
    seen: dict[tuple, list] = {}
    for c in _claim_list(claims):
        if c.kind == "ratio" and c.baseline == BASELINE_ARM:
            seen.setdefault((c.task, c.metric), []).append(c)
    return [(task, metric, cs) for (task, metric), cs in seen.items()]


def _control_claim(template, *, candidate: str, threshold: float, direction: str, kind_id: str):
    """The template claim's comparison (metric, task, energy, to-target, counts) for a control arm."""
    return template.model_copy(update=dict(
        id=f"{kind_id}:{template.task}:{template.metric}", candidate=candidate, baseline=BASELINE_ARM,
        threshold=threshold, direction=direction, quality_gate=None, learned=None, note=None, group="headline"))


def _num(x) -> Optional[float]:
    return None if x is None or not math.isfinite(x) else float(x)


def aa_check(metrics, energy, claims, *, n_resamples: int = 10_000, seed: int = 0,
             instrument: Optional[dict] = None) -> dict:
    from eitp_bench.analysis.claims import judge_one
    from eitp_bench.analysis.stats import LOG_TIE, holm

    rows = []
    for task, metric, cs in aa_metrics(claims):
        claim = _control_claim(cs[0], candidate=AA_ARM, threshold=1.0, direction=cs[0].direction, kind_id="aa")
        v = judge_one(claim, metrics, energy, n_resamples=n_resamples, seed=seed, instrument=instrument)
        row = {"task": task, "metric": v.metric or metric, "claims": [c.id for c in cs], "effect": _num(v.ratio),
               "ci": [_num(v.ci_low), _num(v.ci_high)] if v.ci_low is not None else None, "p": _num(v.p_value),
               "p_adjusted": None, "design": v.design, "n": v.n_candidate}
        identical = v.ratio is not None and math.isfinite(v.ratio) and v.ratio > 0 and abs(math.log(v.ratio)) <= LOG_TIE \
            and v.ci_low == v.ci_high
        if v.verdict in NOT_CHECKED_VERDICTS or v.p_value is None or not math.isfinite(v.p_value):
            row.update(result="not checked", why=f"{v.verdict}: {v.reason}")
        elif identical:  # every round gave the very same figure in both arms (a deterministic metric)
            row.update(result="no difference", why="identical in every round", p=1.0)
        else:
            row.update(result="pending", why=v.reason)
        rows.append(row)
    checked = [r for r in rows if r["result"] != "not checked"]
    for r, p_adj in zip(checked, holm([r["p"] for r in checked]) if checked else []):
        r["p_adjusted"] = float(p_adj)
        lo, hi = r["ci"] or (None, None)
        excludes_one = (lo is not None and lo > 1) or (hi is not None and hi < 1)
        if r["result"] == "pending":
            differs = p_adj < AA_ALPHA and excludes_one
            r["result"] = "differs" if differs else "no difference"
            r["why"] = "" if not differs else f"Holm-adjusted p = {p_adj:.2g} < {AA_ALPHA:g}, interval excludes 1"
    differ = [r for r in checked if r["result"] == "differs"]
    status = "failed" if differ else ("passed" if checked else "not checked")
    return {"arm": AA_ARM, "baseline": BASELINE_ARM, "status": status, "checked": len(checked), "metrics": len(rows),
            "differs": [r["metric"] for r in differ], "rows": rows, "rule": AA_RULE, "text": _aa_text(status, rows)}


def _effect_text(r: dict) -> str:
    ci = r.get("ci") or [None, None]
    interval = f" [{ci[0]:.4g}, {ci[1]:.4g}]" if None not in ci else ""
    return f"ratio {r['effect']:.4g}{interval}" if r.get("effect") is not None else "no effect"


def _aa_text(status: str, rows: list[dict]) -> str:
    checked = [r for r in rows if r["result"] != "not checked"]
    skipped = [r for r in rows if r["result"] == "not checked"]
    more = ""
    if skipped:
        more = f"; {len(skipped)} not checked ({', '.join(r['metric'] + ': ' + r['why'].split(':')[0] for r in skipped)})"
    if status == "not checked":
        return f"A/A check: no metric could be checked{more}"
    if status == "passed":
        return f"A/A check: no difference on {len(checked)}/{len(checked)} metrics (as expected){more}"
    differ = [r for r in checked if r["result"] == "differs"]
    return (f"A/A check FAILED: {len(differ)} of {len(checked)} metrics differ between two identical arms ("
            + "; ".join(f"{r['metric']} ({r['task']}), {_effect_text(r)}" for r in differ)
            + f"): every verdict of this group is INCONCLUSIVE{more}")


def aa_failure_reason(aa: dict) -> str:
    """'this machine's A/A check failed: <metric>, effect, interval' (every differing metric)."""
    differ = [r for r in aa["rows"] if r["result"] == "differs"]
    return "this machine's A/A check failed: " + "; ".join(
        f"{r['metric']} ({r['task']}), effect {_effect_text(r)}" for r in differ)


def demote_on_aa_failure(verdicts: list, aa: Optional[dict]) -> None:
    """A failed A/A check: every VERIFIED or REFUTED verdict becomes INCONCLUSIVE with the A/A finding as
    its reason (the others keep their verdict and carry the finding too)."""
    from eitp_bench.analysis.claims import INCONCLUSIVE, REFUTED, VERIFIED

    if not aa or aa.get("status") != "failed":
        return
    why = aa_failure_reason(aa)
    for v in verdicts:
        if v.verdict in (VERIFIED, REFUTED):
            v.reason = f"{why}: the setup itself makes differences; the statistics would say {v.verdict}: {v.reason}"
            v.verdict, v.plan = INCONCLUSIVE, None
        elif v.verdict == INCONCLUSIVE:
            v.reason = f"{why}; {v.reason}"


def planted_check(metrics, energy, *, n_resamples: int = 10_000, seed: int = 0,
                  instrument: Optional[dict] = None) -> dict:
    import numpy as np

    from eitp_bench.analysis.claims import Claim, judge_one

    ok = metrics[metrics["status"] == "ok"] if "status" in metrics.columns else metrics
    rows = []
    for task, metric, share_name, kind in PLANTED_METRICS:
        shares = ok.loc[(ok["arm"] == PLANTED_ARM) & (ok["task"] == task) & (ok["name"] == share_name), "value"]
        shares = shares.to_numpy(dtype=float)
        shares = shares[np.isfinite(shares) & (shares >= 0) & (shares < 1)]
        row = {"task": task, "metric": metric, "kind": kind, "planted_share": None, "planted": None,
               "planted_range": None, "planted_ci": None, "planted_allowed": None, "product_share": None,
               "effect": None, "ci": None, "detected": None, "covered": None}
        if len(shares) == 0:
            rows.append({**row, "result": "not checked", "why": f"no {share_name} recorded by {PLANTED_ARM}"})
            continue
        per_run = 1 / (1 - shares) if kind in ("time", "energy") else 1 - shares
        planted = float(np.median(per_run))
        product_name = share_name.replace("_share", "_product_share")
        products = ok.loc[(ok["arm"] == PLANTED_ARM) & (ok["task"] == task) & (ok["name"] == product_name),
                          "value"].to_numpy(dtype=float)
        products = products[np.isfinite(products)]
        interval = median_interval(per_run)
        row.update(planted_share=float(np.median(shares)), planted=planted,
                   planted_range=[float(per_run.min()), float(per_run.max())],
                   planted_ci=list(interval), planted_allowed=_widened(interval, kind),
                   product_share=float(np.median(products)) if len(products) else None)
        direction = "lower_is_better" if kind in ("time", "energy") else "higher_is_better"
        claim = Claim(id=f"planted:{task}:{metric}", quote="planted effect", paper_figure="", metric=metric, task=task,
                      candidate=PLANTED_ARM, baseline=BASELINE_ARM, direction=direction, threshold=planted,
                      energy=kind == "energy")
        v = judge_one(claim, metrics, energy, n_resamples=n_resamples, seed=seed, instrument=instrument)
        if v.verdict in NOT_CHECKED_VERDICTS or v.ci_low is None:
            rows.append({**row, "result": "not checked", "why": f"{v.verdict}: {v.reason}"})
            continue
        lo, hi = _num(v.ci_low), _num(v.ci_high)
        up = kind in ("time", "energy")  # the planted work makes time and joules larger, speed smaller
        detected = (lo is not None and lo > 1) if up else (hi is not None and hi < 1)
        p_lo, p_hi = row["planted_allowed"]
        covered = None if kind == "energy" else bool(lo is not None and hi is not None and lo <= p_hi and p_lo <= hi)
        row.update(effect=_num(v.ratio), ci=[lo, hi], detected=bool(detected), covered=covered, design=v.design,
                   n=v.n_candidate)
        if kind == "energy":
            result = "detected (sign)" if detected else "missed"
        else:
            result = ("detected within its interval" if detected and covered else
                      "detected, but its interval misses the planted ratio" if detected else "missed")
        rows.append({**row, "result": result, "why": v.reason})
    checked = [r for r in rows if r["result"] != "not checked"]
    if not checked:
        status = "not checked"
    elif not all(r["detected"] for r in checked):
        status = "missed"  # not seen, or seen with the wrong sign: this run lacks the power (or is biased)
    elif all(r["covered"] is not False for r in checked):
        status = "detected"
    else:  # seen, but a 95 % interval misses its planted ratio: about 1 healthy run in 10 over two metrics
        status = "detected, size off"
    return {"arm": PLANTED_ARM, "baseline": BASELINE_ARM, "status": status, "rows": rows, "rule": PLANTED_RULE,
            "text": _planted_text(status, rows)}


def median_interval(values, level: float = 0.95) -> tuple[float, float]:
    """A distribution-free interval for the median of the population `values` were drawn from: the
    order statistics x(k) and x(n+1−k) with the largest k whose coverage, 1 − 2·P(Binomial(n, ½) < k),
    is still ≥ `level` (7 runs: the whole range, 98.4 %; 9: the second-smallest to the second-largest,
    96.1 %). Below 6 values even the range covers less than 95 % (5: 93.8 %): then the range."""
    xs = sorted(float(v) for v in values)
    n = len(xs)
    k = 1
    while k < (n + 1) // 2 and 1 - 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n >= level:
        k += 1  # x(k+1) … x(n−k) still covers ≥ level
    return xs[k - 1], xs[n - k]


def ab_error(ratio: float, kind: str) -> float:
    """The factor by which the A/B may overstate a planted ratio: (1 + m)·R / (R + m), R the ratio of times
    (a rate's ratio inverted), m = PLANTED_AB_MISSED_STEP."""
    times = ratio if kind in ("time", "energy") else 1 / ratio
    m = PLANTED_AB_MISSED_STEP
    return (1 + m) * times / (times + m)


def _widened(interval: tuple[float, float], kind: str) -> list[float]:
    """The planted ratio's interval widened on each side by the A/B's method error at that end."""
    lo, hi = interval
    return [lo / ab_error(lo, kind), hi * ab_error(hi, kind)]


def _pct(ratio: Optional[float]) -> str:
    return "?" if ratio is None else f"{100 * (ratio - 1):+.1f} %"


def _planted_text(status: str, rows: list[dict]) -> str:
    parts = []
    for r in rows:
        if r["result"] == "not checked":
            continue
        ci = r["ci"] or [None, None]
        interval = f" [{_pct(ci[0])}, {_pct(ci[1])}]"
        pci = r.get("planted_ci") or [r["planted"], r["planted"]]
        spread = "" if pci[0] == pci[1] else f" [{_pct(pci[0])}, {_pct(pci[1])}]"
        if r["kind"] == "energy":
            planted = "sign only"
        else:  # with the A/B's method error, allowed on both sides
            planted = f"planted {_pct(r['planted'])}{spread} ±{100 * (ab_error(r['planted'], r['kind']) - 1):.1f} %"
        parts.append(f"{r['metric']} {planted}, detected {_pct(r['effect'])}{interval}: {r['result']}")
    if not parts:
        return "Planted effect: not checked (" + "; ".join(f"{r['metric']}: {r['why'][:80]}" for r in rows) + ")"
    head = {"detected": "Planted effect detected", "missed": "Planted effect MISSED",
            "detected, size off": "Planted effect detected, but not at its planted size"}[status]
    return f"{head}: " + "; ".join(parts)

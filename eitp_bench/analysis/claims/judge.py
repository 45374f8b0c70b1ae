"""The verdicts judged from measured samples: `judge_claims` (every claim of a set, Holm across them) and
`judge_one`.

A claim names a metric, a task, a candidate and a baseline arm, a direction and
a threshold (a ratio of medians), or — for bounds like Theorem 3 — a measured
metric that must stay within `epsilon` of a bound metric. Verdicts:

  VERIFIED      the whole CI clears the claimed value and the quality gate holds (Holm-adjusted one-sided p)
  REFUTED       the whole CI falls short, or the quality gate fails (Holm-adjusted across the same claims)
  INCONCLUSIVE  the CI straddles the claimed value (with an estimate of the reps needed)
  NOT MEASURED  an energy claim for which only estimated joules exist
  NO DATA       the metric is missing or there are fewer than 5 repetitions per arm
  NOT COMPARABLE the claim's arms trained with different settings (other than their loss)

Rules of a fair experiment, applied before any statistics:
- Equal settings: arms that differ in anything but the objective are NOT COMPARABLE.
- To-target claims: a repetition that does not reach the quality target within its step budget is
  censored there (its time or energy to target exceeds its budget), never dropped; the paired
  censored test bounds each round's ratio and takes the worst case per side (docs/statistics.md).
- Learned tasks: a long-range claim is judged only when the baseline has learned the task (its
  pooled accuracy at the longest distance is above chance by a 95 % Clopper–Pearson interval).
"""

from __future__ import annotations

from typing import Optional

from eitp_bench.analysis.claims.conditions import _isolation_caveat, _scope_checks
from eitp_bench.analysis.claims.effects import (
    _effect, _flip, _power_plan, _shifted_thresholds, _unbounded_side, _widened,
)
from eitp_bench.analysis.claims.gate import _check_gate, _refute_p
from eitp_bench.analysis.claims.registry import Claim, ClaimSet
from eitp_bench.analysis.claims.samples import (
    _FAULTY, _censored_counts, _censored_samples, _convergence, _device_note, _learned, _measured_only,
    _ok_rows, _paired, _resolve_metric, _target_refused, _too_few, _values,
)
from eitp_bench.analysis.claims.verdict import (
    INCONCLUSIVE, NOT_COMPARABLE, NOT_MEASURED, NO_DATA, REFUTED, VERIFIED, Verdict,
)


def judge_claims(metrics_df, energy_df, claims, *, settings: Optional[dict[str, dict]] = None,
                 n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05,
                 instrument: Optional[dict[str, dict]] = None,
                 conditions: Optional[dict[str, list[str]]] = None) -> list[Verdict]:
    """One verdict per claim from the store's metrics and energy frames (ok runs only).

    `settings` maps each arm to its effective training settings (suite.effective_settings): a claim
    whose arms differ in anything but the loss is NOT COMPARABLE, whatever its statistics say.
    `instrument` maps run_id → its sensor qualification (analysis/instrument.py): an energy claim's
    interval is widened by the residual systematic error of its windows before it is judged.
    `conditions` maps run_id → isolation codes: energy verdicts name the affected runs.
    """
    claim_list = claims.claims if isinstance(claims, ClaimSet) else list(claims)
    ok = _ok_rows(metrics_df)
    verdicts = [_judge_unthrottled(c, ok, energy_df, n_resamples=n_resamples, seed=seed, instrument=instrument or {})
                for c in claim_list]
    for v in verdicts:
        if v.claim.energy and v.claim.kind == "ratio" and conditions:
            _isolation_caveat(v, ok, conditions)
        if v.claim.energy:
            _scope_checks(v, ok, energy_df)
    for group in dict.fromkeys(v.claim.group for v in verdicts):
        _holm_family([v for v in verdicts if v.claim.group == group], alpha)
    return [_mark_not_comparable(v, settings) if settings else v for v in verdicts]


def judge_one(claim: Claim, metrics_df, energy_df, *, n_resamples: int = 10_000, seed: int = 0,
              instrument: Optional[dict[str, dict]] = None) -> Verdict:
    """One comparison judged alone by the same rules (pairing, censoring, counts, measured-only energy,
    instrument bound) with no Holm family and no settings check: analysis/self_check.py's A/A and
    planted comparisons, which read its effect, interval and two-sided p."""
    return _judge(claim, _ok_rows(metrics_df), energy_df, n_resamples=n_resamples, seed=seed,
                  instrument=instrument or {})


def _holm_family(family: list[Verdict], alpha: float) -> None:
    """Holm across the claims of one paper's family in one report, in both directions: a clearing
    interval becomes VERIFIED only if its one-sided p against the claimed value, adjusted, is below
    α/2; an interval that falls short (or a gate shown worse) becomes REFUTED only if its one-sided p
    against the claim holding, adjusted across the same claims, is below α/2. Each direction holds
    its family-wise error at α/2 (α for a wrong verdict of either kind). Also the power plan."""
    import math

    from eitp_bench.analysis.stats import holm

    tested = [v for v in family if v.p_threshold is not None and math.isfinite(v.p_threshold)]
    for v in family:  # a REFUTED with no p-value to adjust would escape the family: never
        if v.provisional_refute and v not in tested:
            v.verdict, v.provisional_refute = INCONCLUSIVE, False
            v.reason = f"{v.reason}; no one-sided p-value to adjust across the claims: not refuted"
    if not tested:
        return
    ids = [v.claim.id for v in tested]
    for v in tested:
        v.family = ids
    _holm_refute(tested, alpha)
    adjusted = holm([v.p_threshold for v in tested])
    for v, p_adj in zip(tested, adjusted):
        v.p_adjusted, v.family_size = float(p_adj), len(tested)
        if v.provisional:
            v.provisional = False
            if p_adj < alpha / 2:
                v.verdict = VERIFIED
                v.reason = f"{v.reason}; Holm-adjusted p = {p_adj:.2g} < {alpha / 2:g} across {len(tested)} claims"
            else:
                v.verdict = INCONCLUSIVE
                v.reason = (f"{v.reason}; but Holm-adjusted p = {p_adj:.2g} ≥ {alpha / 2:g} across {len(tested)} "
                            "claims: not enough repetitions to verify this many claims at once")
        if v.verdict == INCONCLUSIVE and v.plan_inputs:
            v.plan = _power_plan(*v.plan_inputs, alpha=alpha / len(tested))


def _holm_refute(tested: list[Verdict], alpha: float) -> None:
    """The REFUTED side of `_holm_family`: the same claims, the one-sided p against the claim holding."""
    from eitp_bench.analysis.stats import holm

    p = [v.p_refute if v.p_refute is not None else 1.0 for v in tested]
    for v, p_adj in zip(tested, holm(p)):
        v.p_refute_adjusted = float(p_adj)
        if not v.provisional_refute:
            continue
        v.provisional_refute = False
        if p_adj < alpha / 2:
            v.reason = f"{v.reason}; Holm-adjusted p = {p_adj:.2g} < {alpha / 2:g} across {len(tested)} claims"
        else:
            v.verdict = INCONCLUSIVE
            v.reason = (f"{v.reason}; but Holm-adjusted p against the claim = {p_adj:.2g} ≥ {alpha / 2:g} across "
                        f"{len(tested)} claims: not enough repetitions to refute this many claims at once")


def _mark_not_comparable(v: Verdict, settings: dict[str, dict]) -> Verdict:
    from eitp_bench.suite import unequal_settings

    arms = [a for a in (v.claim.candidate, v.claim.baseline) if a]
    if any(a not in settings for a in arms):
        return v
    differ = unequal_settings({a: settings[a] for a in arms})
    if not differ:
        return v
    what = "; ".join(f"{k}: " + ", ".join(f"{a} {val}" for a, val in vals.items()) for k, vals in differ.items())
    v.reason = f"arms trained with different settings ({what}); the statistics would say {v.verdict}: {v.reason}"
    v.verdict, v.plan = NOT_COMPARABLE, None
    return v


def _judge(claim: Claim, metrics_df, energy_df, *, n_resamples, seed, instrument=None) -> Verdict:
    rows = metrics_df if claim.task is None else metrics_df[metrics_df["task"] == claim.task]
    arms = [claim.candidate] + ([claim.baseline] if claim.kind == "ratio" else [])
    refused = _target_refused(rows[rows["arm"].isin(arms)], claim.task) if claim.to_target else None
    if refused:  # before anything else: with no target there is no time or energy to target to judge
        return Verdict(claim, INCONCLUSIVE, refused, metric=claim.metric)
    metric = _resolve_metric(claim.metric, rows, arms)
    if metric is None:
        return Verdict(claim, NO_DATA, f"no metric matching {claim.metric!r} in every arm ({', '.join(arms)})")
    samples = {arm: _values(rows, arm, metric) for arm in arms}

    converged_note = ""
    if claim.to_target and claim.kind == "ratio":
        stop, converged_note = _convergence(claim, rows, metric)
        if stop is not None:
            return stop
        samples = _censored_samples(claim, rows, metric, samples)
    if claim.energy:
        samples, not_measured, skipped_note = _measured_only(samples, rows, energy_df, metric)
        if not_measured:
            # too few steady figures left (windows or to-target segments flagged): a verdict would be
            # judged on figures that are not measurements; INCONCLUSIVE, not "unmeasured"
            kind = INCONCLUSIVE if not_measured.startswith(_FAULTY) else NOT_MEASURED
            return Verdict(claim, kind, not_measured, metric=metric,
                           n_candidate=len(samples[claim.candidate]),
                           n_baseline=len(samples[claim.baseline]) if claim.baseline else 0)
    else:
        skipped_note = ""

    if claim.kind == "bound":
        v = _judge_bound(claim, rows, samples[claim.candidate], metric, n_resamples, seed)
        v.reason = f"{v.reason}; {skipped_note}" if skipped_note else v.reason
        return v
    if claim.learned is not None:
        stop = _learned(claim, rows, metric)
        if stop is not None:
            return stop
    systematic = None
    if claim.energy and instrument:
        from eitp_bench.analysis.instrument import systematic_bound

        systematic = systematic_bound(claim, rows, energy_df, metric, samples, instrument)
    v = _judge_ratio(claim, metrics_df, rows, samples, metric, n_resamples, seed, systematic=systematic)
    if claim.to_target:
        v.censored = _censored_counts(claim, samples)
    notes = [n for n in (skipped_note, converged_note, _device_note(claim, rows), claim.note) if n]
    if notes:
        v.reason = f"{v.reason}; {'; '.join(notes)}"
    return v


def _judge_ratio(claim, metrics_df, rows, samples, metric, n_resamples, seed, *, systematic=None) -> Verdict:
    """The interval (widened by `systematic`, an energy claim's residual instrument bound) against the
    claim: VERIFIED/REFUTED are provisional here, `_holm_family` decides both across the claims."""
    import dataclasses
    import math

    from eitp_bench.analysis import stats

    cand, base = samples[claim.candidate]["value"], samples[claim.baseline]["value"]
    short = _too_few(claim, metric, {claim.candidate: len(cand), claim.baseline: len(base)})
    if short:
        return short
    t, direction = claim.threshold, claim.direction
    delta = systematic["systematic"] if systematic else 0.0
    t_verify, t_refute = _shifted_thresholds(t, direction, delta)
    pairs = _paired(samples, claim)
    try:
        eff, design = _effect(claim, rows, samples, metric, n_resamples, seed, t_verify, direction, pairs=pairs)
        p_short = _effect(claim, rows, samples, metric, n_resamples, seed, t_refute, _flip(direction),
                          pairs=pairs)[0].p_threshold
    except ValueError as err:
        return Verdict(claim, NO_DATA, f"{metric}: {err}", metric=metric,
                       n_candidate=len(cand), n_baseline=len(base))
    statistical = (eff.ci_low, eff.ci_high)
    eff = _widened(eff, delta)
    v = Verdict(claim, INCONCLUSIVE, "", eff.ratio, eff.ci_low, eff.ci_high, eff.p_value,
                eff.n_candidate, eff.n_baseline, metric=metric, ci_method=eff.ci_method, design=design,
                p_threshold=eff.p_threshold)
    gate = _check_gate(claim, metrics_df, paired=design != "unpaired (rounds could not be paired)")
    v.gate = gate.text
    v.p_refute = _refute_p(p_short, gate)
    cover = f"{100 * eff.confidence:.4g} %" if getattr(eff, "confidence", None) else "95 %"
    widened = f", widened by ±{100 * delta:.2g} % instrument bound" if delta else ""
    ci_text = (f"ratio {eff.ratio:.3g} [{eff.ci_low:.3g}, {eff.ci_high:.3g}] ({cover}, {design}{widened}) "
               f"vs claimed {claim.claimed}")
    note = f" ({eff.note})" if eff.note else ""
    if systematic:  # an open side (censored runs) is null: JSON has no infinity
        def finite(x):
            return x if math.isfinite(x) and x > 0 else None

        v.resolution = {**systematic, "statistical_ci": [finite(x) for x in statistical],
                        "widened_ci": [finite(eff.ci_low), finite(eff.ci_high)]}
    unbounded = _unbounded_side(eff)
    if eff.degenerate:
        v.reason = f"the interval is degenerate ({eff.reason}): {ci_text}; a degenerate interval never verifies{note}"
    elif gate.shown_worse:
        v.verdict, v.provisional_refute = REFUTED, True
        v.reason = f"quality gate failed: {gate.text}; {ci_text}"
    elif stats.falls_short(eff, t, direction):
        v.verdict, v.provisional_refute = REFUTED, True
        v.reason = f"whole interval falls short: {ci_text}{note}"
    elif stats.clears(eff, t, direction) and gate.holds:
        v.provisional, v.verdict = True, VERIFIED
        v.reason = f"whole interval clears the claim: {ci_text}; quality gate: {gate.text}{note}"
    elif stats.clears(eff, t, direction):  # a gain of unshown quality is not a verified gain
        v.reason = f"the interval clears the claim but quality is not shown: {gate.text}{note}"
    elif unbounded:
        v.reason = f"the interval is unbounded on the side that would decide ({unbounded}): {ci_text}{note}"
    else:
        v.reason = f"the interval straddles the claimed value: {ci_text}{note}"
    sd = getattr(eff, "sd_log", float("nan"))
    if not eff.degenerate and eff.ratio > 0 and math.isfinite(eff.ratio) and math.isfinite(sd):
        v.plan_inputs = (sd, math.log(eff.ratio), math.log(t))  # also for a verdict Holm may turn INCONCLUSIVE
        if v.verdict == INCONCLUSIVE:
            v.plan = _power_plan(*v.plan_inputs, alpha=0.05)  # refined for the family size by _holm_family
    bare = dataclasses.replace(eff, ci_low=statistical[0], ci_high=statistical[1])
    decided_without_bound = stats.clears(bare, t, direction) or stats.falls_short(bare, t, direction)
    if delta and v.verdict == INCONCLUSIVE and decided_without_bound:
        v.plan_inputs = None  # more repetitions do not shrink a systematic bound: longer windows do
        v.plan = (f"next suite: longer energy windows (the instrument's residual bound ±{100 * delta:.2g} % decides "
                  "here, and it shrinks as 1/window)")
    return v


def _judge_bound(claim, rows, cand, metric, n_resamples, seed) -> Verdict:
    from eitp_bench.analysis.stats import median_difference_effect

    bound = _values(rows, claim.candidate, claim.bound_metric)
    paired = cand.merge(bound[["run_id", "value"]], on="run_id", suffixes=("", "_bound"))
    short = _too_few(claim, f"{metric} with {claim.bound_metric}", {claim.candidate: len(paired)})
    if short:
        return short
    diff = paired["value"] - paired["value_bound"]
    eff = median_difference_effect(diff, n_resamples=n_resamples, seed=seed)
    eps = claim.epsilon
    v = Verdict(claim, INCONCLUSIVE, "", eff.ratio, eff.ci_low, eff.ci_high, eff.p_value, eff.n_candidate, 0,
                metric=metric, ci_method=eff.ci_method)
    # one-sided signed-rank p-values against ε, so Holm adjusts bound claims with the others
    from eitp_bench.analysis.stats import signed_rank_p_ties

    excess = diff.to_numpy(dtype=float) - eps
    v.p_threshold, v.p_refute = signed_rank_p_ties(excess, "less"), signed_rank_p_ties(excess, "greater")
    text = (f"median {metric} − {claim.bound_metric} = {eff.ratio:.4g} [{eff.ci_low:.4g}, {eff.ci_high:.4g}]"
            f" vs ε = {eps:g}")
    if eff.degenerate:
        v.reason = f"the interval is degenerate ({eff.reason}): {text}"
    elif eff.ci_high <= eps:
        v.verdict, v.provisional, v.reason = VERIFIED, True, f"whole CI within the bound: {text}"
    elif eff.ci_low > eps:
        v.verdict, v.provisional_refute, v.reason = REFUTED, True, f"whole CI above the bound: {text}"
    else:
        v.reason = f"the interval straddles the bound: {text}"
    return v


# ---------------------------------------------------------------- throttled GPUs


def _judge_unthrottled(claim: Claim, rows, energy_df, **kw) -> Verdict:
    """Energy and speed claims skip the runs whose window ran power- or thermal-capped beyond
    gpu_state.THROTTLE_SHARE of its time, and name those windows (analysis/throttle.py)."""
    from eitp_bench.analysis.throttle import describe, throttled_windows, touches_speed

    if not (claim.energy or touches_speed(claim.metric)):
        return _judge(claim, rows, energy_df, **kw)
    arms = [a for a in (claim.candidate, claim.baseline) if a]
    hits = throttled_windows(rows, energy_df, claim.task, arms, claim.metric)
    if not hits:
        return _judge(claim, rows, energy_df, **kw)
    v = _judge(claim, rows[~rows["run_id"].isin({h["run_id"] for h in hits})], energy_df, **kw)
    v.throttled = hits
    v.reason = (f"{v.reason}; skipped {len({h['run_id'] for h in hits})} run(s) whose GPU was throttled: "
                f"{describe(hits)}")
    return v

"""The claims registry (YAML data) and the verdicts judged from measured samples.

A claim names a metric, a task, a candidate and a baseline arm, a direction and
a threshold (a ratio of medians), or — for bounds like Theorem 3 — a measured
metric that must stay within `epsilon` of a bound metric. Verdicts:

  VERIFIED      the whole CI clears the claimed value and the quality gate holds
  REFUTED       the whole CI falls short, or the quality gate fails
  INCONCLUSIVE  the CI straddles the claimed value (with an estimate of the reps needed)
  NOT MEASURED  an energy claim for which only estimated joules exist
  NO DATA       the metric is missing or there are fewer than 5 repetitions per arm
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eitp_bench.errors import UserError
from eitp_bench.records import MEASURED_METHODS

VERIFIED, REFUTED, INCONCLUSIVE = "VERIFIED", "REFUTED", "INCONCLUSIVE"
NOT_MEASURED, NO_DATA = "NOT MEASURED", "NO DATA"

Direction = Literal["higher_is_better", "lower_is_better"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QualityGate(_Model):
    """Either an absolute cap on a metric (`max_value`) or a maximum relative loss against the baseline."""

    metric: str
    task: Optional[str] = None  # default: the claim's task
    arm: Optional[str] = None  # for max_value: whose metric (default: the candidate)
    direction: Optional[Direction] = None  # for max_relative_loss: which way is better
    max_relative_loss: Optional[float] = Field(default=None, ge=0)
    max_value: Optional[float] = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.max_relative_loss is None) == (self.max_value is None):
            raise ValueError("give exactly one of max_relative_loss or max_value")
        if self.max_relative_loss is not None and self.direction is None:
            raise ValueError("max_relative_loss needs a direction (higher_is_better or lower_is_better)")
        return self


class Claim(_Model):
    id: str
    quote: str  # the paper's wording
    paper_figure: str
    metric: str  # may end in "@*": the largest numeric suffix present is used
    task: Optional[str] = None
    candidate: str
    baseline: Optional[str] = None
    kind: Literal["ratio", "bound"] = "ratio"
    direction: Optional[Direction] = None
    threshold: Optional[float] = Field(default=None, gt=0)
    bound_metric: Optional[str] = None  # kind: bound
    epsilon: Optional[float] = Field(default=None, ge=0)  # kind: bound, absolute units of `metric`
    quality_gate: Optional[QualityGate] = None
    energy: bool = False
    note: Optional[str] = None  # a fact the reader needs beside the verdict (shown under the claim)

    @model_validator(mode="after")
    def _complete(self):
        if self.kind == "ratio":
            missing = [f for f in ("baseline", "direction", "threshold") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a ratio claim needs {', '.join(missing)}")
        else:
            missing = [f for f in ("bound_metric", "epsilon") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a bound claim needs {', '.join(missing)}")
        return self

    @property
    def claimed(self) -> str:
        if self.kind == "bound":
            return f"{self.metric} − {self.bound_metric} ≤ {self.epsilon:g}"
        op = "≥" if self.direction == "higher_is_better" else "≤"
        return f"{op} {self.threshold:g}×"


class ClaimSet(_Model):
    paper: str
    claims: list[Claim]

    @model_validator(mode="after")
    def _unique_ids(self):
        ids = [c.id for c in self.claims]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate claim ids: {', '.join(dupes)}")
        return self


def load_claims(path_or_name: str | Path = "eitp") -> ClaimSet:
    """Load a claims file by path, or by name from the package's claims/ folder ("eitp")."""
    path = Path(path_or_name)
    if path.is_file():
        text, where = path.read_text(), str(path)
    else:
        resource = resources.files("eitp_bench") / "claims" / f"{path_or_name}.yaml"
        if not resource.is_file():
            known = sorted(p.name[:-5] for p in (resources.files("eitp_bench") / "claims").iterdir()
                           if p.name.endswith(".yaml"))
            raise UserError(
                f"claims file {path_or_name!r} not found (neither a file nor a built-in name)",
                fix=f"give a path to a claims YAML or one of: {', '.join(known) or 'none'}",
            )
        text, where = resource.read_text(), f"eitp_bench/claims/{path_or_name}.yaml"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"{where}: not valid YAML ({err})", fix="fix the YAML syntax at the line shown") from None
    try:
        return ClaimSet.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()
        )
        raise UserError(f"{where}: invalid claims file: {problems}",
                        fix="see the schema at the top of eitp_bench/claims/eitp.yaml") from None


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
    reps_needed: Optional[int] = None
    metric: Optional[str] = None  # the metric actually judged (resolves "@*")
    ci_method: Optional[str] = None
    gate: Optional[str] = None  # what the quality gate found, in words


# ---------------------------------------------------------------- judging


def judge_claims(metrics_df, energy_df, claims, *, n_resamples: int = 10_000, seed: int = 0) -> list[Verdict]:
    """One verdict per claim from the store's metrics and energy frames (ok runs only)."""
    claim_list = claims.claims if isinstance(claims, ClaimSet) else list(claims)
    ok = _ok_rows(metrics_df)
    return [_judge(c, ok, energy_df, n_resamples=n_resamples, seed=seed) for c in claim_list]


def _ok_rows(df):
    return df[df["status"] == "ok"] if "status" in df.columns else df


def _resolve_metric(pattern: str, rows, arms: list[str]) -> Optional[str]:
    """An exact name, or for "name@*" the largest numeric suffix present in every arm."""
    if not pattern.endswith("@*"):
        return pattern
    common = None
    for arm in arms:
        names = set(rows.loc[rows["arm"] == arm, "name"].unique())
        names = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
        common = names if common is None else common & names
    numbered = [(float(m.group(1)), n) for n in common or () if (m := re.search(r"@([0-9.]+)$", n))]
    return max(numbered)[1] if numbered else None


def _values(rows, arm, metric):
    sel = rows[(rows["arm"] == arm) & (rows["name"] == metric)]
    return sel[["run_id", "value", "window"]] if "window" in sel.columns else sel[["run_id", "value"]]


def _judge(claim: Claim, metrics_df, energy_df, *, n_resamples, seed) -> Verdict:
    rows = metrics_df if claim.task is None else metrics_df[metrics_df["task"] == claim.task]
    arms = [claim.candidate] + ([claim.baseline] if claim.kind == "ratio" else [])
    metric = _resolve_metric(claim.metric, rows, arms)
    if metric is None:
        return Verdict(claim, NO_DATA, f"no metric matching {claim.metric!r} in every arm ({', '.join(arms)})")
    samples = {arm: _values(rows, arm, metric) for arm in arms}

    if claim.energy:
        samples, not_measured = _measured_only(samples, rows, energy_df, metric)
        if not_measured:
            return Verdict(claim, NOT_MEASURED, not_measured, metric=metric,
                           n_candidate=len(samples[claim.candidate]),
                           n_baseline=len(samples[claim.baseline]) if claim.baseline else 0)

    if claim.kind == "bound":
        return _judge_bound(claim, rows, samples[claim.candidate], metric, n_resamples, seed)
    return _judge_ratio(claim, metrics_df, samples, metric, n_resamples, seed)


def _too_few(claim, metric, counts: dict[str, int]) -> Optional[Verdict]:
    from eitp_bench.stats import MIN_REPETITIONS

    short = {a: n for a, n in counts.items() if n < MIN_REPETITIONS}
    if not short:
        return None
    what = ", ".join(f"{a} n={n}" for a, n in counts.items())
    reason = (f"too few repetitions for {metric} ({what}); a verdict needs ≥{MIN_REPETITIONS} per arm"
              if any(counts.values()) else f"no {metric} values for {', '.join(counts)} (task {claim.task})")
    values = list(counts.values())
    return Verdict(claim, NO_DATA, reason, metric=metric, n_candidate=values[0],
                   n_baseline=values[1] if len(values) > 1 else 0)


def _judge_ratio(claim, metrics_df, samples, metric, n_resamples, seed) -> Verdict:
    from eitp_bench.stats import ratio_effect, reps_needed

    cand, base = samples[claim.candidate]["value"], samples[claim.baseline]["value"]
    short = _too_few(claim, metric, {claim.candidate: len(cand), claim.baseline: len(base)})
    if short:
        return short
    try:
        eff = ratio_effect(cand, base, n_resamples=n_resamples, seed=seed)
    except ValueError as err:
        return Verdict(claim, NO_DATA, f"{metric}: {err}", metric=metric,
                       n_candidate=len(cand), n_baseline=len(base))
    v = Verdict(claim, INCONCLUSIVE, "", eff.ratio, eff.ci_low, eff.ci_high, eff.p_value,
                eff.n_candidate, eff.n_baseline, metric=metric, ci_method=eff.ci_method)
    t = claim.threshold
    higher = claim.direction == "higher_is_better"
    clears = eff.ci_low >= t if higher else eff.ci_high <= t
    short_of = eff.ci_high < t if higher else eff.ci_low > t
    gate_ok, v.gate = _check_gate(claim, metrics_df)
    ci_text = f"ratio {eff.ratio:.3g} [{eff.ci_low:.3g}, {eff.ci_high:.3g}] vs claimed {claim.claimed}"
    note = f" ({eff.note})" if eff.note else ""
    if gate_ok is False:
        v.verdict, v.reason = REFUTED, f"quality gate failed: {v.gate}; {ci_text}"
    elif short_of:
        v.verdict, v.reason = REFUTED, f"whole CI falls short: {ci_text}{note}"
    elif clears and gate_ok:
        v.verdict, v.reason = VERIFIED, f"whole CI clears the claim: {ci_text}; quality gate: {v.gate}{note}"
    elif clears:  # gate data missing: a gain of unknown quality is not a verified gain
        v.reason = f"CI clears the claim but the quality gate cannot be checked: {v.gate}{note}"
    else:
        n = min(eff.n_candidate, eff.n_baseline)
        v.reps_needed = reps_needed(n, eff.ci_low, eff.ci_high, eff.ratio, t)
        more = (f"~{v.reps_needed} repetitions per arm would likely settle it (estimate, CI width ∝ 1/√n)"
                if v.reps_needed else "the estimate sits on the claimed value; more repetitions will not settle it")
        v.reason = f"CI straddles the claimed value: {ci_text}; {more}{note}"
    return v


def _judge_bound(claim, rows, cand, metric, n_resamples, seed) -> Verdict:
    from eitp_bench.stats import median_difference_effect, reps_needed

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
    text = (f"median {metric} − {claim.bound_metric} = {eff.ratio:.4g} [{eff.ci_low:.4g}, {eff.ci_high:.4g}]"
            f" vs ε = {eps:g}")
    if eff.ci_high <= eps:
        v.verdict, v.reason = VERIFIED, f"whole CI within the bound: {text}"
    elif eff.ci_low > eps:
        v.verdict, v.reason = REFUTED, f"whole CI above the bound: {text}"
    else:
        v.reps_needed = reps_needed(eff.n_candidate, eff.ci_low, eff.ci_high, eff.ratio, eps)
        v.reason = f"CI straddles the bound: {text}; ~{v.reps_needed} repetitions would likely settle it (estimate)"
    return v


def _check_gate(claim: Claim, metrics_df) -> tuple[Optional[bool], str]:
    """(True/False, description) — or (None, why) when the gate's data is missing. No gate: (True, 'none')."""
    import numpy as np

    gate = claim.quality_gate
    if gate is None:
        return True, "none"
    task = gate.task or claim.task
    rows = metrics_df if task is None else metrics_df[metrics_df["task"] == task]
    rows = rows[rows["name"] == gate.metric]
    if gate.max_value is not None:
        arm = gate.arm or claim.candidate
        values = rows.loc[rows["arm"] == arm, "value"]
        if values.empty:
            return None, f"no {gate.metric} for {arm} (task {task})"
        med = float(np.median(values))
        ok = med <= gate.max_value
        return ok, f"median {gate.metric} of {arm} = {med:.3g} ({'≤' if ok else '>'} {gate.max_value:g})"
    cand = rows.loc[rows["arm"] == claim.candidate, "value"]
    base = rows.loc[rows["arm"] == claim.baseline, "value"]
    if cand.empty or base.empty:
        return None, f"no {gate.metric} for both {claim.candidate} and {claim.baseline} (task {task})"
    c, b = float(np.median(cand)), float(np.median(base))
    if b == 0:
        return None, f"baseline median {gate.metric} is 0"
    loss = (c / b - 1) if gate.direction == "lower_is_better" else (1 - c / b)
    ok = loss <= gate.max_relative_loss
    return ok, (f"{gate.metric} {c:.4g} vs {b:.4g}: {100 * loss:+.2f} % quality loss "
                f"({'≤' if ok else '>'} {100 * gate.max_relative_loss:g} %)")


def _measured_only(samples: dict, rows, energy_df, metric: str):
    """Keep runs whose energy in the metric's window was measured; explain when too few were.

    Looks at every run of each arm in the claim's task, not only those carrying the metric: workloads
    store estimated joules under `<metric>_estimated`, so an estimate-only run has no `<metric>` at all.
    """
    from eitp_bench.stats import MIN_REPETITIONS

    keep, unmeasured_runs, explanations = {}, {}, set()
    for arm, df in samples.items():
        arm_rows = rows[rows["arm"] == arm]
        run_ids = set(arm_rows["run_id"])
        named = arm_rows[arm_rows["name"].isin([metric, f"{metric}_estimated"])]
        windows = set(named["window"].dropna()) if "window" in named.columns else set()
        e = energy_df[energy_df["run_id"].isin(run_ids)] if energy_df is not None and len(energy_df) else None
        measured_ids = set()
        if e is not None:
            if windows:
                e = e[e["window"].isin(windows)]
            valid = e[e["method"].isin(MEASURED_METHODS) & e["joules"].notna()]
            measured_ids = set(valid["run_id"])
            # Why measured joules were missing: flags on the unmeasured runs' entries and the meters used.
            cols = [c for c in ("meter", "device", "domain", "method", "flags") if c in e.columns]
            unmeasured = e.loc[~e["run_id"].isin(measured_ids), cols].fillna("").astype(str).drop_duplicates()
            for row in unmeasured.to_dict("records"):  # a few distinct rows, even for thousands of runs
                flags = [f for f in row.get("flags", "").split(";") if f]
                detail = f"{row['meter']} {row['device']}/{row['domain']} ({row['method']})"
                explanations.add(f"{detail}: {'; '.join(flags)}" if flags else detail)
        keep[arm] = df[df["run_id"].isin(measured_ids)]
        unmeasured_runs[arm] = len(run_ids - measured_ids)
    if any(len(df) < MIN_REPETITIONS and unmeasured_runs[arm] for arm, df in keep.items()):
        counts = ", ".join(f"{arm}: {len(keep[arm])} measured, {unmeasured_runs[arm]} without measured joules"
                           for arm in keep)
        why = "; ".join(sorted(explanations)[:6]) or "no energy entries recorded for these runs"
        return keep, (f"energy claim judged on measured joules only, but {metric} has too few measured runs "
                      f"({counts}); entries: {why}")
    return keep, None

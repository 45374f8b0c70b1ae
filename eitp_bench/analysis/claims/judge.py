"""The claims registry (YAML data) and the verdicts judged from measured samples.

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

import fnmatch
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eitp_bench import names
from eitp_bench.errors import UserError
from eitp_bench.analysis.resultset import faulty_figures, measured_only

VERIFIED, REFUTED, INCONCLUSIVE = "VERIFIED", "REFUTED", "INCONCLUSIVE"
NOT_MEASURED, NO_DATA = "NOT MEASURED", "NO DATA"
NOT_COMPARABLE = "NOT COMPARABLE"

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


class LearnedGate(_Model):
    """The baseline must have learned the task: pooled accuracy at the longest distance above chance."""

    metric: str  # e.g. retrieval_acc@* (the longest distance is used)
    count_prefix: str  # e.g. retrieval_n@: queries per distance, to pool accuracies as counts
    chance_metric: str  # e.g. retrieval_chance


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
    to_target: bool = False  # the metric exists only for repetitions that reached the quality target
    learned: Optional[LearnedGate] = None
    count_metric: Optional[str] = None  # queries behind an accuracy: judged as counts (k = value × n)
    group: Literal["headline", "ablation"] = "headline"
    component: Optional[str] = None  # ablation: the EIT-P term the arm keeps
    aspect: Optional[str] = None  # ablation: speed, energy or accuracy
    note: Optional[str] = None  # shown with the verdict (e.g. where each arm ran)

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
    n_batches: int = 0  # batches that stored them (analysis/resultset.evidence)
    throttled: Optional[list] = None  # energy/speed claims: the throttled windows skipped (analysis/throttle.py)


# ---------------------------------------------------------------- judging


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
    cols = ["run_id", "value"] + [c for c in ("window", *ROUND_KEYS) if c in sel.columns]
    return sel[cols]


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


def convergence_counts(rows, task: Optional[str] = None) -> dict[str, tuple[int, int]]:
    """{arm: (repetitions that reached the quality target, repetitions with a target)}."""
    sel = rows[rows["name"] == "target_reached"]
    if task is not None and "task" in sel.columns:
        sel = sel[sel["task"] == task]
    return {str(arm): (int((g["value"] > 0.5).sum()), len(g)) for arm, g in sel.groupby("arm")}


def _convergence(claim: Claim, rows, metric: str) -> tuple[Optional[Verdict], str]:
    """To-target claims: (NO DATA when no quality target was recorded, else None; a note with the counts).

    No share-converged threshold: runs that missed the target are censored at their budget
    (`_censored_samples`), and the paired censored test decides."""
    counts = convergence_counts(rows, claim.task)
    cand, base = counts.get(claim.candidate), counts.get(claim.baseline)
    if not base or not cand:
        return Verdict(claim, NO_DATA, "no quality target was recorded for these arms (set train.target_val_loss, "
                       "or train.target_excess_nats on the Markov corpus)", metric=metric), ""
    text = (f"reached the target in {cand[0]} of {cand[1]} repetitions ({claim.candidate}) and {base[0]} of "
            f"{base[1]} ({claim.baseline})")
    if cand[0] == cand[1] and base[0] == base[1]:
        return None, text
    return None, f"{text}; runs that missed it are censored at their budget (+∞ to target), not dropped"


# A to-target figure and what its run had in all: a run that missed the target needed more than this.
CENSOR_BUDGETS = {"time_to_target_s": "train_s", "joules_to_target": "train_joules", "steps_to_target": "steps"}


def _censored_samples(claim: Claim, rows, metric: str, samples: dict) -> dict:
    """Each arm's to-target values plus one +∞ row per run that missed the target, with a `budget`
    column (the run's whole training time/energy/steps: the figure it would have exceeded; NaN when
    not recorded, which leaves that side of its round's ratio unbounded)."""
    import numpy as np
    import pandas as pd

    budget_name = CENSOR_BUDGETS.get(metric)
    out = {}
    for arm, df in samples.items():
        arm_rows = rows[rows["arm"] == arm]
        reached = arm_rows[arm_rows["name"] == "target_reached"]
        missed = reached[(reached["value"] <= 0.5) & ~reached["run_id"].isin(df["run_id"])]
        missed = missed[[c for c in df.columns if c in missed.columns]].assign(value=np.inf)
        full = df if missed.empty else pd.concat([df, missed], ignore_index=True)
        budget = arm_rows[arm_rows["name"] == budget_name][["run_id", "value"]] if budget_name else None
        if budget is not None and len(budget):
            budget = budget.drop_duplicates("run_id").rename(columns={"value": "budget"})
            full = full.merge(budget, on="run_id", how="left")
        else:
            full = full.assign(budget=np.nan)
        out[arm] = full
    return out


def _censored_counts(claim: Claim, samples: dict) -> dict:
    """{candidate: censored runs, baseline: censored runs, "both": rounds both missed, "rounds": rounds}."""
    import numpy as np

    counts = {arm: int(np.isposinf(samples[arm]["value"].to_numpy(dtype=float)).sum())
              for arm in (claim.candidate, claim.baseline)}
    pairs = _paired(samples, claim)
    if pairs is not None:
        both = np.isposinf(pairs["value_c"].to_numpy(dtype=float)) & np.isposinf(pairs["value_b"].to_numpy(dtype=float))
        counts.update(both=int(both.sum()), rounds=len(pairs))
    return counts


def _target_refused(rows, task: Optional[str]) -> Optional[str]:
    """Why the runs recorded no time to target because the target was no target (workloads.tasks.checked_target)."""
    if "flags" not in rows.columns:
        return None
    sel = rows[(rows["name"] == "target_val_loss")
               & rows["flags"].map(lambda codes: "target_not_below_zero_shot" in (codes or ()))]
    if task is not None and "task" in sel.columns:
        sel = sel[sel["task"] == task]
    if sel.empty:
        return None
    messages = sel["flag_messages"].iloc[0] if "flag_messages" in sel.columns else None
    codes = list(sel["flags"].iloc[0])
    detail = messages[codes.index("target_not_below_zero_shot")] if messages is not None else ""
    return (f"the quality target is not below the untrained model's loss in {len(sel)} repetition(s), so no time "
            f"or energy to target was recorded: {detail}")


def _learned(claim: Claim, rows, metric: str) -> Optional[Verdict]:
    """INCONCLUSIVE unless the baseline learned the task (pooled accuracy above chance, 95 % Clopper–Pearson)."""
    import numpy as np
    from scipy.stats import beta

    gate = claim.learned
    base_rows = rows[rows["arm"] == claim.baseline]
    acc_name = _resolve_metric(gate.metric, rows, [claim.baseline])
    if acc_name is None:
        return Verdict(claim, NO_DATA, f"no {gate.metric} for {claim.baseline}", metric=metric)
    suffix = acc_name.rsplit("@", 1)[-1]
    acc = base_rows[base_rows["name"] == acc_name][["run_id", "value"]]
    n = base_rows[base_rows["name"] == f"{gate.count_prefix}{suffix}"][["run_id", "value"]]
    chance = base_rows.loc[base_rows["name"] == gate.chance_metric, "value"]
    if n.empty or chance.empty:
        return Verdict(claim, INCONCLUSIVE, f"cannot tell whether {claim.baseline} learned the task: no query counts "
                       f"({gate.count_prefix}{suffix}) or chance level recorded", metric=metric)
    both = acc.merge(n, on="run_id", suffixes=("", "_n"))
    correct = int(np.round((both["value"] * both["value_n"]).sum()))
    total = int(both["value_n"].sum())
    p0 = float(chance.median())
    lower = float(beta.ppf(0.025, correct, total - correct + 1)) if correct > 0 else 0.0
    if lower > p0:
        return None
    return Verdict(
        claim, INCONCLUSIVE,
        f"task not learned: {claim.baseline}'s accuracy at the longest distance ({acc_name}) is {correct}/{total} = "
        f"{correct / max(total, 1):.3f}, 95 % interval from {lower:.3f}, not above chance {p0:.3f}; a gain over a "
        "model that has not learned the task says nothing (raise retrieval.steps)",
        metric=metric, n_candidate=len(rows[(rows['arm'] == claim.candidate) & (rows['name'] == metric)]),
        n_baseline=len(acc),
    )


def _device_note(claim: Claim, rows) -> str:
    """Where each arm's runs executed, when they differ (e.g. an INT8 artefact that runs only on CPU)."""
    if "device" not in rows.columns:
        return ""
    where = {}
    for arm in (claim.candidate, claim.baseline):
        devices = sorted(map(str, rows.loc[rows["arm"] == arm, "device"].dropna().unique()))
        if devices:
            where[arm] = "/".join(devices)
    if len(set(where.values())) <= 1:
        return ""
    from eitp_bench.suite.arms import COMPRESSION_ARMS

    why = (" (int8 dynamic quantization has CPU kernels only: the shipped artefact runs where it can)"
           if claim.candidate in COMPRESSION_ARMS and where.get(claim.candidate) == "cpu" else "")
    return "arms ran on different devices: " + ", ".join(f"{a} on {d}" for a, d in where.items()) + why


def _too_few(claim, metric, counts: dict[str, int]) -> Optional[Verdict]:
    from eitp_bench.analysis.stats import MIN_REPETITIONS

    short = {a: n for a, n in counts.items() if n < MIN_REPETITIONS}
    if not short:
        return None
    what = ", ".join(f"{a} n={n}" for a, n in counts.items())
    reason = (f"too few repetitions for {metric} ({what}); a verdict needs ≥{MIN_REPETITIONS} per arm"
              if any(counts.values()) else f"no {metric} values for {', '.join(counts)} (task {claim.task})")
    values = list(counts.values())
    return Verdict(claim, NO_DATA, reason, metric=metric, n_candidate=values[0],
                   n_baseline=values[1] if len(values) > 1 else 0)


ROUND_KEYS = ["size", "seed", "repetition"]  # arms of one round share these: their results pair


def _paired(samples: dict, claim: Claim):
    """Candidate and baseline values aligned by round, or None when rounds cannot be identified."""
    cand, base = samples[claim.candidate], samples[claim.baseline]
    if not all(k in cand.columns and k in base.columns for k in ROUND_KEYS):
        return None
    # One-to-one: a round stored twice (a rerun of the same configuration) pairs its n-th copy with
    # the other arm's n-th copy, never every copy with every copy.
    cand, base = (df.assign(_copy=df.groupby(ROUND_KEYS, sort=False).cumcount()) for df in (cand, base))
    both = cand.merge(base, on=ROUND_KEYS + ["_copy"], suffixes=("_c", "_b"))
    return both if len(both) else None


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


def _count_samples(claim: Claim, rows, samples: dict):
    """((k, n) candidate, (k, n) baseline) arrays per run from an accuracy and its query count."""
    import numpy as np

    out = []
    for arm in (claim.candidate, claim.baseline):
        n = rows[(rows["arm"] == arm) & (rows["name"] == claim.count_metric)][["run_id", "value"]]
        both = samples[arm][["run_id", "value"]].merge(n, on="run_id", suffixes=("", "_n"))
        if len(both) < len(samples[arm]) or not len(both):
            return None  # older records without counts: judged as a continuous metric
        n_arr = both["value_n"].to_numpy(dtype=float)
        out.append((np.round(both["value"].to_numpy(dtype=float) * n_arr), n_arr))
    return out


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


def _refute_p(p_short: Optional[float], gate: "GateResult") -> Optional[float]:
    """One-sided p against "the claim holds" (effect beyond the claimed value and quality within the gate):
    Bonferroni over its two parts when the claim has a quality gate that could be tested."""
    if p_short is None:
        return None
    if gate.p_worse is None:
        return p_short
    return min(1.0, 2 * min(p_short, gate.p_worse))


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
        # sign test of "median ≤ allowed", the test behind the order-statistic interval
        from scipy.stats import binomtest

        above = int((values > gate.max_value).sum())
        p_worse = float(binomtest(above, len(values), 0.5, alternative="greater").pvalue)
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


_FAULTY = "too few steady energy figures: the windows they sum were flagged"


def _measured_only(samples: dict, rows, energy_df, metric: str):
    """Keep runs whose energy in the metric's window was measured; explain when too few were.

    Looks at every run of each arm in the claim's task, not only those carrying the metric: workloads
    store estimated joules under `<metric>_estimated`, so an estimate-only run has no `<metric>` at all.
    """
    from eitp_bench.analysis.stats import MIN_REPETITIONS

    from eitp_bench.flags import FAULT_CODES

    keep, unmeasured_runs, explanations = {}, {}, set()
    skipped: dict[str, int] = {}
    fault_codes: set[str] = set()
    for arm, df in samples.items():
        arm_rows = rows[rows["arm"] == arm]
        run_ids = set(arm_rows["run_id"])
        named = arm_rows[arm_rows["name"].isin([metric, names.estimated(metric)])]
        windows = set(named["window"].dropna()) if "window" in named.columns else set()
        e = energy_df[energy_df["run_id"].isin(run_ids)] if energy_df is not None and len(energy_df) else None
        measured_ids = set()
        if e is not None:
            if windows:
                e = e[e["window"].isin(windows)]
            valid = measured_only(e)
            # A window whose measured figure carries a fault (stalled, slow read, too short …) is skipped.
            is_faulty = valid["flags"].map(lambda codes: bool(set(codes) & FAULT_CODES)).astype(bool) \
                if "flags" in valid.columns else None
            faulty = valid[is_faulty] if is_faulty is not None else valid.iloc[0:0]
            faulty_ids = set(faulty["run_id"])
            skipped[arm] = len(faulty_ids)
            for codes in faulty["flags"]:
                fault_codes.update(set(codes) & FAULT_CODES)
            measured_ids = set(valid["run_id"]) - faulty_ids
            # the figure's own windows: a to-target figure flags the segments it sums (workloads/train.py)
            bad_figures, codes = faulty_figures(named[named["name"] == metric], FAULT_CODES)
            skipped[arm] += len(measured_ids & bad_figures)
            fault_codes.update(codes)
            measured_ids -= bad_figures
            # Why measured joules were missing: flags on the unmeasured runs' entries and the meters used.
            cols = [c for c in ("meter", "device", "domain", "method") if c in e.columns]
            unmeasured = e.loc[~e["run_id"].isin(measured_ids)]
            messages = unmeasured["flag_messages"].map(tuple) if "flag_messages" in e.columns else None
            unmeasured = unmeasured[cols].fillna("").astype(str).assign(flags=messages).drop_duplicates()
            for row in unmeasured.to_dict("records"):  # a few distinct rows, even for thousands of runs
                flags = list(row["flags"] or ())  # messages, never split: they may contain ';'
                detail = f"{row['meter']} {row['device']}/{row['domain']} ({row['method']})"
                explanations.add(f"{detail}: {'; '.join(flags)}" if flags else detail)
        keep[arm] = df[df["run_id"].isin(measured_ids)]
        unmeasured_runs[arm] = len(run_ids - measured_ids)
    short = [arm for arm, df in keep.items() if len(df) < MIN_REPETITIONS and unmeasured_runs[arm]]
    if short and all(len(keep[arm]) + skipped.get(arm, 0) >= MIN_REPETITIONS for arm in short):
        return keep, (f"{_FAULTY} ({', '.join(sorted(fault_codes))}): "
                      + ", ".join(f"{arm} {len(keep[arm])} steady, {skipped.get(arm, 0)} skipped" for arm in keep)
                      + f"; a verdict needs ≥{MIN_REPETITIONS} steady figures per arm (longer windows: "
                      "meters.min_window_s, or more steps per evaluation segment)"), ""
    if short:
        counts = ", ".join(f"{arm}: {len(keep[arm])} measured, {unmeasured_runs[arm]} without measured joules"
                           for arm in keep)
        why = "; ".join(sorted(explanations)[:6]) or "no energy entries recorded for these runs"
        return keep, (f"energy claim judged on measured joules only, but {metric} has too few measured runs "
                      f"({counts}); entries: {why}"), ""
    note = ""
    if any(skipped.values()):
        note = ("skipped runs whose measured window was flagged (" + ", ".join(sorted(fault_codes)) + "): "
                + ", ".join(f"{arm} {n}" for arm, n in skipped.items() if n))
    return keep, None, note


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


# ---------------------------------------------------------------- instrument and run conditions


def _isolation_caveat(v: Verdict, rows, conditions: dict) -> None:
    """Isolation caveats (runs started beside other work) named in an energy verdict and counted."""
    claim = v.claim
    if v.metric is None:
        return
    task_rows = rows if claim.task is None else rows[rows["task"] == claim.task]
    run_ids = {arm: set(task_rows.loc[(task_rows["arm"] == arm) & (task_rows["name"] == v.metric), "run_id"])
               for arm in (claim.candidate, claim.baseline)}
    affected = {arm: sum(bool(conditions.get(str(r))) for r in ids) for arm, ids in run_ids.items()}
    if any(affected.values()):
        codes = sorted({c for ids in run_ids.values() for r in ids for c in conditions.get(str(r), ())})
        v.isolation = affected
        v.reason = (f"{v.reason}; caveat: runs that started beside other work ({', '.join(codes)}): "
                    + ", ".join(f"{arm} {n} of {len(run_ids[arm])}" for arm, n in affected.items()))

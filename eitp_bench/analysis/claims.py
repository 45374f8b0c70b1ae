"""The claims registry (YAML data) and the verdicts judged from measured samples.

A claim names a metric, a task, a candidate and a baseline arm, a direction and
a threshold (a ratio of medians), or — for bounds like Theorem 3 — a measured
metric that must stay within `epsilon` of a bound metric. Verdicts:

  VERIFIED      the whole CI clears the claimed value and the quality gate holds
  REFUTED       the whole CI falls short, or the quality gate fails
  INCONCLUSIVE  the CI straddles the claimed value (with an estimate of the reps needed)
  NOT MEASURED  an energy claim for which only estimated joules exist
  NO DATA       the metric is missing or there are fewer than 5 repetitions per arm
  NOT COMPARABLE the claim's arms trained with different settings (other than their loss)

Rules of a fair experiment, applied before any statistics:
- Equal settings: arms that differ in anything but the objective are NOT COMPARABLE.
- To-target claims (MLPerf's rule): a repetition that does not reach the quality target within its
  step budget has no time or energy to target. A candidate that mostly fails where the baseline
  converges is REFUTED; if the baseline mostly fails, there is nothing to compare with (NO DATA).
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
from eitp_bench.analysis.resultset import measured_only

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
    p_threshold: Optional[float] = None  # one-sided p against the claimed value (what Holm adjusts)
    p_adjusted: Optional[float] = None  # Holm-adjusted across the claims of its family in this report
    family_size: int = 0
    plan: Optional[str] = None  # power-based advice for the next suite (never a reason to top up)
    provisional: bool = False  # the interval clears; Holm decides
    plan_inputs: Optional[tuple] = None  # (sd of a round's log-ratio, log estimate, log threshold)
    # energy claims on qualified runs: {"effect", "uncertainty", <arm>: {"u", "window_s", "runs"}}
    resolution: Optional[dict] = None
    isolation: Optional[dict] = None  # energy claims: {arm: repetitions started beside other work}


# ---------------------------------------------------------------- judging


def judge_claims(metrics_df, energy_df, claims, *, settings: Optional[dict[str, dict]] = None,
                 n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05,
                 instrument: Optional[dict[str, dict]] = None,
                 conditions: Optional[dict[str, list[str]]] = None) -> list[Verdict]:
    """One verdict per claim from the store's metrics and energy frames (ok runs only).

    `settings` maps each arm to its effective training settings (suite.effective_settings): a claim
    whose arms differ in anything but the loss is NOT COMPARABLE, whatever its statistics say.
    `instrument` maps run_id → its sensor qualification (analysis/instrument.py): an energy claim whose
    effect is smaller than the stated uncertainty of its windows is INCONCLUSIVE, "below instrument
    resolution". `conditions` maps run_id → isolation codes: energy verdicts name the affected runs.
    """
    claim_list = claims.claims if isinstance(claims, ClaimSet) else list(claims)
    ok = _ok_rows(metrics_df)
    verdicts = [_judge(c, ok, energy_df, n_resamples=n_resamples, seed=seed) for c in claim_list]
    for v in verdicts:
        if v.claim.energy and v.claim.kind == "ratio":
            _instrument_checks(v, ok, energy_df, instrument or {}, conditions or {})
    for group in dict.fromkeys(v.claim.group for v in verdicts):
        _holm_family([v for v in verdicts if v.claim.group == group], alpha)
    return [_mark_not_comparable(v, settings) if settings else v for v in verdicts]


def _holm_family(family: list[Verdict], alpha: float) -> None:
    """Holm across the claims of one paper's family in one report: a clearing interval becomes VERIFIED
    only if its one-sided p against the claimed value, adjusted, is below α/2. Also the power plan."""
    import math

    from eitp_bench.analysis.stats import holm

    tested = [v for v in family if v.p_threshold is not None and math.isfinite(v.p_threshold)]
    if not tested:
        return
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


def _judge(claim: Claim, metrics_df, energy_df, *, n_resamples, seed) -> Verdict:
    rows = metrics_df if claim.task is None else metrics_df[metrics_df["task"] == claim.task]
    arms = [claim.candidate] + ([claim.baseline] if claim.kind == "ratio" else [])
    refused = _target_refused(rows[rows["arm"].isin(arms)], claim.task) if claim.to_target else None
    if refused:  # before anything else: with no target there is no time or energy to target to judge
        return Verdict(claim, INCONCLUSIVE, refused, metric=claim.metric)
    metric = _resolve_metric(claim.metric, rows, arms)
    if metric is None:
        return Verdict(claim, NO_DATA, f"no metric matching {claim.metric!r} in every arm ({', '.join(arms)})")
    samples = {arm: _values(rows, arm, metric) for arm in arms}

    if claim.energy:
        samples, not_measured, skipped_note = _measured_only(samples, rows, energy_df, metric)
        if not_measured:
            return Verdict(claim, NOT_MEASURED, not_measured, metric=metric,
                           n_candidate=len(samples[claim.candidate]),
                           n_baseline=len(samples[claim.baseline]) if claim.baseline else 0)
    else:
        skipped_note = ""

    if claim.kind == "bound":
        v = _judge_bound(claim, rows, samples[claim.candidate], metric, n_resamples, seed)
        v.reason = f"{v.reason}; {skipped_note}" if skipped_note else v.reason
        return v
    converged_note = ""
    if claim.to_target:
        stop, converged_note = _convergence(claim, rows, metric)
        if stop is not None:
            return stop
    if claim.learned is not None:
        stop = _learned(claim, rows, metric)
        if stop is not None:
            return stop
    v = _judge_ratio(claim, metrics_df, rows, samples, metric, n_resamples, seed)
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
    """MLPerf's rule for to-target claims: (a verdict that ends the judging, or None; a note)."""
    counts = convergence_counts(rows, claim.task)
    cand, base = counts.get(claim.candidate), counts.get(claim.baseline)
    n_c, n_b = (cand or (0, 0))[1], (base or (0, 0))[1]

    def stop(verdict, reason):
        return Verdict(claim, verdict, reason, metric=metric, n_candidate=(cand or (0, 0))[0],
                       n_baseline=(base or (0, 0))[0])

    if not base or not cand:
        return stop(NO_DATA, "no quality target was recorded for these arms (set train.target_val_loss, "
                             "or train.target_excess_nats on the Markov corpus)"), ""
    text = (f"reached the target in {cand[0]} of {n_c} repetitions ({claim.candidate}) and {base[0]} of {n_b} "
            f"({claim.baseline})")
    if 2 * base[0] < n_b or base[0] == 0:
        return stop(NO_DATA, f"baseline did not converge: {text}; with no baseline time to target there is "
                             "nothing to compare (raise train.steps or loosen the target)"), ""
    if 2 * cand[0] < n_c or cand[0] == 0:
        return stop(REFUTED, f"candidate did not converge within the step budget: {text} (a run that misses the "
                             "quality target has no energy or time to target)"), ""
    return None, f"judged on converged repetitions only: {text}"


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
    from eitp_bench.workloads.arms import COMPRESSION_ARMS

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


def _effect(claim: Claim, rows, samples: dict, metric: str, n_resamples: int, seed: int):
    """(Effect, design note): counts as counts, deterministic metrics exactly, otherwise paired by round
    (Wilcoxon/Hodges–Lehmann) when rounds pair, else the unpaired ratio of medians."""
    from eitp_bench.analysis import stats

    t, direction = claim.threshold, claim.direction
    cand, base = samples[claim.candidate], samples[claim.baseline]
    pairs = _paired(samples, claim)
    paired = pairs is not None and len(pairs) >= stats.MIN_REPETITIONS
    if claim.count_metric:
        counts = _count_samples(claim, rows, samples)
        if counts is not None:
            (k_c, n_c), (k_b, n_b) = counts
            return stats.proportion_ratio_effect(k_c, n_c, k_b, n_b, paired=False, threshold=t,
                                                 direction=direction), "counts"
    if cand["value"].nunique() == 1 and base["value"].nunique() == 1:
        return _exact_effect(float(cand["value"].iloc[0]), float(base["value"].iloc[0]), len(cand), len(base),
                             t, direction), "exact"
    if paired:
        eff = stats.paired_ratio_effect(pairs["value_c"], pairs["value_b"], threshold=t, direction=direction)
        return eff, "paired"
    eff = stats.ratio_effect(cand["value"], base["value"], n_resamples=n_resamples, seed=seed, threshold=t,
                             direction=direction)
    return eff, "unpaired (rounds could not be paired)"


def _exact_effect(c: float, b: float, n_c: int, n_b: int, threshold: float, direction: str):
    """A deterministic metric (the same in every repetition, e.g. model bytes): the ratio is exact."""
    from eitp_bench.analysis.stats import Effect

    r = c / b if b else float("inf")
    beyond = r > threshold if direction == "higher_is_better" else r < threshold
    return Effect(ratio=r, ci_low=r, ci_high=r, p_value=0.0 if r != 1 else 1.0, n_candidate=n_c, n_baseline=n_b,
                  ci_method="exact (identical in every repetition)", design="paired", estimator="exact ratio",
                  p_threshold=0.0 if beyond else 1.0, threshold=threshold, direction=direction)


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


def _judge_ratio(claim, metrics_df, rows, samples, metric, n_resamples, seed) -> Verdict:
    import math

    from eitp_bench.analysis import stats

    cand, base = samples[claim.candidate]["value"], samples[claim.baseline]["value"]
    short = _too_few(claim, metric, {claim.candidate: len(cand), claim.baseline: len(base)})
    if short:
        return short
    try:
        eff, design = _effect(claim, rows, samples, metric, n_resamples, seed)
    except ValueError as err:
        return Verdict(claim, NO_DATA, f"{metric}: {err}", metric=metric,
                       n_candidate=len(cand), n_baseline=len(base))
    v = Verdict(claim, INCONCLUSIVE, "", eff.ratio, eff.ci_low, eff.ci_high, eff.p_value,
                eff.n_candidate, eff.n_baseline, metric=metric, ci_method=eff.ci_method, design=design,
                p_threshold=eff.p_threshold)
    t, direction = claim.threshold, claim.direction
    gate = _check_gate(claim, metrics_df, paired=design != "unpaired (rounds could not be paired)")
    v.gate = gate.text
    cover = f"{100 * eff.confidence:.4g} %" if getattr(eff, "confidence", None) else "95 %"
    ci_text = (f"ratio {eff.ratio:.3g} [{eff.ci_low:.3g}, {eff.ci_high:.3g}] ({cover}, {design}) "
               f"vs claimed {claim.claimed}")
    note = f" ({eff.note})" if eff.note else ""
    if eff.degenerate:
        v.reason = f"the interval is degenerate ({eff.reason}): {ci_text}; a degenerate interval never verifies{note}"
    elif gate.shown_worse:
        v.verdict, v.reason = REFUTED, f"quality gate failed: {gate.text}; {ci_text}"
    elif stats.falls_short(eff, t, direction):
        v.verdict, v.reason = REFUTED, f"whole interval falls short: {ci_text}{note}"
    elif stats.clears(eff, t, direction) and gate.holds:
        v.provisional, v.verdict = True, VERIFIED
        v.reason = f"whole interval clears the claim: {ci_text}; quality gate: {gate.text}{note}"
    elif stats.clears(eff, t, direction):  # a gain of unshown quality is not a verified gain
        v.reason = f"the interval clears the claim but quality is not shown: {gate.text}{note}"
    else:
        v.reason = f"the interval straddles the claimed value: {ci_text}{note}"
    sd = getattr(eff, "sd_log", float("nan"))
    if v.verdict == INCONCLUSIVE and eff.ratio > 0 and math.isfinite(sd):
        v.plan_inputs = (sd, math.log(eff.ratio), math.log(t))
        v.plan = _power_plan(*v.plan_inputs, alpha=0.05)  # refined for the family size by _holm_family
    return v


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
    text = (f"median {metric} − {claim.bound_metric} = {eff.ratio:.4g} [{eff.ci_low:.4g}, {eff.ci_high:.4g}]"
            f" vs ε = {eps:g}")
    if eff.ci_high <= eps:
        v.verdict, v.reason = VERIFIED, f"whole CI within the bound: {text}"
    elif eff.ci_low > eps:
        v.verdict, v.reason = REFUTED, f"whole CI above the bound: {text}"
    else:
        v.reason = f"the interval straddles the bound: {text}"
    return v


@dataclass
class GateResult:
    holds: Optional[bool]  # None: quality cannot be shown (missing data, degenerate interval)
    shown_worse: bool
    text: str


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
        if hi < gate.max_value:
            return GateResult(True, False, f"{text}: upper bound below the allowed value")
        return GateResult(False, lo > gate.max_value, f"{text}: {'even the lower bound exceeds it' if lo > gate.max_value else 'upper bound not below it'}")
    cand = rows[rows["arm"] == claim.candidate]
    base = rows[rows["arm"] == claim.baseline]
    if cand.empty or base.empty:
        return GateResult(None, False, f"no {gate.metric} for both {claim.candidate} and {claim.baseline} (task {task})")
    if cand["value"].nunique() == 1 and base["value"].nunique() == 1:  # deterministic: compared exactly
        c, b = float(cand["value"].iloc[0]), float(base["value"].iloc[0])
        loss = (c / b - 1) if gate.direction == "lower_is_better" else (1 - c / b)
        text = (f"{gate.metric}: quality loss {100 * loss:+.2f} % (the same in every repetition: exact) vs allowed "
                f"{100 * gate.max_relative_loss:g} %")
        return GateResult(loss < gate.max_relative_loss, loss > gate.max_relative_loss, text)
    pairs = _paired({claim.candidate: cand, claim.baseline: base}, claim) if paired else None
    if pairs is not None and len(pairs) >= stats.MIN_REPETITIONS:
        g = stats.non_inferiority(pairs["value_c"], pairs["value_b"], max_relative_loss=gate.max_relative_loss,
                                  direction=gate.direction, paired=True)
    else:
        g = stats.non_inferiority(cand["value"], base["value"], max_relative_loss=gate.max_relative_loss,
                                  direction=gate.direction, paired=False)
    return GateResult(g.holds, bool(g.shown_worse), f"{gate.metric}: {g.reason}")


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
    if any(len(df) < MIN_REPETITIONS and unmeasured_runs[arm] for arm, df in keep.items()):
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


# ---------------------------------------------------------------- instrument and run conditions


def _instrument_checks(v: Verdict, rows, energy_df, instrument: dict, conditions: dict) -> None:
    """Below instrument resolution → INCONCLUSIVE (with the figures); isolation caveats → named."""
    from eitp_bench.analysis.instrument import resolution

    claim = v.claim
    arms = [claim.candidate, claim.baseline]
    task_rows = rows if claim.task is None else rows[rows["task"] == claim.task]
    if v.metric is None:
        return
    run_ids = {arm: set(task_rows.loc[(task_rows["arm"] == arm) & (task_rows["name"] == v.metric), "run_id"])
               for arm in arms}
    if conditions:
        affected = {arm: sum(bool(conditions.get(str(r))) for r in ids) for arm, ids in run_ids.items()}
        if any(affected.values()):
            codes = sorted({c for ids in run_ids.values() for r in ids for c in conditions.get(str(r), ())})
            v.isolation = affected
            v.reason = (f"{v.reason}; caveat: runs that started beside other work ({', '.join(codes)}): "
                        + ", ".join(f"{arm} {n} of {len(run_ids[arm])}" for arm, n in affected.items()))
    if not instrument or v.ratio is None or not v.ratio > 0:
        return
    named = task_rows[task_rows["name"] == v.metric]
    windows = set(named["window"].dropna()) if "window" in named.columns else set()
    res = {arm: resolution(ids, energy_df, windows, instrument) for arm, ids in run_ids.items()}
    if any(r is None for r in res.values()):
        return
    u = sum(r["u"] for r in res.values())  # the two arms' windows each carry their own edge error
    effect = abs(v.ratio - 1)
    v.resolution = {"effect": effect, "uncertainty": u, **res}
    if effect >= u:
        return
    figures = "; ".join(f"{arm} ±{100 * r['u']:.2g} % on {r['window_s']:.3g} s windows" for arm, r in res.items())
    needed = max(r["window_s"] * u / max(effect, 1e-12) for r in res.values())
    text = (f"below instrument resolution: the effect ({100 * effect:.2g} %) is smaller than the sensors' stated "
            f"uncertainty for these windows (±{100 * u:.2g} %: {figures})")
    if v.verdict == VERIFIED or (v.verdict == REFUTED and not v.reason.startswith("quality gate failed")):
        v.reason = f"{text}; the statistics would say {v.verdict}: {v.reason}"
        v.verdict, v.provisional = INCONCLUSIVE, False
    elif v.verdict == INCONCLUSIVE:
        v.reason = f"{text}; {v.reason}"
    else:
        return
    v.plan_inputs = None  # more repetitions do not help: longer windows do
    v.plan = f"next suite: energy windows of about {needed:.3g} s or more to resolve an effect this size"

"""The samples a claim is judged on, from the metrics frame: the arms' figures, paired by round
(`ROUND_KEYS`), to-target figures censored at their run's budget (`CENSOR_BUDGETS`), counts for accuracies,
energy figures kept only where measured and unflagged; and the checks made before any statistics:
too few repetitions, runs that did not converge, a task the baseline did not learn.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Optional

from eitp_bench import names
from eitp_bench.analysis.claims.registry import Claim
from eitp_bench.analysis.claims.verdict import INCONCLUSIVE, NO_DATA, Verdict
from eitp_bench.analysis.resultset import faulty_figures, measured_only


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

    from eitp_bench.analysis.stats import beta_ppf  # scipy.stats.beta's figure without importing scipy.stats

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
    lower = beta_ppf(0.025, correct, total - correct + 1) if correct > 0 else 0.0
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
            labels = unmeasured[cols]  # as text ('' where missing; astype(str) keeps it missing from pandas 3 on)
            unmeasured = labels.astype(str).where(labels.notna(), "").assign(flags=messages).drop_duplicates()
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

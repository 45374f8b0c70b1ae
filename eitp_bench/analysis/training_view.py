"""What training cost per arm, as a reader wants to see it: validation loss against step and against
joules, energy per arm split by device and domain, and time per step / to target.

Data only (the report draws it). Measured and estimated joules never mix: a picture uses measured
joules when any arm has them, else the estimates, and then says so in its title.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from eitp_bench import names
from eitp_bench.analysis.resultset import measured_only
from eitp_bench.analysis.rounds import ROUND_KEYS, row_codes

ADDITIVE_DOMAINS = ("gpu", "package", "dram")  # never add core/uncore/psys into a total
RESAMPLES = 1000  # percentile bootstrap of a median: a picture's whisker, not a verdict


def _ok(metrics):
    return metrics[metrics["status"] == "ok"] if "status" in metrics.columns else metrics


def _curve_points(m, base: str) -> dict[str, dict[str, dict[int, float]]]:
    """{arm: {run_id: {step: value}}} of one curve metric (`base@step`)."""
    out: dict[str, dict[str, dict[int, float]]] = {}
    rows = m[m["name"].str.startswith(base + "@")]
    for arm, run_id, name, value in zip(rows["arm"], rows["run_id"], rows["name"], rows["value"]):
        tag = names.split_at(name)[1]
        if tag is not None and tag.isdigit():
            out.setdefault(str(arm), {}).setdefault(str(run_id), {})[int(tag)] = float(value)
    return out


def loss_curves(metrics) -> list[dict]:
    """Validation loss per arm against step and against cumulative training joules (train task).

    [{x, xlabel, title, curves: {arm: {runs: [(xs, ys)], median: (xs, ys)}}}]; the joules picture
    uses measured joules, or estimates (said in its title) when nothing was measured."""
    if metrics is None or len(metrics) == 0:
        return []
    m = _ok(metrics)
    m = m[m["task"] == "train"] if "task" in m.columns else m
    loss = _curve_points(m, names.CURVE_VAL_LOSS)
    if not loss:
        return []
    out = [{"x": "step", "xlabel": "training step", "title": "validation loss against step",
            "curves": _curves(loss, None)}]
    joules = _curve_points(m, names.CURVE_JOULES)
    label = "measured training joules (cumulative)"
    if not joules:
        joules = _curve_points(m, names.estimated(names.CURVE_JOULES))
        label = "ESTIMATED training joules (CPU time × TDP, not a measurement)"
    if joules:
        out.append({"x": "joules", "xlabel": label, "title": "validation loss against training energy",
                    "curves": _curves(loss, joules)})
    return out


def _curves(loss, xs_by_run) -> dict[str, dict]:
    """Per arm: each run's (x, loss) line and the median over runs at each step (x = step or joules)."""
    out = {}
    for arm, runs in sorted(loss.items()):
        lines, by_step = [], {}
        for run_id, points in runs.items():
            xmap = points if xs_by_run is None else xs_by_run.get(arm, {}).get(run_id, {})
            steps = [s for s in sorted(points) if s in xmap]
            if not steps:
                continue
            xs = [float(s) if xs_by_run is None else xmap[s] for s in steps]
            lines.append((xs, [points[s] for s in steps]))
            for s, x in zip(steps, xs):
                by_step.setdefault(s, []).append((x, points[s]))
        if lines:
            steps = sorted(by_step)
            median = ([float(np.median([p[0] for p in by_step[s]])) for s in steps],
                      [float(np.median([p[1] for p in by_step[s]])) for s in steps])
            out[arm] = {"runs": lines, "median": median}
    return out


def arm_energy(energy, *, seed: int = 0) -> list[dict]:
    """Energy per arm, one picture per (task, window): stacked by device and domain (median joules per
    repetition), with the 95 % percentile-bootstrap interval of the median total.

    [{task, window, title, xlabel, estimated, bars: [{arm, parts, total, low, high, n}]}]."""
    if energy is None or len(energy) == 0:
        return []
    measured = measured_only(energy)
    estimated = measured is None or len(measured) == 0
    e = energy[energy["method"] == "estimated"] if estimated else measured
    e = e[e["domain"].isin(ADDITIVE_DOMAINS) & e["joules"].notna()]
    if len(e) == 0:
        return []
    rng = np.random.default_rng(seed)
    out = []
    e = e.assign(_round=_round_ids(e))
    for (task, window), w in e.groupby(["task", "window"], sort=True):
        bars = []
        for arm, a in w.groupby("arm", sort=True):
            channel = _channels(a)
            parts = _per_round(a.assign(channel=channel), ["channel"]).groupby("channel").median()
            totals = _per_round(a, []).to_numpy(dtype=float)
            low, high = _median_interval(totals, rng)
            bars.append({"arm": str(arm), "parts": {str(k): float(v) for k, v in parts.items()},
                         "total": float(np.median(totals)), "low": low, "high": high, "n": len(totals)})
        what = "ESTIMATED J (CPU time × TDP, not measured)" if estimated else "measured J"
        title = f"{task}" if str(window) == str(task) else f"{task} / {window}"
        out.append({"task": str(task), "window": str(window), "title": title + (" — ESTIMATED" if estimated else ""),
                    "xlabel": f"{what} per repetition (median, 95 % CI whisker)", "estimated": estimated,
                    "bars": bars})
    out.sort(key=lambda p: p["window"] != "train")  # the training window first: the training-energy claim
    return out


def _round_ids(e):
    """Each row's round (rounds.ROUND_KEYS) as a number; each run its own round where the frame has no round
    identity."""
    if set(ROUND_KEYS) <= set(e.columns):
        return row_codes(e, ROUND_KEYS)
    return e["run_id"].factorize()[0]


def _per_round(e, by: list[str]):
    """Joules summed per run (and `by`), then the median of a round's copies (runs of one round stored by
    several batches, `_round`): the round is the unit of replication, so a nightly store's copies never
    narrow an interval. Rounds come in the order of their first run_id: without copies, each run's sum in
    run_id order, as the bootstrap has always drawn them."""
    import pandas as pd

    # runs as their rank in run_id order: grouping and sorting integers, not text (a nightly group has
    # 100 000 energy rows), in the same order
    codes, run_ids = pd.factorize(e["run_id"], sort=True)
    per_run = e.assign(_run=codes).groupby([*by, "_round", "_run"], dropna=False, sort=True)["joules"].sum()
    rounds = per_run.reset_index().groupby([*by, "_round"], dropna=False, sort=False).agg(
        joules=("joules", "median"), first=("_run", "min")).reset_index()
    rounds = rounds.sort_values([*by, "first"], kind="stable")
    return rounds.assign(first=run_ids.take(rounds["first"].to_numpy())).set_index(by or ["first"])["joules"]


def _channels(e):
    """`gpu:0 gpu`, and on multi-rank runs `gpu:0 gpu rank 1 on node2`: each rank's sensor is its own segment."""
    channel = e["device"].astype(str) + " " + e["domain"].astype(str)
    if "rank" in e.columns and e["rank"].notna().any():
        channel = channel + e["rank"].map(lambda r: "" if r is None or r != r else f" rank {int(r)}")
        if "host" in e.columns:
            channel = channel + e["host"].map(lambda h: f" on {h}" if isinstance(h, str) else "")
    return channel


def _median_interval(values: np.ndarray, rng) -> tuple[float, float]:
    if len(values) < 2:
        return float(values[0]), float(values[0])
    idx = rng.integers(0, len(values), size=(RESAMPLES, len(values)))
    medians = np.median(values[idx], axis=1)
    return float(np.quantile(medians, 0.025)), float(np.quantile(medians, 0.975))


def training_time(metrics) -> list[dict]:
    """Per arm of the train task: median seconds per step, training seconds, time to target and how
    many repetitions reached it. [{arm, step_s, train_s, time_to_target_s, reached, runs}]."""
    if metrics is None or len(metrics) == 0:
        return []
    m = _ok(metrics)
    m = m[m["task"] == "train"] if "task" in m.columns else m
    rows = []
    for arm, a in m.groupby("arm", sort=True):
        med = a.groupby("name")["value"].median()
        if "step_s" not in med.index:
            continue
        reached = a.loc[a["name"] == "target_reached", "value"]
        rows.append({"arm": str(arm), "step_s": _get(med, "step_s"), "train_s": _get(med, "train_s"),
                     "time_to_target_s": _get(med, "time_to_target_s"),
                     "reached": int((reached > 0.5).sum()) if len(reached) else None,
                     "runs": int(a["run_id"].nunique())})
    return rows


def step_time_samples(metrics) -> dict[str, np.ndarray]:
    """Seconds per step (each repetition's median) per arm: the time-per-step picture."""
    if metrics is None or len(metrics) == 0:
        return {}
    m = _ok(metrics)
    rows = m[(m["name"] == "step_s") & ((m["task"] == "train") if "task" in m.columns else True)]
    return {str(arm): r["value"].to_numpy(dtype=float) for arm, r in rows.groupby("arm", sort=True)}


def _get(med, name: str) -> Optional[float]:
    return float(med[name]) if name in med.index else None

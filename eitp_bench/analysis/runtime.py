"""Time, not joules: measured per-step and per-token rates for the cost model, and estimate against actual.

- `measured_rates(frames, suite, gpu_or_cpu_profile=…, profile_id=…)` reads the stored runs of a suite on one
  hardware (a named profile, or this machine's profile id) into `cost_model.MeasuredRates`; only runs whose
  rate-setting configuration (model, size, device, precision, batch, block, threads) equals the suite's.
- `estimate_vs_actual(frames)` sets the estimate recorded with a run (provenance.hardware.cost_estimate)
  against the wall times of its records, per phase (the report's "time: estimated and actual" section).
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

from eitp_bench.analysis.cost_model import PHASE_TASKS, PHASES, MeasuredRates
from eitp_bench.analysis.regress import missing
from eitp_bench.suite import Suite
from eitp_bench.suite.arms import COMPRESSION_ARMS

# settings that change a step's or a token's time: stored runs must match the suite on every one
RATE_KEYS = (("model",), ("device",), ("threads",), ("train", "precision"), ("train", "batch_size"),
             ("data", "block_size"), ("data", "kind"), ("data", "vocab_size"), ("data", "tokenizer"),
             ("retrieval", "batch_size"), ("retrieval", "seq_len"), ("launcher", "nproc_per_node"))


def _get(config: dict, path: tuple):
    for key in path:
        config = (config or {}).get(key) if isinstance(config, dict) else None
    return config


def _seconds(start, end) -> Optional[float]:
    """end − start in seconds (ISO texts, or the instants a report's runs hold: frames.load_newest); None
    where either is missing or unreadable."""
    if isinstance(start, datetime) or isinstance(end, datetime):  # pandas Timestamps (and NaT) are datetimes
        try:  # as datetimes: pandas' Timedelta.total_seconds rounds otherwise than datetime's
            wall = (end.to_pydatetime() - start.to_pydatetime()).total_seconds()
        except (TypeError, AttributeError, ValueError):  # one is missing (None, NaT)
            return None
        return None if wall != wall else wall
    try:
        return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
    except (TypeError, ValueError):
        return None


def _ok_runs(frames):
    runs = frames.runs
    if runs is None or len(runs) == 0:
        return runs
    return runs[runs["status"] == "ok"] if "status" in runs.columns else runs


def _matching_runs(frames, suite: Suite, profile_name: Optional[str], profile_id: Optional[str]):
    """The ok runs of `suite` (by name) on that hardware whose rate-setting configuration is the suite's."""
    runs = _ok_runs(frames)
    if runs is None or len(runs) == 0:
        return runs
    runs = runs[runs["suite"] == suite.name]
    mine = suite.model_dump(mode="json")
    configs = frames.configs or {}
    same = {h for h, cfg in configs.items() if all(_get(cfg, k) == _get(mine, k) for k in RATE_KEYS)}
    runs = runs[runs["suite_config_hash"].isin(same) & runs["size"].isin(list(suite.sizes))]
    if profile_id is not None:
        return runs[runs["hardware_profile_id"] == profile_id]
    gpus, cpus = _per_run(frames, runs["run_id"], "gpu_profiles", "cpu_profile")
    # a run without the field holds NaN (the provenance frame's gap), never a list to look in
    return runs[[(isinstance(g, list) and profile_name in g) or c == profile_name for g, c in zip(gpus, cpus)]]


def rate_frames(store, *, open_read_only: bool):
    """The frames the rates need (runs, metrics, provenance, configs: no energy, no timelines), or None.

    `open_read_only`: `store` is a location (None: the default store), opened read-only and only if it exists
    (a dry run writes nothing); else it is an open Store (the run's writer)."""
    from eitp_bench.analysis.frames import Frames
    from eitp_bench.errors import UserError

    opened = None
    try:
        if open_read_only:
            from eitp_bench.store import Store

            store = opened = Store.open(store, read_only=True)
        return Frames(store.runs_frame(), store.metrics_frame(), None, None,
                      provenance=store.provenance_frame(), configs=store.configs())
    except UserError:
        return None  # no store yet (or not readable): nothing measured
    finally:
        if opened is not None:
            opened.close()


def measured_rates(frames, suite: Suite, *, profile_name: Optional[str] = None,
                   profile_id: Optional[str] = None) -> Optional[MeasuredRates]:
    """Per-repetition rates of the stored runs of `suite` on that hardware; None when there are none."""
    runs = _matching_runs(frames, suite, profile_name, profile_id)
    if runs is None or len(runs) == 0:
        return None
    metrics = frames.metrics
    metrics = metrics[metrics["run_id"].isin(set(runs["run_id"]))] if metrics is not None and len(metrics) else metrics
    value = {(r, n): v for r, n, v in zip(metrics["run_id"], metrics["name"], metrics["value"])} if metrics is not None and len(metrics) else {}
    run_ids = runs["run_id"].tolist()
    setup, setup_idle = (dict(zip(run_ids, column)) for column in _per_run(frames, run_ids, "setup_s", "idle_baseline"))
    configs = frames.configs or {}
    rates = MeasuredRates(runs=len(runs), label=f"{len(runs)} records of suite {suite.name}")
    keys = ["suite_config_hash", "arm", "size", "repetition"]
    for (digest, arm, _size, _rep), rep in runs.groupby(keys, sort=False):
        by_task = {t: (rid, _seconds(s, e)) for t, rid, s, e in zip(rep["task"], rep["run_id"], rep["started_at"], rep["finished_at"])}
        cfg = configs.get(digest) or {}
        wall = lambda task: by_task[task][1] if task in by_task and by_task[task][1] is not None else None  # noqa: E731
        if "train" in by_task and wall("train") is not None:
            rid = by_task["train"][0]
            step, steps = value.get((rid, "step_s")), value.get((rid, "steps"))
            if step is not None and steps:
                rates.train_step_s.setdefault(arm, []).append(step)
                rates.train_other_s.setdefault(arm, []).append(max(0.0, wall("train") + (wall("lm") or 0.0) - steps * step))
        if wall("retrieval") is not None and _get(cfg, ("retrieval", "steps")):
            rates.retrieval_step_s.setdefault(arm, []).append(wall("retrieval") / _get(cfg, ("retrieval", "steps")))
        if "generate" in by_task:
            rid = by_task["generate"][0]
            for (r, name), v in value.items():
                if r != rid or not name.startswith("tokens_per_s@") or not v:
                    continue
                from eitp_bench.names import parse_generate_tag

                tag = parse_generate_tag(name.split("@", 1)[1])
                if tag is not None:
                    rates.decode_step_s.setdefault((arm, tag[0], tag[1]), []).append(tag[1] / v)
        if wall("compress") is not None:
            # a compression arm builds its artefact in its first task: inside generate when it ran (then add it)
            in_generate = arm in COMPRESSION_ARMS and "generate" in by_task
            built = (value.get((by_task["compress"][0], "compress_s")) or 0.0) if in_generate else 0.0
            rates.compress_s.setdefault(arm, []).append(wall("compress") + built)
        theory = [wall(t) for t in ("theory", "derivation") if t in by_task]
        if theory and None not in theory:
            rates.theory_s.setdefault(arm, []).append(sum(theory))
        first = rep["run_id"].iloc[0]
        if not missing(setup.get(first)):
            rates.setup_s.append(float(setup[first]))
            idle = setup_idle.get(first) if isinstance(setup_idle.get(first), dict) else {}
            rates.setup_idle_s.append(float(idle.get("duration_s") or 0.0) if idle.get("measured_here") else 0.0)
    return rates


def _newest_invocation(runs, rows=None):
    """The runs of the newest invocation of the suite among `runs` (store order; `rows`: only the runs at
    these positions, not a copy of them), and how many runs came before it. A nightly store holds the suite
    again every night, each night's runs recording an estimate of that one night: summed over every night,
    "actual" would be the nights times the estimate. One invocation runs each slot (configuration, arm,
    task, size, seed, repetition) once, so walking back from the newest run, the newest invocation starts
    after the newest ok run whose slot comes again (a failed run retried within the invocation does not
    end it). The walk reads the runs from the end, a stretch at a time, each stretch four times the last
    (up to _SLICE runs): a nightly store's newest night is a few runs, never a code for each of the 125 000
    runs a report reads, nor a copy of 10 000 of them (this section's 4.5 MiB passing peak at 1 000 000
    records)."""
    import numpy as np

    rows = np.arange(len(runs)) if rows is None else rows
    keys = [k for k in ("suite_config_hash", "arm", "task", "size", "seed", "repetition") if k in runs.columns]
    if not keys or len(rows) == 0:
        return runs.iloc[rows], 0
    seen: set = set()
    end, stretch = len(rows), 64
    while end > 0:
        start, stretch = max(0, end - stretch), min(_SLICE, stretch * 4)
        part = runs.iloc[rows[start:end]]
        # a missing value (None, or NaN, which equals nothing) is one value, as a groupby key
        slots = list(zip(*([None if missing(v) else v for v in part[k].tolist()] for k in keys)))
        ok = (part["status"] == "ok").tolist() if "status" in part.columns else [True] * len(part)
        for i in range(len(part) - 1, -1, -1):
            if ok[i]:
                if slots[i] in seen:
                    return runs.iloc[rows[start + i + 1:]], start + i + 1
                seen.add(slots[i])
        end = start
    return runs.iloc[rows], 0


_SLICE = 10_000  # runs whose columns are lists at once (the whole 125 000 of a report's runs: 45 MiB more peak)


def _per_run(frames, run_ids, *keys: str) -> list[list]:
    """For each key, provenance.hardware.<key> of each of `run_ids` (None where its run has none; the last row
    of a run held twice), found in the Arrow text of the provenance's run ids (column_read.positions_in):
    no dict of every run's id (two such dicts left 20 MiB at the end of a 1 000 000-record report, its
    peak), and no pandas Index of them (a Python string a run: this section's 17 MiB passing peak there)."""
    import numpy as np

    from eitp_bench.store.column_read import positions_in

    prov = frames.provenance
    if prov is None or len(prov) == 0:
        return [[None] * len(run_ids) for _ in keys]
    if _aligned(prov, run_ids):
        at = np.arange(len(prov))
    else:
        at = positions_in(prov["run_id"], run_ids, last=True)
    found = np.flatnonzero(at >= 0)
    out = []
    for key in keys:
        col = f"hardware.{key}"
        values = [None] * len(run_ids)
        if col in prov.columns:  # only the rows asked for, item by item: a value that is a list stays one object
            for i, value in zip(found.tolist(), prov[col].take(at[found]).tolist()):
                values[i] = value
        out.append(values)
    return out


def _estimates_of(frames, run_ids):
    """Each run's recorded cost estimate (provenance.hardware.cost_estimate) as a Series in the order of
    `run_ids`: the provenance's own column where those are its runs in its order (the report's read), no
    list of every run's value; else the values found as `_per_run` finds them."""
    import pandas as pd

    prov = frames.provenance
    column = "hardware.cost_estimate"
    if prov is not None and column in prov.columns and _aligned(prov, run_ids):
        return prov[column].reset_index(drop=True)
    from eitp_bench.store.shared_objects import object_array

    (values,) = _per_run(frames, run_ids, "cost_estimate")
    return pd.Series(object_array(values), dtype=object)  # an estimate is a mapping, kept as one object


def _aligned(prov, run_ids) -> bool:
    """Whether `run_ids` (a column) are the provenance's runs, each once, in its order (the report's read): its
    rows are then theirs, found by position. Compared in Arrow, where two pandas indexes of the 125 000 ids
    a report reads at 1 000 000 records each built a hash table of Python strings."""
    import pandas as pd

    from eitp_bench.store.column_read import all_distinct, same_ids

    return isinstance(run_ids, pd.Series) and same_ids(prov["run_id"], run_ids) and all_distinct(prov["run_id"])


def estimate_vs_actual(frames) -> Optional[dict]:
    """{"estimate": the newest run's recorded estimate, "rows": [{phase, estimated_s, actual_s}], "repetitions",
    "earlier_runs", "note"} over the runs of the newest invocation that recorded it (`earlier_runs`: those of
    earlier invocations with the same estimate, left out); None when no run recorded one."""
    import numpy as np

    from eitp_bench.analysis.per_object import object_codes

    runs = frames.runs
    if runs is None or len(runs) == 0:
        return None
    estimates = _estimates_of(frames, runs["run_id"])
    # the runs share the parsed estimate object where they stored the same one (store/provenance_read.py):
    # each distinct object is looked at once, from the column's own codes where it holds them
    # (store/shared_objects.py). A run that recorded none holds NaN in the provenance frame, None without one
    codes, firsts = object_codes(estimates)
    distinct = [estimates.iloc[i] for i in firsts]
    recorded = np.array([isinstance(d, dict) and bool(d) for d in distinct], dtype=bool)[codes]
    if not recorded.any():
        return None
    estimate = estimates.iloc[int(np.flatnonzero(recorded)[-1])]  # the estimate of the newest run
    same = np.array([isinstance(d, dict) and (d is estimate or d == estimate) for d in distinct], dtype=bool)[codes]
    runs, earlier = _newest_invocation(runs, np.flatnonzero(same))  # positions: runs[same] copied every run
    metrics = frames.metrics
    built = {}
    if metrics is not None and len(metrics):
        # the few compress_s rows first: isin over every row's run id costs a pyarrow scalar per wanted id
        sel = metrics[metrics["name"] == "compress_s"]
        wanted = set(runs["run_id"].tolist())
        built = {r: v for r, v in zip(sel["run_id"].tolist(), sel["value"].tolist()) if r in wanted}
    actual = dict.fromkeys(PHASES, 0.0)
    task_phase = {t: p for p, ts in PHASE_TASKS.items() for t in ts}
    for start in range(0, len(runs), _SLICE):  # a slice's columns as lists at a time: each cell a new str
        part = runs.iloc[start:start + _SLICE]
        columns = [part[c].tolist() for c in ("run_id", "task", "arm", "started_at", "finished_at")]
        for rid, task, arm, s, e in zip(*columns):
            if task not in task_phase or (wall := _seconds(s, e)) is None:
                continue
            actual[task_phase[task]] += wall
            if task == "compress" and arm in COMPRESSION_ARMS and built.get(rid):
                # the artefact is built inside the first task that needs it (generate): its time is compress's
                actual["compress"] += built[rid]
                actual["generate" if "generate" in set(runs.loc[runs["arm"] == arm, "task"]) else "compress"] -= built[rid]
    firsts = runs.groupby(["suite_config_hash", "arm", "size", "repetition"], sort=False)["run_id"].first()
    actual["start_idle"] = sum(float(s) for s in _per_run(frames, firsts.tolist(), "setup_s")[0] if not missing(s))
    phases = estimate.get("phases") or {}
    rows = [{"phase": p, "estimated_s": phases.get(p), "actual_s": actual[p]} for p in PHASES]
    rows.append({"phase": "total", "estimated_s": estimate.get("total_s"), "actual_s": sum(actual.values())})
    return {"estimate": estimate, "rows": rows, "repetitions": len(firsts), "earlier_runs": earlier,
            "note": ("actual: wall time of the task records; start and idle: from process start to the first task "
                     "(the fork itself and the gaps between repetitions are not in it); a compression arm trains "
                     "inside its generate task, counted there as in the estimate")}

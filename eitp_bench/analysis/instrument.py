"""What the instruments and run conditions allow the judge to say, from each run's provenance.

- `qualifications(provenance)`: run_id → the suite's sensor qualification (provenance.hardware
  .qualification, written when `meters.qualify` is on; energy/qualify.py).
- `systematic_bound(claim, rows, energy, metric, samples, quals)`: the residual systematic error
  of an energy ratio, δ = |s_c − s_b| with s = (edges/2)·e/T per run and e = D + P/2 the sensor's
  mean lag from its qualification; the judge widens the ratio's interval by it ([lo/(1+δ), hi/(1−δ)])
  before comparing with the claim. None unless every run with a figure is qualified (no widening).
- `energy_scope(run_ids, energy, windows)`: what the measured entries an energy claim rests on cover
  (energy/coverage.py, energy/nvml/): a MIG slice's figure is its whole GPU's (`mig_whole_gpu`:
  refused, NOT MEASURED); CPU work measured on the GPUs alone (`cpu_work_not_measured`: INCONCLUSIVE);
  a GPU-only total (`cpu_not_measured`) or a Grace Hopper scope (`module_scope`, `grace_hopper`): named.
- `isolation_codes(provenance)`: run_id → the isolation check's codes (`gpu_shared`, `cpu_busy`).
  These are caveats, not faults: a busy neighbour at the start of a repetition may or may not have
  drawn power during its windows, so affected repetitions are counted per arm and named in the
  verdicts of energy claims and in the report, never silently dropped nor silently kept.
"""

from __future__ import annotations

import statistics
from typing import Optional

from eitp_bench.analysis.per_object import RunPositions, RunValues, run_values, values_for

ISOLATION_CODES = ("gpu_shared", "cpu_busy")


def qualifications(provenance, positions=None) -> RunValues:
    """run_id → the run's sensor qualification (a mapping of run ids: per_object.RunValues)."""
    return run_values(provenance, "hardware.qualification", lambda q: q, positions)


def counter_steps(provenance, positions=None) -> RunValues:
    """run_id → a stand-in qualification from the energy counters' own observed update step (NVML's
    `counter_update_period_s` in the meter info), for runs the suite did not qualify: e = P/2, the
    delay unknown and not charged (`"from": "counter step"` says so in the verdict's figures)."""
    return run_values(provenance, "hardware.meter_info", _counter_step, positions)  # once per machine's info


def _counter_step(info: dict) -> Optional[dict]:
    nvml = info.get("nvml")
    gpus = (nvml.get("gpus") or ()) if isinstance(nvml, dict) else ()
    sensors = [{"meter": "nvml", "device": g.get("device"), "quantity": "energy", "windows": True,
                "update_period_s": g["counter_update_period_s"], "delay_s": None}
               for g in gpus if isinstance(g, dict) and g.get("counter_update_period_s")]
    return {"sensors": sensors, "from": "counter step"} if sensors else None


def lags_for_judge(provenance, positions=None) -> RunValues:
    """The judge's `instrument`: each run's qualification, else its counters' observed update step. With
    the isolation codes, held as codes per run (per_object.RunValues): the two dicts of 125 000 run ids a
    report read at 1 000 000 records were 27 MiB, held through every verdict."""
    positions = positions if positions is not None else positions_of(provenance)
    return qualifications(provenance, positions).over(counter_steps(provenance, positions))


def isolation_codes(provenance, positions=None) -> RunValues:
    """run_id → the isolation codes of the runs that have any (a clean run has none: absent)."""
    return run_values(provenance, "hardware.isolation", lambda c: _isolation_codes(c) or None, positions)


def positions_of(provenance) -> Optional[RunPositions]:
    """The provenance's run ids, to share between its lookups."""
    return RunPositions(provenance["run_id"]) if provenance is not None and len(provenance) else None


def _isolation_codes(check: dict) -> list[str]:
    return sorted({f.get("code") for f in check.get("flags") or () if f.get("code") in ISOLATION_CODES})


def isolation_counts(metrics, codes_by_run: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """Per arm: repetitions (size × seed × repetition) in total and those with each isolation code."""
    if metrics is None or len(metrics) == 0 or "arm" not in metrics.columns:
        return {}
    keys = [k for k in ("size", "seed", "repetition") if k in metrics.columns]
    runs = metrics[["arm", "run_id", *keys]].drop_duplicates("run_id")
    out: dict[str, dict[str, int]] = {}
    for arm, rows in runs.groupby("arm"):
        reps: dict[tuple, set[str]] = {}
        # columns as lists: a nightly store's group has tens of thousands of runs
        run_ids = rows["run_id"].tolist()
        for codes, *rep in zip(values_for(codes_by_run, run_ids), *(rows[k].tolist() for k in keys)):
            reps.setdefault(tuple(rep), set()).update(codes or ())
        counts = {"repetitions": len(reps)}
        for code in ISOLATION_CODES:
            counts[code] = sum(code in c for c in reps.values())
        out[str(arm)] = counts
    return out


# What the measured entries cover. Refusals first: a verdict on them would be about something else.
SCOPE_REFUSE = {"mig_whole_gpu": "MIG slice: NVML's energy counter is the whole GPU's, shared with the other "
                                 "instances, so no figure belongs to this slice"}
SCOPE_INCONCLUSIVE = {"cpu_work_not_measured": "GPU only; CPU not measured: the work ran on the CPU, which no "
                                               "sensor read, so the joules are the GPUs' draw, not the work's"}
SCOPE_NOTES = {"cpu_not_measured": "GPU only; CPU not measured",
               "module_scope": "Grace Hopper: power at module scope (GPU + CPU + memory)",
               "grace_hopper": "Grace Hopper: counter scope (GPU or module) not stated by NVML"}


def energy_scope(run_ids, energy, windows) -> dict[str, list[str]]:
    """{"refuse": [...], "inconclusive": [...], "notes": [...]}: the scope texts for the measured entries
    of these runs in these windows (empty lists: a complete, GPU-and-CPU or CPU-only, measured total)."""
    from eitp_bench.analysis.resultset import measured_only

    out: dict[str, list[str]] = {"refuse": [], "inconclusive": [], "notes": []}
    if energy is None or len(energy) == 0 or "flags" not in energy.columns:
        return out
    e = measured_only(energy[energy["run_id"].astype(str).isin({str(r) for r in run_ids})])
    if windows:
        e = e[e["window"].isin(windows)]
    codes = {c for flags in e["flags"] for c in flags}
    for key, table in (("refuse", SCOPE_REFUSE), ("inconclusive", SCOPE_INCONCLUSIVE), ("notes", SCOPE_NOTES)):
        out[key] = [text for code, text in table.items() if code in codes]
    return out


# ---------------------------------------------------------------- residual systematic bound of a ratio

DEFAULT_EDGES = 2  # a window (one segment) has a start and an end edge; k segments have 2k


def sensor_lag_s(qualification: Optional[dict], meter: str, device: str) -> Optional[float]:
    """Mean lag e of a qualified sensor behind the load it reports: D + P/2 (the delay, plus half an
    update: a read gets the energy as of the last update, on average half a period old), plus W/2 for a
    sampled power sensor that averages over W. The largest over the sensors of (meter, device) that
    energy windows rest on; None when not qualified."""
    if not qualification:
        return None
    lags = []
    for s in qualification.get("sensors", ()):
        if s.get("meter") != meter or s.get("device") != device or not s.get("windows"):
            continue
        if s.get("update_period_s") is None:
            continue
        lag = (s.get("delay_s") or 0.0) + s["update_period_s"] / 2
        if s.get("quantity") == "power":
            lag += (s.get("averaging_window_s") or 0.0) / 2
        lags.append(lag)
    return max(lags) if lags else None


def _run_figure(rows, run_id: str, name: str) -> Optional[float]:
    sel = rows.loc[(rows["run_id"].astype(str) == run_id) & (rows["name"] == name), "value"]
    return float(sel.iloc[0]) if len(sel) else None


def systematic_bound(claim, rows, energy, metric: str, samples: dict, quals: dict[str, dict], *,
                     edges: int = DEFAULT_EDGES) -> Optional[dict]:
    """The residual systematic error of an energy ratio, to widen its interval by.

    A sensor that lags the load by e shifts every window edge by e; in one window that misses about
    e seconds of its load at the end and adds e seconds of what ran before at the start, a relative
    bias of at most (edges/2)·e/T for a figure summed over edges/2 segments of T seconds in all. Both
    arms' windows are biased the same way (same machine, same idle-to-load profile), so in their
    ratio the bias largely cancels: what is left is at most δ = |s_c − s_b|, s = (edges/2)·e/T, taken
    as the largest difference between any candidate and any baseline run. Random edge error is in the
    rounds' spread already and is not charged again.

    Per run: e from its qualification (`sensor_lag_s`, largest over the measured entries of the
    metric's windows); T from the metric `<metric>_window_s` when the run recorded it (the to-target
    figure's own window), else the longest measured entry's duration; edges = 2 × `<metric>_segments`
    when recorded, else `edges`. Censored runs (+∞) carry no figure and are left out. None unless
    every run with a figure has a qualification or, failing that, a counter's observed update step
    (`lags_for_judge`: e = P/2, delay unknown; per arm `lag_from` says which); otherwise the interval
    is not widened.
    """
    import math

    from eitp_bench.analysis.resultset import measured_only

    if not quals or energy is None or len(energy) == 0:
        return None
    named = rows[rows["name"] == metric]
    windows = set(named["window"].dropna()) if "window" in named.columns else set()
    e_all = measured_only(energy)
    if windows:
        e_all = e_all[e_all["window"].isin(windows)]
    e_all = e_all[e_all["domain"].isin(("gpu", "package", "dram"))]
    out: dict = {}
    for arm in (claim.candidate, claim.baseline):
        df = samples[arm]
        ids = [str(r) for r, v in zip(df["run_id"], df["value"]) if math.isfinite(float(v))]
        per_run, origins = [], set()
        qual_of = dict(zip(ids, values_for(quals, ids)))  # these runs' only
        for run_id in ids:
            entries = e_all[e_all["run_id"].astype(str) == run_id]
            lags = [sensor_lag_s(qual_of[run_id], m, d) for m, d in zip(entries["meter"], entries["device"])]
            if not lags or any(x is None for x in lags):
                return None
            window_s = _run_figure(rows, run_id, f"{metric}_window_s") or float(entries["duration_s"].max())
            segments = _run_figure(rows, run_id, f"{metric}_segments")
            n_edges = 2 * int(segments) if segments else edges
            if not window_s > 0:
                return None
            lag = max(lags)
            origins.add((qual_of[run_id] or {}).get("from", "qualification"))
            per_run.append((lag, window_s, n_edges, n_edges / 2 * lag / window_s))
        if not per_run:
            return None
        biases = [r[3] for r in per_run]
        out[arm] = {"lag_s": statistics.median(r[0] for r in per_run),
                    "window_s": statistics.median(r[1] for r in per_run),
                    "edges": max(r[2] for r in per_run), "bias": max(biases), "bias_min": min(biases),
                    "runs": len(per_run), "lag_from": " + ".join(sorted(origins))}
    c, b = out[claim.candidate], out[claim.baseline]
    delta = max(c["bias"] - b["bias_min"], b["bias"] - c["bias_min"], 0.0)
    if delta >= 1:
        return None  # windows shorter than the lag: nothing can be said, and the judge says so elsewhere
    return {"systematic": delta, "rule": "δ = max |(edges/2)·e/T (candidate) − (edges/2)·e/T (baseline)|, "
                                         "e = D + P/2 (+ W/2 for sampled power)", **out}

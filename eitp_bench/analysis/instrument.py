"""What the instruments and run conditions allow the judge to say, from each run's provenance.

- `qualifications(provenance)`: run_id → the suite's sensor qualification (provenance.hardware
  .qualification, written when `meters.qualify` is on; energy/qualify.py).
- `resolution(run_ids, energy, windows, quals)`: the stated instrument uncertainty of an arm's energy
  windows. Per run, the largest u(T) = 2 · edge_s / T over the measured entries of the windows the
  metric rests on (a sum's relative error is at most its worst part's); per arm, the median over runs.
  None unless every run has a stated uncertainty (then the judge keeps its usual rules). A figure that
  sums k windows over T s (`figure_windows`: joules to target) counts 2k edges: u of one window of T / k.
- `isolation_codes(provenance)`: run_id → the isolation check's codes (`gpu_shared`, `cpu_busy`).
  These are caveats, not faults: a busy neighbour at the start of a repetition may or may not have
  drawn power during its windows, so affected repetitions are counted per arm and named in the
  verdicts of energy claims and in the report, never silently dropped nor silently kept.
"""

from __future__ import annotations

import statistics
from typing import Any, Optional

ISOLATION_CODES = ("gpu_shared", "cpu_busy")


def _hardware_column(provenance, key: str) -> dict[str, Any]:
    col = f"hardware.{key}"
    if provenance is None or len(provenance) == 0 or col not in provenance.columns:
        return {}
    return {str(r): v for r, v in zip(provenance["run_id"], provenance[col]) if isinstance(v, dict)}


def qualifications(provenance) -> dict[str, dict]:
    return _hardware_column(provenance, "qualification")


def isolation_codes(provenance) -> dict[str, list[str]]:
    out = {}
    for run_id, iso in _hardware_column(provenance, "isolation").items():
        codes = sorted({f.get("code") for f in iso.get("flags") or () if f.get("code") in ISOLATION_CODES})
        out[run_id] = codes
    return out


def run_uncertainty(rows: list[dict], qualification: Optional[dict]) -> Optional[float]:
    """The largest stated uncertainty over one run's measured entries; None if any cannot be stated."""
    from eitp_bench.energy.qualify import window_uncertainty

    values = [window_uncertainty(qualification, r["meter"], r["device"], r["duration_s"]) for r in rows]
    if not values or any(v is None for v in values):
        return None
    return max(values)


def figure_windows(rows, metric: str) -> dict[str, tuple[float, int]]:
    """run_id → (summed window seconds, segments) a figure records beside itself (to-target figures:
    `names.window_seconds(metric)`, `names.window_segments(metric)`); empty for other figures."""
    from eitp_bench import names

    if rows is None or len(rows) == 0:
        return {}
    seconds, count = names.window_seconds(metric), names.window_segments(metric)
    sel = rows[rows["name"].isin([seconds, count])]
    if len(sel) == 0:
        return {}
    wide = sel.pivot_table(index="run_id", columns="name", values="value", aggfunc="first")
    if seconds not in wide.columns or count not in wide.columns:
        return {}
    return {str(r): (float(t), int(k)) for r, t, k in zip(wide.index, wide[seconds], wide[count]) if t > 0 and k >= 1}


def resolution(run_ids, energy, windows, quals: dict[str, dict],
               figures: Optional[dict[str, tuple[float, int]]] = None) -> Optional[dict[str, float]]:
    """{"u": median relative uncertainty, "window_s": median window, "runs": n} for these runs, or None.

    `figures` (figure_windows): a run whose figure sums k windows over T seconds (joules to target sums
    the training segments up to the crossing) has 2k edges, so its u is that of one window of T / k:
    2 · k · edge_s / T, not the whole training window's 2 · edge_s / T_train."""
    from eitp_bench.analysis.resultset import measured_only

    run_ids = [str(r) for r in run_ids]
    if not run_ids or not quals or energy is None or len(energy) == 0:
        return None
    e = measured_only(energy[energy["run_id"].astype(str).isin(run_ids)])
    if windows:
        e = e[e["window"].isin(windows)]
    e = e[e["domain"].isin(("gpu", "package", "dram"))]
    per_run, durations = [], []
    for run_id, rows in e.groupby(e["run_id"].astype(str)):
        entries = rows[["meter", "device", "duration_s"]].to_dict("records")
        if figures and run_id in figures:  # every edge of the windows the figure sums
            window_s, segments = figures[run_id]
            entries = [dict(r, duration_s=window_s / segments) for r in entries]
        u = run_uncertainty(entries, quals.get(run_id))
        if u is None:
            return None
        per_run.append(u)
        durations.append(figures[run_id][0] if figures and run_id in figures else float(rows["duration_s"].max()))
    if len(per_run) < len(set(run_ids)):
        return None
    return {"u": statistics.median(per_run), "window_s": statistics.median(durations), "runs": len(per_run)}


def isolation_counts(metrics, codes_by_run: dict[str, list[str]]) -> dict[str, dict[str, int]]:
    """Per arm: repetitions (size × seed × repetition) in total and those with each isolation code."""
    if metrics is None or len(metrics) == 0 or "arm" not in metrics.columns:
        return {}
    keys = [k for k in ("size", "seed", "repetition") if k in metrics.columns]
    runs = metrics[["arm", "run_id", *keys]].drop_duplicates("run_id")
    out: dict[str, dict[str, int]] = {}
    for arm, rows in runs.groupby("arm"):
        reps: dict[tuple, set[str]] = {}
        for r in rows.to_dict("records"):
            reps.setdefault(tuple(r[k] for k in keys), set()).update(codes_by_run.get(str(r["run_id"]), ()))
        counts = {"repetitions": len(reps)}
        for code in ISOLATION_CODES:
            counts[code] = sum(code in c for c in reps.values())
        out[str(arm)] = counts
    return out

"""Throttled windows: which runs of a claim ran with their GPU capped, for the judge to skip and name.

A window is throttled when its GPU spent more than gpu_state.THROTTLE_SHARE of the window power- or
thermal-capped (flags `throttled_power` / `throttled_thermal`, set by the NVML meter from the
violation counters). Energy and speed both move when clocks are held down, so energy claims and
speed claims (seconds or a rate per second) skip those runs; other claims (loss, accuracy, bytes) do not.
"""

from __future__ import annotations

from typing import Optional

from eitp_bench import names
from eitp_bench.flags import THROTTLE_CODES


def touches_speed(metric: Optional[str]) -> bool:
    """A claim on time: its metric's unit is seconds or a rate per second."""
    if not metric:
        return False
    spec = names.spec(metric) or names.spec(names.split_at(metric)[0])
    unit = spec.unit if spec is not None else ("s" if metric.split("@")[0].endswith("_s") else "")
    return unit == "s" or unit.endswith("/s")


def throttled_windows(rows, energy_df, task: Optional[str], arms: list[str], metric: Optional[str]) -> list[dict]:
    """One dict per throttled window of the claim's runs: run_id, arm, repetition, window, device, codes,
    shares. Only the metric's own windows count where the metric names one; else any window of the run."""
    if energy_df is None or len(energy_df) == 0 or "flags" not in energy_df.columns or rows is None or len(rows) == 0:
        return []
    sel = rows if task is None else rows[rows["task"] == task]
    sel = sel[sel["arm"].isin(arms)]
    run_ids = set(sel["run_id"])
    windows: set = set()
    if metric and "*" not in metric and "window" in sel.columns:
        windows = set(sel.loc[sel["name"] == metric, "window"].dropna())
    e = energy_df[energy_df["run_id"].isin(run_ids)]
    if windows:
        e = e[e["window"].isin(windows)]
    hit = e[e["flags"].map(lambda codes: any(c in THROTTLE_CODES for c in codes))]
    out = []
    for r in hit.to_dict("records"):
        state = r.get("hw_state") if isinstance(r.get("hw_state"), dict) else {}
        share = state.get("throttle_share") or {}
        out.append({"run_id": r["run_id"], "arm": r["arm"], "repetition": r.get("repetition"),
                    "window": r["window"], "device": r["device"],
                    "codes": [c for c in r["flags"] if c in THROTTLE_CODES],
                    "shares": {k: share.get(k) for k in ("power", "thermal") if share.get(k) is not None}})
    return out


def describe(hits: list[dict], limit: int = 6) -> str:
    """'baseline rep 2 train (gpu:0, power 30 %)' for each throttled window, the first `limit` of them."""
    parts = []
    for h in hits[:limit]:
        kinds = [c.removeprefix("throttled_") for c in h["codes"]]  # only what was over the share
        shares = ", ".join(f"{k} {h['shares'][k]:.0%}" if k in h["shares"] else k for k in kinds)
        parts.append(f"{h['arm']} rep {h['repetition']} {h['window']} ({h['device']}, {shares})")
    more = f" and {len(hits) - limit} more" if len(hits) > limit else ""
    return "; ".join(parts) + more

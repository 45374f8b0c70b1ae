"""Nightly regression detection over every stored series.

A series is (suite, task, arm, metric, hardware profile, energy state) ordered by start time, one
point per ok run; where a profile's runs came from several boards, each board is a series of its own
(analysis/hwstate.py: a power-limit change or a board swap is not a regression of the code). Candidate change points come from PELT (stats.change_points); each
is confirmed by a two-sided Mann–Whitney test of the N points before against the N
after, a minimum relative effect, and Benjamini–Hochberg across all candidates.
The metric's direction turns a confirmed change into a regression or an improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from eitp_bench import names
from eitp_bench.errors import UserError

SERIES_KEYS = ["suite", "task", "arm", "name", "hardware_profile_id"]


def series_keys(df) -> list[str]:
    """SERIES_KEYS + energy_state, + board where any hardware profile's runs came from several boards."""
    keys = [*SERIES_KEYS, "energy_state"]
    if "board" in df.columns and len(df) and (df.dropna(subset=["board"]).groupby("hardware_profile_id")["board"]
                                              .nunique() > 1).any():
        keys.append("board")
    return keys


def _keyed(metrics_df, provenance):
    from eitp_bench.analysis.resultset import energy_state_key

    df = metrics_df
    if len(df) and "status" in df.columns:
        df = df[df["status"] == "ok"]
    return energy_state_key(df, provenance)

def metric_direction(name: str) -> Optional[str]:
    """Which way is better: the metric's declaration in eitp_bench.names (or its naming convention)."""
    return names.direction(name)


def parse_threshold(text: str) -> float:
    """'5%' → 0.05, '0.05' → 0.05; anything else is a UserError."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError(f"--threshold {text!r} is not a number or a percentage",
                        fix="give a relative change such as 5% or 0.05") from None
    if not 0 < value < 10:
        raise UserError(f"--threshold {text!r} must be a positive relative change below 1000 %",
                        fix="give a relative change such as 5% or 0.05")
    return value


@dataclass
class Change:
    suite: str
    task: str
    arm: str
    metric: str
    hardware_profile_id: Optional[str]
    index: int  # position in the series of the first point after the change
    run_id: str  # the first run after the change
    started_at: str
    before: float  # median of the window before
    after: float  # median of the window after
    relative: float  # after ÷ before − 1
    p_value: float
    q_value: float = 1.0
    kind: str = "change"  # regression, improvement or change (unknown direction)
    confirmed: bool = False
    energy_state: str = ""  # the series' hardware state (hwstate.state_label)
    board: Optional[str] = None  # the board, where the fleet has several per profile

    @property
    def series(self) -> str:
        board = f"#{self.board}" if self.board else ""
        state = f" [{self.energy_state}]" if self.energy_state else ""
        return f"{self.suite}/{self.task}/{self.arm}/{self.metric}@{self.hardware_profile_id}{board}{state}"


def testable_series(metrics_df, *, min_size: int = 3, provenance=None) -> tuple[int, int]:
    """(series with enough points for a change point, all series): regress says how many it could test."""
    if len(metrics_df) == 0:
        return 0, 0
    df = _keyed(metrics_df, provenance)
    sizes = df.groupby(series_keys(df), sort=False, dropna=False).size()
    return int((sizes >= 2 * min_size).sum()), len(sizes)


def find_changes(metrics_df, *, window: int = 8, threshold: float = 0.05, alpha: float = 0.05,
                 min_size: int = 3, provenance=None) -> list[Change]:
    """Every candidate change point, with q-values; `confirmed` marks the ones that pass all three tests."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    from eitp_bench.analysis.stats import benjamini_hochberg, change_points

    if window < 2:
        raise UserError(f"--window {window} is too small", fix="use at least 2 points per side (8 is typical)")
    df = _keyed(metrics_df, provenance)
    if len(df) == 0:
        return []
    df = df.sort_values("started_at", kind="stable")
    keys = series_keys(df)
    candidates: list[Change] = []
    for key, series in df.groupby(keys, sort=True, dropna=False):
        named = dict(zip(keys, (_plain(v) for v in key)))
        values = series["value"].to_numpy(dtype=float)
        if len(values) < 2 * min_size:
            continue
        for k in change_points(values, min_size=min_size):
            before, after = values[max(0, k - window):k], values[k:k + window]
            b, a = float(np.median(before)), float(np.median(after))
            if b == 0 or (np.ptp(np.r_[before, after]) == 0):
                continue
            p = float(mannwhitneyu(before, after, alternative="two-sided").pvalue)
            row = series.iloc[k]
            candidates.append(Change(named["suite"], named["task"], named["arm"], named["name"],
                                     named["hardware_profile_id"], index=int(k), run_id=str(row["run_id"]),
                                     started_at=str(row["started_at"]), before=b, after=a,
                                     relative=a / b - 1, p_value=p, energy_state=named["energy_state"] or "",
                                     board=named.get("board")))
    if not candidates:
        return []
    q = benjamini_hochberg([c.p_value for c in candidates])
    for c, qv in zip(candidates, q):
        c.q_value = float(qv)
        c.confirmed = c.q_value <= alpha and abs(c.relative) >= threshold
        direction = metric_direction(c.metric)
        if direction:
            better = c.relative > 0 if direction == "higher_is_better" else c.relative < 0
            c.kind = "improvement" if better else "regression"
    return candidates


def _plain(v):
    return None if v is None or (isinstance(v, float) and v != v) else v


def confirmed(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.confirmed]

"""Board-to-board variation within one hardware profile (docs/hardware-state.md).

Two boards of one SKU differ in energy by several per cent (8 % on average, up to 22 % measured
across a large fleet), so a profile's figure from several boards carries a between-board component
that the runs' own scatter does not show. Per board we take the mean and the within-board variance
of log values (ratios are what compare reports); the between-board variance τ² is the
DerSimonian–Laird random-effects estimate:

    w_i = n_i / s_p²                      (s_p²: within-board variance pooled over boards with n ≥ 2)
    Q   = Σ w_i (y_i − ȳ_w)²,  ȳ_w = Σ w_i y_i / Σ w_i
    τ²  = max(0, (Q − (k − 1)) / (Σ w_i − Σ w_i² / Σ w_i))

Where no board has two runs (s_p² unknown) τ² is the plain variance of the board means (one-way
ANOVA with the within part unknown: the spread is all counted as between boards, the cautious side).
The profile's interval is widened by adding z·τ in quadrature to each log half-width: a new board of
this SKU may sit anywhere in that spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

Z95 = 1.959963984540054


@dataclass
class BoardSpread:
    medians: dict[str, float]  # board → median of its runs
    runs: dict[str, int]  # board → runs
    spread: float  # max ÷ min board median − 1
    tau: float  # between-board standard deviation of log values (≈ relative sd)
    method: str  # "DerSimonian-Laird" or "variance of board means"


def board_spread(values_by_board: dict[str, list[float]]) -> Optional[BoardSpread]:
    """None for fewer than two boards or non-positive values (no log scale)."""
    import numpy as np

    boards = {b: np.asarray(v, dtype=float) for b, v in values_by_board.items() if len(v)}
    if len(boards) < 2 or any((v <= 0).any() for v in boards.values()):
        return None
    logs = {b: np.log(v) for b, v in boards.items()}
    y = np.array([v.mean() for v in logs.values()])
    n = np.array([len(v) for v in logs.values()], dtype=float)
    k = len(y)
    dof = sum(len(v) - 1 for v in logs.values())
    within = sum(float(((v - v.mean()) ** 2).sum()) for v in logs.values()) / dof if dof > 0 else None
    if within is None or within <= 0:
        tau2, method = float(np.var(y, ddof=1)), "variance of board means"
    else:
        w = n / within
        ybar = float((w * y).sum() / w.sum())
        q = float((w * (y - ybar) ** 2).sum())
        denom = float(w.sum() - (w ** 2).sum() / w.sum())
        tau2, method = (max(0.0, (q - (k - 1)) / denom) if denom > 0 else 0.0), "DerSimonian-Laird"
    medians = {b: float(np.median(v)) for b, v in boards.items()}
    return BoardSpread(medians, {b: len(v) for b, v in boards.items()},
                       max(medians.values()) / min(medians.values()) - 1, math.sqrt(tau2), method)


def widened(median: float, lo: float, hi: float, tau: float) -> tuple[float, float]:
    """[lo, hi] around `median` with z·τ added in quadrature to each side's log half-width."""
    if not (median > 0 and lo > 0 and hi > 0) or tau <= 0:
        return lo, hi
    down, up = math.log(median / lo), math.log(hi / median)
    extra = Z95 * tau
    return median * math.exp(-math.hypot(down, extra)), median * math.exp(math.hypot(up, extra))

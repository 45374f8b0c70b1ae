"""The counter-vs-sampled cross-check, at the scale of the figure a record keeps.

Where a GPU has an energy counter, the counter is the figure; the integral of the sampled power is a
cross-check only. A100/H100 power fields average only about a quarter of each update period (Yang et
al., SC24, "Part-time power measurements"), so the samples can miss short bursts that the counter
sees: they are never the primary figure where a counter exists.

Why they differ even when both are right: at each window edge the counter holds the energy up to its
last update (up to one period P earlier, plus its delay D), while the power samples smear the edge over
their averaging window W. So at each of a window's two edges up to D + max(P, W) seconds of energy can
land on either side, and the two figures may be apart by up to

    tolerance_j = 2 · edge_s · joules / T

with edge_s = the qualified D + max(P, W) (energy/qualify.py), or, unqualified, the counter's step:
max(P, the sampling interval) (one update's energy at each edge; the trapezoid's one interval). On
top of that the sensor's own accuracy: never less than FLOOR × joules (5 %).

A phase measured in segments (several windows merged by monitor.merge_windows) is checked once, on
its merged figure: its figures are the sums, its tolerance the sum of its segments' (each segment has
two edges of its own: a worst-case bound, no cancellation assumed). So one segment whose edges fall
badly no longer flags, and drops, the whole phase when the others make up for it; a counter that
disagrees with the samples over the whole phase by more than the edges allow still does.
"""

from __future__ import annotations

from typing import Optional

from eitp_bench.flags import Flag, flag
from eitp_bench.records import EnergyEntry

FLOOR = 0.05  # the power reading's own accuracy: never check tighter than 5 %
CODE = "crosscheck_mismatch"


def tolerance_j(joules: float, duration_s: float, edge_s: float) -> float:
    """How far apart the counter and the sampled integral may be over one window (J)."""
    edges = 2 * edge_s * joules / duration_s if duration_s > 0 else float("inf")
    return max(FLOOR * joules, edges)


def mismatch(counter_j: float, sampled_j: Optional[float], tol_j: Optional[float],
             what: str = "") -> Optional[Flag]:
    """A `crosscheck_mismatch` flag when the two figures are further apart than `tol_j`, else None."""
    if sampled_j is None or tol_j is None or not counter_j > 0:
        return None
    apart = abs(counter_j - sampled_j)
    if apart <= tol_j:
        return None
    return flag("crosscheck_mismatch", f"cross-check{what}: counter {counter_j:.3f} J vs sampled power integral "
                f"{sampled_j:.3f} J "
                f"are {100 * apart / counter_j:.1f} % apart (> the {100 * tol_j / counter_j:.1f} % that the "
                "window's edges and the sensor's accuracy allow)")


def recheck(entry: EnergyEntry, segments: int) -> EnergyEntry:
    """A merged entry's cross-check redone on its sums: the segments' own verdicts are replaced."""
    flags = [f for f in entry.flags if f.code != CODE]
    if entry.method == "counter" and entry.joules is not None:
        note = mismatch(entry.joules, entry.sampled_joules, entry.crosscheck_tolerance_j,
                        f" over the merged phase ({segments} windows, {entry.duration_s:.3g} s)")
        if note is not None:
            flags.append(note)
    entry.flags = flags
    return entry

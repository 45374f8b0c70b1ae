"""Steady-state energy windows (ML.ENERGY's rule): at least 5 s, and at least 50 counter updates.

A short window measures the edges more than the work: the counter's update period, the sensor's delay
and averaging, and the power ramp of a GPU leaving idle all sit at the edges (see energy/qualify.py
for the stated uncertainty, 2 · (delay + max(period, averaging)) / T). So an energy figure comes from a
window of at least max(STEADY_MIN_S, the suite's `meters.min_window_s`, STEADY_MIN_UPDATES × the
counter's update period); a shorter measured entry carries `not_steady`, a FAULT code: the claims judge
skips it and counts it. A suite may ask its tasks for shorter windows (the smoke suite does, to stay
fast), but never lowers this bar: its figures stay figures, not verdicts.

Phases measured in segments are judged on their summed duration: the phase is the figure. (Training is
one window; a to-target figure read part-way is judged on the span from its start to that read.) Warm-up stays outside the windows (generation runs its warm-up calls first; the
training window is the whole cost of training, warm-up steps included, by definition).
"""

from __future__ import annotations

from typing import Optional

from eitp_bench.flags import flag
from eitp_bench.records import MEASURED_METHODS, EnergyEntry

STEADY_MIN_S = 5.0
STEADY_MIN_UPDATES = 50
# Counter update periods: RAPL ~1 ms; NVML's energy counter 20-100 ms (the slow end, conservatively).
UPDATE_PERIOD_S = {"rapl": 0.001, "nvml": 0.1}


def required_s(meter: str, min_window_s: Optional[float] = None) -> float:
    """The shortest steady window for this meter's counter."""
    updates = STEADY_MIN_UPDATES * UPDATE_PERIOD_S.get(meter, 0.0)
    return max(STEADY_MIN_S, min_window_s or 0.0, updates)


def flag_unsteady(entries: list[EnergyEntry], min_window_s: Optional[float] = None) -> list[EnergyEntry]:
    """The entries, measured ones shorter than `required_s` with a `not_steady` flag added (copies)."""
    out = []
    for e in entries:
        need = required_s(e.meter, min_window_s)
        # The node's own figure (energy/node_power.py) is a note beside the measured parts, never judged on:
        # a fault on it would make the claims judge skip a window whose parts are fine.
        if e.method in MEASURED_METHODS and e.domain != "node" and e.duration_s < need \
                and not any(f.code == "not_steady" for f in e.flags):
            note = flag("not_steady", f"window of {e.duration_s:.3g} s is shorter than the steady-state minimum of "
                        f"{need:g} s (≥ {STEADY_MIN_S:g} s and ≥ {STEADY_MIN_UPDATES} counter updates): a figure, "
                        "not a verdict")
            e = e.model_copy(update={"flags": [*e.flags, note]})
        out.append(e)
    return out

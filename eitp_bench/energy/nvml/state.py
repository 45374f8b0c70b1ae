"""Each GPU's running state between marks: counter reads, the update period inferred from the changes
the reads saw (`inferred_period`), power and temperature samples, and the immutable marks (`GpuMark`,
`NvmlMark`) a window is made of.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Optional

from eitp_bench.energy.nvml.discovery import VisibleGpu


DEFAULT_POWER_LIMIT_W = 2000.0  # when NVML gives no power limit: above any board sold (B200 1000 W)
PERIOD_SPAN = 8  # counter changes averaged per run when inferring the update period
PERIOD_HISTORY = 65  # the last changes kept for it (8 runs of 8 intervals)


def inferred_period(change_times: list[float]) -> Optional[float]:
    """The counter's update period from the times its reads were seen to change: the median, over runs
    of up to PERIOD_SPAN consecutive changes, of the run's mean interval.

    Never the smallest interval: a change is seen at the first read after the update, so single
    intervals scatter by up to a read interval either way, and their minimum only shrinks as reads
    accumulate (72 ms for a true 100 ms on jittered 100-ms reads: benchmarks/crosscheck_scale.py).
    Averaging over a run divides that scatter by the run's length; the median ignores runs that hold
    a stall. Reads no denser than the updates cannot resolve the period (a read may hold two updates
    or none): the estimate is then an upper bound, which is why the meter calibrates at start and
    qualification polls fast.
    """
    n = len(change_times)
    if n < 2:
        return None
    span = min(PERIOD_SPAN, n - 1)
    runs = [(change_times[i + span] - change_times[i]) / span for i in range(n - span)]
    return statistics.median(runs)


@dataclass(frozen=True)
class GpuMark:
    counter_mj: Optional[int]
    sampled_j: float  # cumulative trapezoid integral of the power samples
    samples: int
    resets: int  # times the counter went backwards so far
    errors: int  # NVML errors so far
    error: Optional[str]  # the error of this very read, if any
    jumps: int = 0  # implausible counter steps so far
    stale_s: float = 0.0  # this mark's read was slow: the values are the last good read's, this much older
    stale_w: Optional[float] = None  # the last good power, to cover those stale_s
    # ... and what that slow read returned, when it returned: a window that *starts* at this mark
    # starts there (the measured code only began once the mark returned)
    late_t: Optional[float] = None
    late_counter_mj: Optional[int] = None
    late_w: Optional[float] = None
    state: Optional[dict] = None  # the board's state at this edge (energy/gpu_state.read_edge)


@dataclass(frozen=True)
class NvmlMark:
    t: float
    gpus: tuple[GpuMark, ...]


class _GpuState:
    def __init__(self, gpu: VisibleGpu, timeline_capacity: int):
        self.gpu = gpu
        self.device = f"gpu:{gpu.ordinal}"
        self.has_counter = False
        self.counter_note: Optional[str] = None  # why there is no counter
        self.power_source = "none"  # instant | instant-module | usage | none
        self.arch: Optional[int] = None
        self.mig = gpu.mig_instance is not None
        self.denied: Optional[str] = None  # NVML_ERROR_NO_PERMISSION at start: left out, with this reason
        self.name: Optional[str] = None
        self.changes: deque[float] = deque(maxlen=PERIOD_HISTORY)  # times of observed counter changes
        self.qualified_period_s: Optional[float] = None  # from `use_qualification`
        self.calibrated_period_s: Optional[float] = None  # from `calibrate` (fast reads at start)
        self.edge_s: Optional[float] = None  # qualified D + max(P, W): the cross-check's edge error
        # running state, guarded by the meter's lock
        self.counter_mj: Optional[int] = None
        self.last_t: Optional[float] = None
        self.last_w: Optional[float] = None
        self.sampled_j = 0.0
        self.samples = 0
        self.resets = 0
        self.errors = 0
        self.last_error: Optional[str] = None
        self.jumps = 0
        self.last_jump: Optional[str] = None
        self.power_limit_w = DEFAULT_POWER_LIMIT_W
        self.power_limit_known = False
        self.counter_t: Optional[float] = None  # time of the last good counter read
        self.good_t: Optional[float] = None  # time of the last good read (counter and power)
        self.slow: deque[tuple[float, float, str]] = deque(maxlen=1000)  # (start, seconds, call)
        self.late: Optional[tuple[float, Optional[int], Optional[float]]] = None  # the last slow read
        self.timeline: deque[tuple[float, float]] = deque(maxlen=timeline_capacity)
        self.temperatures: deque[tuple[float, float]] = deque(maxlen=timeline_capacity)  # (t, °C), polled
        self.temperature_t: Optional[float] = None

    @property
    def update_period_s(self) -> Optional[float]:
        return self.qualified_period_s or self.calibrated_period_s or inferred_period(list(self.changes))

    def snapshot(self, error: Optional[str], now: Optional[float] = None, slow: bool = False,
                 state: Optional[dict] = None) -> GpuMark:
        stale_s, stale_w, late = 0.0, None, (None, None, None)
        if slow and error is None and now is not None and self.good_t is not None:
            stale_s, stale_w = max(0.0, now - self.good_t), self.last_w
            late = self.late or late
        return GpuMark(self.counter_mj, self.sampled_j, self.samples, self.resets, self.errors, error,
                       self.jumps, stale_s, stale_w, *late, state=state)

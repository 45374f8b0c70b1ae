"""What the whole-node meters share (IPMI DCMI, Redfish): poll a wall-power reading, integrate it.

A baseboard management controller (BMC) reports the node's input power in watts, refreshed about once
a second; there is no energy counter. So a node meter polls `read_watts()` every `interval` seconds on
its own thread and a window's joules are the trapezoidal integral of those readings over the window:
method `sampled`, device `node:0`, domain `node`. The node's figure *contains* the GPU, CPU package and
DRAM joules (and fans, PSU loss, NICs, disks), so `node` is not an additive domain: it is never summed
into `measured_joules` (energy/base.ADDITIVE_DOMAINS); `energy/layers.py` checks that it adds up.

The clock is injectable and `sample_now()` public, so tests drive a meter reading by reading.
"""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from eitp_bench.energy.base import Channel, Meter, PowerSample
from eitp_bench.flags import flag
from eitp_bench.records import EnergyEntry

NODE_DEVICE = "node:0"
NODE_DOMAIN = "node"


class NodeReadError(Exception):
    """A reading failed; the message says why (never a credential)."""


@dataclass(frozen=True)
class NodeMark:
    t: float  # the meter's clock
    n: int  # readings taken so far (the list only grows)


class NodePowerMeter(Meter, abc.ABC):
    """A wall-power reading polled every `interval` s and integrated (trapezoid) over each window."""

    name = "node"
    # A BMC's own accuracy: typical DCMI/Redfish readings are within a few per cent of a calibrated
    # wall meter; 5 % is the figure the layers check allows this meter (energy/layers.py).
    uncertainty_rel = 0.05

    def __init__(self, *, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.clock = clock
        self._readings: list[tuple[float, float]] = []  # (t, watts), append-only, in time order
        self._errors: list[tuple[float, str]] = []  # (t, why) of failed reads
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @abc.abstractmethod
    def read_watts(self) -> float:
        """The node's power now, in watts; NodeReadError when it cannot be read."""

    def channels(self) -> list[Channel]:
        return [Channel(self.name, NODE_DEVICE, NODE_DOMAIN)]

    def sample_now(self) -> None:
        """Take one reading (or record why it failed), timed at the middle of the call (a BMC may take 100s of ms)."""
        t_asked = self.clock()
        try:
            watts = float(self.read_watts())
            why = None if watts == watts and watts >= 0 else f"reading {watts!r} W is not a power"
        except NodeReadError as err:
            watts, why = float("nan"), str(err)
        t = (t_asked + self.clock()) / 2
        with self._lock:
            if why is None:
                self._readings.append((t, watts))
            else:
                self._errors.append((t, why))

    def start(self) -> None:
        self.sample_now()  # the first read happens before any window opens
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"eitp-bench-{self.name}-poller", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample_now()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10 * self.interval + 10)  # a read is bounded by its own timeout
            self._thread = None

    def mark(self) -> NodeMark:
        with self._lock:
            return NodeMark(self.clock(), len(self._readings))

    def energy_between(self, begin: NodeMark, end: NodeMark) -> list[EnergyEntry]:
        # Its caveats (few_readings, read_failed) are notes, not FAULT codes: the claims judge skips a
        # window for a fault on any measured entry, and no claim rests on the node's joules.
        t0, t1 = begin.t, end.t
        with self._lock:
            readings = list(self._readings)
            errors = [why for t, why in self._errors if t0 <= t <= t1]
        duration = max(t1 - t0, 0.0)
        entry = dict(device=NODE_DEVICE, domain=NODE_DOMAIN, method="sampled", meter=self.name, duration_s=duration)
        inside = [(t, w) for t, w in readings if t0 <= t <= t1]
        before = [(t, w) for t, w in readings if t < t0][-1:]
        after = [(t, w) for t, w in readings if t > t1][:1]
        # Readings far from the window (more than two poll intervals) say nothing about it.
        near = self.interval * 2
        before = [(t, w) for t, w in before if t0 - t <= near]
        after = [(t, w) for t, w in after if t - t1 <= near]
        if not inside and not before:
            why = f"{self.name}: no reading during or just before the window" + (f" ({errors[-1]})" if errors else "")
            return [EnergyEntry(**entry, joules=None, flags=[flag("unreadable", why)])]
        points = _edge_points(before + inside + after, t0, t1)
        joules = sum((ta_w[1] + tb_w[1]) / 2 * (tb_w[0] - ta_w[0]) for ta_w, tb_w in zip(points, points[1:]))
        gaps = [b[0] - a[0] for a, b in zip(points, points[1:])]
        flags = []
        if len(inside) < 2:
            flags.append(flag("few_readings", f"{self.name}: {len(inside)} reading(s) inside a {duration:.3g} s window "
                                              f"(polled every {self.interval:g} s): the nearest readings are held"))
        if errors:
            flags.append(flag("read_failed", f"{self.name}: {len(errors)} failed read(s) in the window, "
                                                  f"integrated over the others (last: {errors[-1]})"))
        return [EnergyEntry(**entry, joules=joules, samples=len(inside), max_gap_s=max(gaps, default=duration),
                            flags=flags)]

    def power_samples(self, t0: float, t1: float) -> list[PowerSample]:
        with self._lock:
            return [PowerSample(t, NODE_DEVICE, NODE_DOMAIN, w) for t, w in self._readings if t0 <= t <= t1]


def _edge_points(readings: list[tuple[float, float]], t0: float, t1: float) -> list[tuple[float, float]]:
    """The piecewise-linear power curve through the readings, cut at t0 and t1 (held flat past the last)."""

    def at(t: float) -> float:
        if t <= readings[0][0]:
            return readings[0][1]
        if t >= readings[-1][0]:
            return readings[-1][1]
        for (ta, wa), (tb, wb) in zip(readings, readings[1:]):
            if ta <= t <= tb:
                return wa if tb == ta else wa + (wb - wa) * (t - ta) / (tb - ta)
        return readings[-1][1]  # pragma: no cover - the loop covers every t in range

    inside = [(t, w) for t, w in readings if t0 < t < t1]
    return [(t0, at(t0)), *inside, (t1, at(t1))]


def node_info(meter: NodePowerMeter, **facts: Any) -> dict[str, Any]:
    return {"interval_s": meter.interval, "uncertainty_rel": meter.uncertainty_rel, **facts}

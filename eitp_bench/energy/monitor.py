"""Named measurement windows over every meter that can read on this machine.

    monitor = EnergyMonitor()
    with monitor.window("train-step") as w:
        ...
    w.result.energy            # one records.EnergyEntry per device × domain, window named

A window is two marks per meter (see energy/base.py), so windows nest and overlap.
CUDA work is synchronised at both edges, so a window holds the GPU work queued
inside it and none from before it.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

from eitp_bench.energy.base import ADDITIVE_DOMAINS, Meter, MeterStatus, PowerSample
from eitp_bench.energy.layers import check_layers
from eitp_bench.records import MEASURED_METHODS, EnergyEntry, TimelinePoint

ChannelKey = tuple[str, str, str]  # meter, device, domain
STUCK_MARKS_S = 1.0  # end marks slower than this do not stretch the window (nvml.SLOW_READ_S alike)


def _key(e: EnergyEntry) -> ChannelKey:
    return (e.meter, e.device, e.domain)


def measured_entries(entries) -> list[EnergyEntry]:
    """Valid counter/sampled entries of additive domains (gpu, package, dram): what measured totals add."""
    return [e for e in entries if e.valid and e.method in MEASURED_METHODS and e.domain in ADDITIVE_DOMAINS]


@dataclass
class WindowResult:
    name: str
    start: float  # time.monotonic()
    end: float
    energy: list[EnergyEntry]
    timeline: list[PowerSample] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.end - self.start

    @property
    def measured(self) -> list[EnergyEntry]:
        """Valid counter/sampled entries of additive domains (gpu, package, dram)."""
        return measured_entries(self.energy)

    @property
    def covered_domains(self) -> list[str]:
        """The domains `measured_joules` adds (e.g. ["gpu"] where RAPL does not read: energy/coverage.py)."""
        return sorted({e.domain for e in self.measured})

    @property
    def measured_joules(self) -> Optional[float]:
        """Sum of measured joules over additive domains; None when nothing was measured."""
        measured = self.measured
        return sum(e.joules for e in measured) if measured else None  # type: ignore[misc]

    @property
    def measured_joules_flags(self) -> list[str]:
        """The flag codes (sorted, once each) on the entries summed into `measured_joules`.

        Empty: the total stands on unflagged readings. Not empty: the total is a number with a caveat
        (e.g. `slow_read`, `stalled`, `short_window`); claims should not rest on it. Invalid domains are
        not in the sum at all (see `complete`).
        """
        return sorted({f.code for e in self.measured for f in e.flags})

    @property
    def net_measured_joules(self) -> Optional[float]:
        measured = self.measured
        if not measured or any(e.net_joules is None for e in measured):
            return None
        return sum(e.net_joules for e in measured)  # type: ignore[misc]

    @property
    def estimated_joules(self) -> Optional[float]:
        """Estimated joules, kept apart: never part of `measured_joules`."""
        est = [e for e in self.energy if e.valid and e.method == "estimated" and e.domain in ADDITIVE_DOMAINS]
        return sum(e.joules for e in est) if est else None  # type: ignore[misc]

    @property
    def complete(self) -> bool:
        """True when no measured additive domain was flagged invalid in this window."""
        return all(e.valid for e in self.energy if e.method != "estimated" and e.domain in ADDITIVE_DOMAINS)

    def entries(self, window: Optional[str] = None) -> list[EnergyEntry]:
        """Copies for a RunRecord, under `window` (default: this window's name)."""
        return [e.model_copy(update={"window": window or self.name, "flags": list(e.flags)}) for e in self.energy]

    def timeline_points(self, t_ref: float, window: Optional[str] = None) -> list[TimelinePoint]:
        return [
            TimelinePoint(window=window or self.name, device=s.device, domain=s.domain, t=s.t - t_ref, watts=s.watts)
            for s in self.timeline
        ]


def merge_windows(results: list, window: str) -> list[EnergyEntry]:
    """One entry per channel summing several window results (segments of one phase).

    A channel invalid in any segment is invalid in the sum (joules None, flags kept): a phase's
    total is never silently missing a piece. The counter-vs-sampled cross-check is redone on the
    sums (energy/crosscheck.py): a phase is judged as one figure, not by its worst segment.
    """
    from eitp_bench.energy import crosscheck
    from eitp_bench.energy.gpu_state import merge_states, throttle_flags
    from eitp_bench.flags import THROTTLE_CODES

    merged: dict[tuple, EnergyEntry] = {}
    parts: dict[tuple, int] = {}
    for result in results:
        for e in result.energy:
            key = (e.meter, e.device, e.domain, e.rank, e.host)  # ranks' sensors stay apart (summed later)
            m = merged.get(key)
            parts[key] = parts.get(key, 0) + 1
            if m is None:
                merged[key] = e.model_copy(update={"window": window, "flags": list(e.flags)})
                continue
            m.joules = None if m.joules is None or e.joules is None else m.joules + e.joules
            m.sampled_joules = _add(m.sampled_joules, e.sampled_joules)
            m.crosscheck_tolerance_j = _add(m.crosscheck_tolerance_j, e.crosscheck_tolerance_j)
            m.duration_s += e.duration_s
            m.samples += e.samples
            gaps = [g for g in (m.max_gap_s, e.max_gap_s) if g is not None]
            m.max_gap_s = max(gaps) if gaps else None
            m.wraps += e.wraps
            m.flags.extend(f for f in e.flags if f not in m.flags)
            if m.hw_state is not None or e.hw_state is not None:  # throttled time adds up over the phase
                m.hw_state = merge_states([m.hw_state, e.hw_state])
    for key, m in merged.items():  # a phase is throttled by its summed capped time, not by one segment
        if parts[key] > 1 and m.hw_state is not None:
            m.flags = [f for f in m.flags if f.code not in THROTTLE_CODES] + throttle_flags(m.hw_state)
    return [crosscheck.recheck(m, parts[key]) if parts[key] > 1 else m for key, m in merged.items()]


def _add(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a + b


@dataclass
class IdleBaseline:
    duration_s: float
    watts: dict[ChannelKey, float]
    result: WindowResult

    def as_list(self) -> list[dict[str, Any]]:
        methods = {_key(e): e.method for e in self.result.energy}
        return [
            {"meter": m, "device": d, "domain": dom, "watts": w, "method": methods.get((m, d, dom))}
            for (m, d, dom), w in sorted(self.watts.items())
        ]


def _cuda_synchronize() -> None:
    # Only if the workload already uses torch with CUDA: never import torch just for this.
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except Exception:  # a broken CUDA context must not break the measurement itself
        pass


class Window:
    """One measurement window; a context manager. `result` is set when it closes."""

    def __init__(self, monitor: "EnergyMonitor", name: str):
        self.monitor = monitor
        self.name = name
        self.result: Optional[WindowResult] = None
        self._begin: Optional[list[Any]] = None
        self._t0 = 0.0
        self._closed = False

    def __enter__(self) -> "Window":
        return self.begin()

    def __exit__(self, *exc: Any) -> None:
        self.end()

    def begin(self) -> "Window":
        self._closed = False
        self.monitor._edge()
        self._t0 = time.monotonic()
        self._begin = [m.mark() for m in self.monitor.meters]
        t_marks = time.monotonic()
        if t_marks - self._t0 > STUCK_MARKS_S:  # stuck begin marks: the code starts only now
            self._t0 = t_marks
        return self

    def end(self) -> WindowResult:
        """Close the window: its result from the begin marks to end marks taken now (kept in `result`)."""
        self.result = self._read(self.name, timeline=self.monitor.timeline)
        self._closed = True
        self.monitor._finished(self.result)
        return self.result

    def so_far(self, name: Optional[str] = None) -> WindowResult:
        """The window's result from its begin marks to marks taken now, leaving it open.

        Built exactly as `end()` builds its result (the same edge, marks, layers check and, on several
        ranks, the same barrier and gather: every rank must call it at the same point, as it calls
        `end()`), so a figure read part-way through a window is as good as that of a window closed
        there. It carries no power timeline (the closing `end()` takes the whole span's once) and is not
        one of the monitor's `results`: it is a reading, not a window of its own. Uses: cumulative
        training energy at each evaluation step (workloads/train.py) inside one long window.
        """
        if self._closed:
            raise RuntimeError(f"window {self.name!r} is closed: read it before end()")
        return self._read(name or self.name, timeline=False)

    def _read(self, name: str, *, timeline: bool) -> WindowResult:
        if self._begin is None:
            raise RuntimeError(f"window {self.name!r} was never opened")
        self.monitor._edge()
        t_code = time.monotonic()  # the measured code has ended (or, for so_far, reached this point)
        end_marks = [m.mark() for m in self.monitor.meters]
        t_marks = time.monotonic()
        # Normally the window closes after the end marks, so every meter's interval lies inside it.
        # Marks that took longer than STUCK_MARKS_S were stuck (a hung sensor call, flagged by its
        # meter): the window then ends when the code ended, not when the call returned.
        t1 = t_marks if t_marks - t_code <= STUCK_MARKS_S else t_code
        energy: list[EnergyEntry] = []
        samples: list[PowerSample] = []
        for meter, b, e in zip(self.monitor.meters, self._begin, end_marks):
            energy.extend(meter.energy_between(b, e))
            if timeline:
                samples.extend(meter.power_samples(self._t0, t_marks))
        for entry in energy:
            entry.window = name
            if entry.idle_watts is None:
                entry.idle_watts = self.monitor.idle_watts.get(_key(entry))
        energy = check_layers(self.monitor._combine(energy))  # node ≥ GPU + CPU + DRAM, else flagged
        return WindowResult(name, self._t0, t1, energy, sorted(samples, key=lambda s: s.t))


class EnergyMonitor:
    """Every meter that can read here, behind named windows.

    meters: explicit meters (tests, custom set-ups); by default `discover_meters()`.
    interval: sampling interval in seconds for samplers and the power timeline.
    timeline: keep power timelines in window results.
    estimate: "auto" adds the CPU-time estimate only when no sensor can read,
              "never" leaves it out, "always" adds it beside the sensors.
    """

    def __init__(
        self,
        meters: Optional[Iterable[Meter]] = None,
        *,
        interval: float = 0.1,
        timeline: bool = False,
        cuda_sync: bool = True,
        estimate: str = "auto",
        tdp_w: Optional[float] = None,
        keep_results: int = 10_000,
    ):
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.timeline = timeline
        self.cuda_sync = cuda_sync
        self.statuses: list[MeterStatus] = []
        if meters is None:
            meters, self.statuses = discover_meters(interval=interval, estimate=estimate, tdp_w=tdp_w)
        self.meters: list[Meter] = list(meters)
        self.idle_watts: dict[ChannelKey, float] = {}
        self.idle: Optional[IdleBaseline] = None
        self.results: list[WindowResult] = []
        self._keep = keep_results
        self._lock = threading.Lock()
        self._closed = False
        self.started_at = time.monotonic()
        for meter in self.meters:
            meter.start()

    # -- windows ---------------------------------------------------------------------------
    def window(self, name: str) -> Window:
        """A named window: `with monitor.window("x") as w:` or `@monitor.window("x")`."""
        return _WindowFactory(self, name)  # type: ignore[return-value]

    def begin(self, name: str) -> Window:
        """Open a window explicitly; close it with `.end()` (returns the result)."""
        return Window(self, name).begin()

    # Hooks for multi-rank repetitions (eitp_bench/distributed/energy_gather.RankMonitor): what happens at
    # each window edge before the marks, and what becomes of this process's entries when a window closes.
    def _edge(self) -> None:
        if self.cuda_sync:
            _cuda_synchronize()

    def _combine(self, energy: list[EnergyEntry]) -> list[EnergyEntry]:
        return energy

    def _finished(self, result: WindowResult) -> None:
        with self._lock:
            self.results.append(result)
            if len(self.results) > self._keep:
                del self.results[: len(self.results) - self._keep]

    # -- idle baseline ---------------------------------------------------------------------
    def measure_idle(self, seconds: float) -> IdleBaseline:
        """Measure the same meters over an idle period; later windows carry idle watts and net joules."""
        if seconds <= 0:
            raise ValueError("idle period must be positive")
        with self.window("idle") as w:
            time.sleep(seconds)
        result = w.result
        assert result is not None
        watts = {_key(e): e.watts for e in result.energy if e.watts is not None}
        self.idle_watts = watts  # type: ignore[assignment]
        self.idle = IdleBaseline(result.duration_s, watts, result)  # type: ignore[arg-type]
        return self.idle

    # -- facts -----------------------------------------------------------------------------
    @property
    def measures_anything(self) -> bool:
        return any(m.name != "estimate" for m in self.meters)

    def info(self) -> dict[str, Any]:
        return {m.name: m.info() for m in self.meters}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        failure: Optional[BaseException] = None
        for meter in self.meters:  # every meter stops (and joins its threads), even if one fails to
            try:
                meter.stop()
            except Exception as err:
                failure = failure or err
        if failure is not None:
            raise failure

    def __enter__(self) -> "EnergyMonitor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _WindowFactory(Window):
    """A Window that can also decorate: each call of the function gets its own window."""

    def __call__(self, fn: Callable) -> Callable:
        monitor, name = self.monitor, self.name

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            w = Window(monitor, name)
            with w:
                out = fn(*args, **kwargs)
            wrapper.result = w.result  # type: ignore[attr-defined]
            return out

        wrapper.result = None  # type: ignore[attr-defined]
        return wrapper


def discover_meters(
    *, interval: float = 0.1, estimate: str = "auto", tdp_w: Optional[float] = None,
    gpus: Optional[list[int]] = None, node_meters: bool = True,
) -> tuple[list[Meter], list[MeterStatus]]:
    """Build every meter that can read on this machine; return them with all probe statuses.

    One rank of a multi-rank repetition reads only its share: `gpus` the (torch) ordinals of the GPUs it
    owns (None: every visible GPU, [] none), `node_meters` whether it owns the machine-wide CPU/DRAM
    meters (RAPL). A rank that leaves a sensor to another process adds no estimate in its place.
    """
    from eitp_bench.energy.estimate import CpuTimeEstimateMeter
    from eitp_bench.energy.nvml import CALIBRATE_S, NvmlMeter
    from eitp_bench.energy.rapl import RaplMeter
    from eitp_bench.errors import UserError

    if estimate not in ("auto", "never", "always"):
        raise ValueError("estimate must be auto, never or always")
    meters: list[Meter] = []
    statuses: list[MeterStatus] = []

    rapl_status = RaplMeter.probe()
    statuses.extend(rapl_status)
    rapl_reads = any(s.available for s in rapl_status)
    if rapl_reads and node_meters:
        meters.append(RaplMeter())

    nvml_status = NvmlMeter.probe()
    statuses.extend(nvml_status)
    nvml_reads = any(s.available for s in nvml_status)
    if nvml_reads and gpus != []:
        try:
            # (GPUs left out for NVML_ERROR_NO_PERMISSION are in the probe's statuses, with the reason)
            meters.append(NvmlMeter(interval=interval, devices=gpus, calibrate_s=CALIBRATE_S))
        except UserError as err:  # probed fine, then failed to start: a status line, not a crash
            statuses.append(MeterStatus("nvml", False, reason=err.message, fix=err.fix))

    read_elsewhere = (rapl_reads and not node_meters) or (nvml_reads and gpus == [])  # by another rank
    if estimate == "always" or (estimate == "auto" and not meters and not read_elsewhere):
        meters.append(CpuTimeEstimateMeter(tdp_w=tdp_w))
    statuses.extend(CpuTimeEstimateMeter.probe())
    if node_meters:  # the whole node's power (BMC): read by the rank that reads RAPL; never added in
        node, node_status = discover_node_meters(interval=interval)
        meters.extend(node)
        statuses.extend(node_status)
    return meters, statuses


NODE_INTERVAL_S = 1.0  # a BMC refreshes its power reading about once a second: polling faster reads repeats


def discover_node_meters(*, interval: float = 0.1) -> tuple[list[Meter], list[MeterStatus]]:
    """The whole-node meters that answer here (IPMI DCMI, Redfish when configured), with their statuses."""
    from eitp_bench.energy.ipmi import IpmiDcmiMeter
    from eitp_bench.energy.node_power import NodeReadError
    from eitp_bench.energy.redfish import RedfishMeter

    meters: list[Meter] = []
    statuses: list[MeterStatus] = []
    for cls in (IpmiDcmiMeter, RedfishMeter):
        found = cls.probe()
        statuses.extend(found)
        if any(s.available for s in found):
            try:
                meters.append(cls(interval=max(interval, NODE_INTERVAL_S)))
            except NodeReadError as err:  # answered the probe, then not: a status line, not a crash
                statuses.append(MeterStatus(cls.name, False, "node:0", "node", reason=str(err)))
    return meters, statuses

"""Instrument qualification: how fast, how smoothed and how late each sensor follows a known load.

A few seconds of a square-wave load (off, on, off, …) run while every raw sensor is polled fast.
From the readings, per sensor:

- update period P: the sensor's value only changes at its updates. The intervals between observed
  changes are whole multiples of P (a steady reading may repeat a value), so P = Σ intervals / Σ k,
  with k = the interval divided by the shortest typical interval (10th percentile), rounded.
- averaging window W: a boxcar average over W seconds answers a load step with a linear ramp that
  lasts W. Each reading's level is normalised to the step (0 before, 1 after, from the settled
  levels of each half-period) and W = (t90 − t10) / 0.8, where t10/t90 are the first readings at or
  above 10 % and 90 %. An energy counter reports the energy up to its last update, i.e. the mean
  power of each update interval: its W is P by construction. The sensor must be polled well under its
  update period (POLL_RESOLVES); a note says when the poller could not keep up. A W shorter than P cannot be resolved from readings P apart (partial-period sampling, as
  on A100/H100, shows up only as W ≈ P).
- response delay D: t10 − the step − 0.1 W − P/2 − poll/2. The first reading at or above a level
  comes on average half an update (and half a poll) after the level is crossed; the edges are
  jittered so that phase averages out over the edges.

Stated uncertainty of an energy window of T seconds. At each edge, a sensor attributes energy up to
D + max(P, W) seconds away from where it was drawn (the delay, plus the update the edge falls in or
the averaging span), so a window's joules can be off by up to that span at full power at each of its
two edges: u(T) = 2 · (D + max(P, W)) / T (relative). This is conservative: the power outside the
window (idle) is not zero, which reduces the real error; and it leaves out the sensor's gain error,
which a step response cannot see (it cancels in ratios of one machine's windows).

Everything is injectable (load, clock, sleep, sensors) so tests and benchmarks drive it with
simulated sensors of known P, W and D. The CPU load is a set of spinning child processes stopped and
resumed with signals; the GPU load (only when an NVML sensor is qualified) is a matmul loop in a
thread: torch and CUDA are touched on that path only.
"""

from __future__ import annotations

import random
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Optional, Protocol

from eitp_bench.energy.base import Sensor

LEVELS = (0.1, 0.9)  # rise measured from 10 % to 90 % of the step
SETTLED_TAIL = 0.3  # the last 30 % of each half-period gives its settled level
MIN_STEP_FRACTION = 0.02  # a step smaller than 2 % of the higher level is no response to the load
MIN_CHANGES = 5
# Changes are seen at poll times, so each interval between them is off by up to one poll: with polls
# under a third of the period, rounding an interval to whole periods is still exact.
POLL_RESOLVES = 3


class Load(Protocol):
    name: str

    def set(self, on: bool) -> None: ...

    def close(self) -> None: ...


@dataclass
class SensorQualification:
    meter: str
    device: str
    domain: str
    quantity: str
    source: str
    windows: bool
    update_period_s: Optional[float]
    averaging_window_s: Optional[float]
    delay_s: Optional[float]
    edges_used: int
    changes: int
    step_fraction: Optional[float]  # the load step as a fraction of the higher level
    note: str = ""

    @property
    def edge_s(self) -> Optional[float]:
        """Seconds of misattributed energy per window edge: D + max(P, W) (unknown parts count 0)."""
        if self.update_period_s is None:
            return None
        return (self.delay_s or 0.0) + max(self.update_period_s, self.averaging_window_s or 0.0)

    def uncertainty(self, window_s: float) -> Optional[float]:
        """Relative uncertainty of an energy window of `window_s` seconds: 2 · edge_s / T."""
        edge = self.edge_s
        return None if edge is None or window_s <= 0 else 2 * edge / window_s

    def min_window_s(self, target: float = 0.01) -> Optional[float]:
        """The shortest window whose stated uncertainty is at most `target` (1 % by default)."""
        edge = self.edge_s
        return None if edge is None else 2 * edge / target

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["edge_s"] = self.edge_s
        d["min_window_s_1pct"] = self.min_window_s(0.01)
        return d


@dataclass
class Qualification:
    load: str
    half_period_s: float
    cycles: int
    poll_s: float
    sensors: list[SensorQualification] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # sensors or loads that could not be qualified

    def as_dict(self) -> dict[str, Any]:
        return {"load": self.load, "half_period_s": self.half_period_s, "cycles": self.cycles,
                "poll_s": self.poll_s, "sensors": [s.as_dict() for s in self.sensors],
                "problems": list(self.problems),
                "uncertainty_formula": "u(T) = 2 * (delay_s + max(update_period_s, averaging_window_s)) / T"}


# --- running the square wave ------------------------------------------------------------------

@dataclass
class Trace:
    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    error: str = ""  # the last read failure, for the problem line of a sensor that never read


def run_square_wave(sensors: list[Sensor], load: Load, *, half_period_s: float, cycles: int, poll_s: float,
                    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                    jitter: float = 0.25, seed: int = 0) -> tuple[list[Trace], list[tuple[float, bool]]]:
    """Poll every sensor every `poll_s` through `cycles` × (off, on) half-periods after an initial off one.

    Each half-period lasts half_period_s × (1 + U[0, jitter)) so that update phases vary between edges.
    Returns one trace per sensor and the edges as (time, on)."""
    rng = random.Random(seed)
    traces = [Trace() for _ in sensors]
    edges: list[tuple[float, bool]] = []
    states = [False] + [on for _ in range(cycles) for on in (True, False)]
    load.set(False)
    try:
        t_next = clock()
        for i, on in enumerate(states):
            if i > 0:
                load.set(on)
                edges.append((clock(), on))
            t_next += half_period_s * (1 + rng.random() * jitter)
            while clock() < t_next:
                for s, tr in zip(sensors, traces):
                    try:
                        v = float(s.read())
                    except Exception as err:  # a failed read is a gap in the trace, never a crash
                        tr.error = f"{type(err).__name__}: {err}"
                        continue
                    tr.times.append(clock())
                    tr.values.append(v)
                sleep(poll_s)
    finally:
        load.set(False)
    return traces, edges


# --- estimating P, W, D from one trace -----------------------------------------------------------

def _changes(trace: Trace) -> tuple[list[float], list[float]]:
    """Times and values of the readings that differ from the one before (the sensor's updates)."""
    ts, vs = [], []
    prev = None
    for t, v in zip(trace.times, trace.values):
        if prev is not None and v != prev:
            ts.append(t)
            vs.append(v)
        prev = v
    return ts, vs


def update_period(change_times: list[float]) -> Optional[float]:
    """P from the intervals between changes, each a whole number of periods (see the module doc)."""
    iv = [b - a for a, b in zip(change_times, change_times[1:]) if b > a]
    if len(iv) < MIN_CHANGES - 1:
        return None
    base = sorted(iv)[len(iv) // 10]
    ks = [max(1, round(x / base)) for x in iv]
    return sum(iv) / sum(ks)


def _levels(change_times, rates, quantity, trace) -> tuple[list[float], list[float]]:
    """(time, reported power) per update: a counter's ΔE/Δt over the interval, a power reading as is."""
    if quantity == "power":
        return list(change_times), list(rates)
    out_t, out_r = [], []
    # the first change's interval starts at the first reading (the value before it)
    prev_t = trace.times[0] if trace.times else None
    prev_v = trace.values[0] if trace.values else None
    for t, v in zip(change_times, rates):
        if prev_t is not None and t > prev_t:
            out_t.append(t)
            out_r.append((v - prev_v) / (t - prev_t))
        prev_t, prev_v = t, v
    return out_t[1:], out_r[1:]  # the first interval may be partial


def estimate(trace: Trace, quantity: str, edges: list[tuple[float, bool]], half_period_s: float,
             poll_s: float) -> tuple[Optional[float], Optional[float], Optional[float], int, int,
                                     Optional[float], str]:
    """(P, W, D, edges used, changes, step fraction, note) for one sensor's trace."""
    ct, cv = _changes(trace)
    period = update_period(ct)
    if period is None:
        return None, None, None, 0, len(ct), None, (f"only {len(ct)} changes in {_span(trace):.1f} s: "
                                                     "the sensor did not update (stalled or too slow to qualify)")
    lt, lr = _levels(ct, cv, quantity, trace)
    bounds = [e[0] for e in edges]
    starts = [trace.times[0]] + bounds
    ends = bounds + [trace.times[-1]]
    settled = [_settled(trace, quantity, b - SETTLED_TAIL * (b - a), b) for a, b in zip(starts, ends)]
    widths, delays, fractions = [], [], []
    for k, (t_edge, _on) in enumerate(edges):
        before, after = settled[k], settled[k + 1]
        if before is None or after is None:
            continue
        step = after - before
        top = max(abs(before), abs(after))
        if top <= 0 or abs(step) < MIN_STEP_FRACTION * top:
            fractions.append(abs(step) / top if top > 0 else 0.0)
            continue
        fractions.append(abs(step) / top)
        t_end = ends[k + 1]
        seg = [(t, (r - before) / step) for t, r in zip(lt, lr) if t_edge < t <= t_end]
        t_lo = next((t for t, f in seg if f >= LEVELS[0]), None)
        t_hi = next((t for t, f in seg if f >= LEVELS[1]), None)
        if t_lo is None or t_hi is None:
            continue
        widths.append((t_hi - t_lo) / (LEVELS[1] - LEVELS[0]))
        delays.append(t_lo - t_edge)
    step_fraction = statistics.median(fractions) if fractions else None
    if not widths:
        why = ("no response to the load (step under 2 % of the level)" if fractions
               else "no settled level in a half-period: lengthen the half-period")
        return period, None, None, 0, len(ct), step_fraction, why
    note = ""
    # A counter reports the energy up to its last update: its reported power is the mean over each
    # update interval, so its window is P by construction (the step response then gives D only).
    width = period if quantity == "energy" else statistics.fmean(widths)
    delay = statistics.fmean(delays) - LEVELS[0] * width - period / 2 - poll_s / 2
    if width < period:
        note = "averaging window shorter than one update: not resolvable, taken as the update period"
        width = period
    if width + max(delay, 0.0) > (1 - SETTLED_TAIL) * half_period_s:
        note = (note + "; " if note else "") + "response slower than the half-period allows: figures are lower bounds"
    polled = _poll_interval(trace)
    if polled is not None and polled > period / POLL_RESOLVES:
        note = (note + "; " if note else "") + (f"polled every {polled * 1e3:.2g} ms, too slowly to resolve a "
                                                f"{period * 1e3:.2g} ms update period: figures are approximate")
    return period, width, max(delay, 0.0), len(widths), len(ct), step_fraction, note


def _poll_interval(trace: Trace) -> Optional[float]:
    """The median time between readings (what the poller achieved, not what it asked for)."""
    gaps = sorted(b - a for a, b in zip(trace.times, trace.times[1:]))
    return gaps[len(gaps) // 2] if gaps else None


def _settled(trace: Trace, quantity: str, a: float, b: float) -> Optional[float]:
    """The settled power in [a, b]: the median power reading, or a counter's ΔE/Δt over the span."""
    pts = [(t, v) for t, v in zip(trace.times, trace.values) if a <= t <= b]
    if quantity == "power":
        return statistics.median(v for _, v in pts) if pts else None
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


def _span(trace: Trace) -> float:
    return trace.times[-1] - trace.times[0] if len(trace.times) > 1 else 0.0


def qualify(sensors: list[Sensor], load: Load, *, half_period_s: float = 0.5, cycles: int = 4,
            poll_s: float = 0.0005, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep, seed: int = 0) -> Qualification:
    """Run the square wave and estimate every sensor's update period, averaging window and delay."""
    traces, edges = run_square_wave(sensors, load, half_period_s=half_period_s, cycles=cycles, poll_s=poll_s,
                                    clock=clock, sleep=sleep, seed=seed)
    out = Qualification(load.name, half_period_s, cycles, poll_s)
    for s, tr in zip(sensors, traces):  # every sensor given is listed: qualified, refused or unreadable
        label = f"{s.meter} {s.device}/{s.domain} ({s.source})"
        if len(tr.times) < 2:
            out.problems.append(f"{label}: no readings{f' ({tr.error})' if tr.error else ''}")
            continue
        faults = counter_faults(tr, s.max_watts) if s.quantity == "energy" else []
        if faults:  # a counter that goes back, jumps or reads at random: no update period, no uncertainty
            reason = "refused: " + "; ".join(faults)
            out.problems.append(f"{label}: {reason}")
            out.sensors.append(SensorQualification(s.meter, s.device, s.domain, s.quantity, s.source, s.windows,
                                                   None, None, None, 0, len(_changes(tr)[0]), None, reason))
            continue
        p, w, d, n_edges, n_changes, frac, note = estimate(tr, s.quantity, edges, half_period_s, poll_s)
        out.sensors.append(SensorQualification(s.meter, s.device, s.domain, s.quantity, s.source, s.windows,
                                               p, w, d, n_edges, n_changes, frac, note))
    return out


COUNTER_GRACE_S = 0.002  # a step may hold two more ~1 ms updates than its time between reads (rapl.JUMP_GRACE_S)


def counter_faults(trace: Trace, max_watts: Optional[float]) -> list[str]:
    """What makes an energy counter unfit to qualify: a step backwards (not monotonic), or a step
    above its maximum power × the time between the readings (a jumping or random counter)."""
    back: list[float] = []
    jumps: list[tuple[float, float]] = []
    for t0, v0, t1, v1 in zip(trace.times, trace.values, trace.times[1:], trace.values[1:]):
        step = v1 - v0
        if step < 0:
            back.append(step)
        elif max_watts is not None and step > max_watts * (max(t1 - t0, 0.0) + COUNTER_GRACE_S):
            jumps.append((step, t1 - t0))
    found = []
    if back:
        found.append(f"the counter went backwards {len(back)} times (by up to {-min(back):.3g} J): not monotonic")
    if jumps:
        step, dt = max(jumps)
        found.append(f"{len(jumps)} steps beyond its {max_watts:g} W maximum (up to {step:.3g} J in "
                     f"{dt * 1e3:.3g} ms): a jumping or random counter")
    return found


def window_uncertainty(qualification: Optional[dict], meter: str, device: str, window_s: float) -> Optional[float]:
    """Stated relative uncertainty of a `window_s` window on (meter, device) from stored qualification
    data (the `as_dict()` form), from the sensor energy windows rest on; None when not qualified."""
    if not qualification or window_s is None or not window_s > 0:
        return None
    edges = [s.get("edge_s") for s in qualification.get("sensors", ())
             if s.get("meter") == meter and s.get("device") == device and s.get("windows")
             and s.get("edge_s") is not None]
    if not edges:
        return None
    return 2 * max(edges) / window_s


# --- the real sensors and loads -------------------------------------------------------------------

def rapl_sensors(root: Any = None, reader: Optional[Callable[[Any], str]] = None) -> list[Sensor]:
    """One energy sensor per readable RAPL zone (its raw energy_uj, unwrapped at its range, in J)."""
    from eitp_bench.energy import rapl

    read_file = reader or rapl.read_sysfs
    path = rapl.resolve_root(root)
    if not path.is_dir():  # no powercap here (containers, other OSes): nothing to qualify
        return []
    found = rapl.discover(path, read_file)
    # an unreadable zone is given too: it is listed with its reason, never left out
    return [Sensor("rapl", z.device, z.domain, "energy", f"{z.zone_id}/energy_uj",
                   _unwrapping(z, read_file) if not z.unavailable else _unavailable(z.unavailable), max_watts=z.pmax_w)
            for z in found.zones]


def _unavailable(reason: str) -> Callable[[], float]:
    def read() -> float:
        raise OSError(reason)

    return read


def _unwrapping(zone: Any, read_file: Callable[[Any], str]) -> Callable[[], float]:
    state = {"raw": None, "total": 0}

    def read() -> float:
        raw = int(read_file(zone.path / "energy_uj").strip())
        if state["raw"] is not None:
            delta = raw - state["raw"]
            if delta < 0 and zone.max_range_uj:  # one wrap (a few seconds never hold two)
                delta += zone.max_range_uj
            state["total"] += delta  # no range: a step back stays one, and the counter is refused
        state["raw"] = raw
        return state["total"] / 1e6

    return read


class CpuSpinLoad:
    """Busy child processes (one per core), resumed and stopped with SIGCONT/SIGSTOP: sharp edges."""

    name = "CPU busy loop (one spinning process per core)"

    def __init__(self, processes: Optional[int] = None):
        import os
        import signal
        import subprocess
        import sys

        from eitp_bench.process_tree import child_setup, guard_group

        self._signal = signal
        n = processes or os.cpu_count() or 1
        # each dies with this process, however it dies (PDEATHSIG, and the watchdog kills its group)
        self._procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], process_group=0,
                                        preexec_fn=child_setup()) for _ in range(n)]
        for p in self._procs:
            guard_group(p.pid)
        self.on = True
        self.set(False)

    def set(self, on: bool) -> None:
        if on == self.on:
            return
        sig = self._signal.SIGCONT if on else self._signal.SIGSTOP
        for p in self._procs:
            p.send_signal(sig)
        self.on = on

    def close(self) -> None:
        for p in self._procs:
            p.kill()  # SIGKILL ends a stopped process too
        for p in self._procs:
            p.wait()
        from eitp_bench.process_tree import release

        for p in self._procs:
            release(pgid=p.pid)


class GpuMatmulLoad:
    """Back-to-back matmuls on one CUDA device in a thread while on; idle (synchronised) while off."""

    name = "GPU matmul loop"

    def __init__(self, device: str = "cuda:0", size: int = 4096):
        import threading

        import torch

        self._torch = torch
        self._device = device
        self._a = torch.randn(size, size, device=device, dtype=torch.float16)
        self._b = torch.randn(size, size, device=device, dtype=torch.float16)
        self._on = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qualify-gpu-load", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._on.wait(0.05):
                continue
            for _ in range(8):
                self._a @ self._b
            self._torch.cuda.synchronize(self._device)

    def set(self, on: bool) -> None:
        (self._on.set if on else self._on.clear)()
        if not on:
            self._torch.cuda.synchronize(self._device)  # the edge is when the queued work has ended

    def close(self) -> None:
        self._stop.set()
        self._on.clear()
        self._thread.join(timeout=10)


@dataclass
class Plan:
    """How long each load runs: RAPL updates every ~1 ms; NVML's power may be a 1-s average."""

    cpu_half_period_s: float = 0.25
    cpu_cycles: int = 4
    cpu_poll_s: float = 0.0001  # well under RAPL's ~1 ms update (see POLL_RESOLVES)
    gpu_half_period_s: float = 2.0
    gpu_cycles: int = 3
    gpu_poll_s: float = 0.005


def qualify_here(*, rapl_root: Any = None, nvml: Any = None, gpu: bool = True, plan: Plan = Plan(),
                 cpu_load: Optional[Callable[[], Load]] = None,
                 gpu_load: Optional[Callable[[str], Load]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Qualify every meter that can read here; never raises (what failed is in `problems`).

    RAPL zones under the CPU busy loop; NVML sensors (only when `gpu` and NVML reads) under the GPU
    matmul loop, one GPU at a time: `gpu_load("cuda:N")` loads GPU N while its own sensors are read.
    Returns {"sensors": [...], "runs": [...], "problems": [...], "uncertainty_formula"}."""
    out: dict[str, Any] = {"sensors": [], "runs": [], "problems": [],
                           "uncertainty_formula": "u(T) = 2 * (delay_s + max(update_period_s, averaging_window_s)) / T"}

    def one(kind: str, sensors_fn, load_fn, half: float, cycles: int, poll: float, **run: Any) -> None:
        try:
            sensors = sensors_fn()
        except Exception as err:  # no sensor of this kind here: nothing to qualify
            out["problems"].append(f"{kind}: no sensors ({type(err).__name__}: {err})")
            return
        if not sensors:
            return
        load = None
        try:
            load = load_fn()
            q = qualify(sensors, load, half_period_s=half, cycles=cycles, poll_s=poll, clock=clock, sleep=sleep)
        except Exception as err:
            out["problems"].append(f"{kind}: qualification failed ({type(err).__name__}: {err})")
            return
        finally:
            if load is not None:
                try:
                    load.close()
                except Exception:
                    pass
        out["sensors"].extend(s.as_dict() for s in q.sensors)
        out["runs"].append({"meter": kind, "load": q.load, "half_period_s": half, "cycles": cycles, "poll_s": poll,
                            **run})
        out["problems"].extend(q.problems)

    one("rapl", lambda: rapl_sensors(rapl_root), cpu_load or CpuSpinLoad,
        plan.cpu_half_period_s, plan.cpu_cycles, plan.cpu_poll_s)
    if gpu:
        # One square wave per GPU, its load on that GPU alone: every GPU's sensors answer their own load,
        # so each GPU's uncertainty is stated (a load on GPU 0 only would leave the others "no response").
        meters: list[Any] = []
        try:
            try:
                sensors = _nvml_sensors(nvml, meters)
            except Exception as err:  # NVML cannot start here: nothing to qualify
                out["problems"].append(f"nvml: no sensors ({type(err).__name__}: {err})")
                sensors = []
            for device in dict.fromkeys(s.device for s in sensors):
                mine = [s for s in sensors if s.device == device]
                one("nvml", lambda mine=mine: mine, lambda device=device: (gpu_load or GpuMatmulLoad)(_cuda(device)),
                    plan.gpu_half_period_s, plan.gpu_cycles, plan.gpu_poll_s, device=device)
        finally:
            for meter in meters:
                meter.stop()  # nvmlShutdown; never raises
    return out


def _cuda(device: str) -> str:
    """The torch device of a meter's GPU: gpu:N is torch's ordinal N."""
    return "cuda:" + device.split(":", 1)[1]


def _nvml_sensors(nvml: Any, meters: list[Any]) -> list[Sensor]:
    from eitp_bench.energy.nvml import NvmlMeter

    probe = NvmlMeter.probe(nvml=nvml)
    if not any(s.available for s in probe):
        return []
    meter = NvmlMeter(nvml=nvml, interval=None)
    meters.append(meter)
    return meter.qualification_sensors()


def qualify_for_suite(suite: Any) -> Optional[dict[str, Any]]:
    """The runner's one call: None unless `meters.qualify`; else `qualify_here` for the suite's device."""
    if not getattr(suite.meters, "qualify", False):
        return None
    return qualify_here(gpu=getattr(suite, "device", "auto") != "cpu")

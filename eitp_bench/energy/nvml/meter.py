"""`NvmlMeter`: NVIDIA GPU energy through NVML (the `pynvml` module of nvidia-ml-py).

Primary source: the total-energy counter (`nvmlDeviceGetTotalEnergyConsumption`, mJ since driver
load, 64-bit, Volta and later), read synchronously at every `mark()`: method "counter".
A sampler *thread* records power every `interval` seconds (the instant power field 186 where the GPU
has it, else `nvmlDeviceGetPowerUsage`, which is a 1-s mean on Ampere and later). The samples give a
timeline, a cross-check of the counter (`sampled_joules` beside the counter's joules, flagged when
further apart than the window's edges allow: energy/crosscheck.py) and, on pre-Volta GPUs, the energy
itself (trapezoid integral): method "sampled". Every mark also takes a power sample, so a window's
integral starts and ends exactly at its edges.

Short windows. The counter only moves every ~20–100 ms. Its update period is the qualified one, else
one resolved by fast reads at start (`calibrate`), else a robust mean of the intervals between the
changes the reads saw (`inferred_period`). A window shorter than the period, or one where the counter
did not move while power was drawn, would read 0 J or a whole extra update: we then report the
sampled integral instead, with method "sampled" and a flag saying why. Never a silent 0 J.

Faults. An NVML error on one GPU invalidates that GPU's windows (joules=None, flag with the reason);
the other GPUs and the sampler thread go on. So does any other exception from the binding (a
RuntimeError, an odd return type): flagged `nvml_error`, never a traceback. A counter that goes
backwards (driver reload, GPU reset) invalidates the windows that span it (`reset`); one that steps by
more than 2 × the board power limit × (elapsed + 0.1 s) + 1 J is impossible for the hardware and
invalidates them too (`implausible_jump`). Joules are never negative.

Slow reads. A read slower than SLOW_READ_S (1 s: NVML calls normally return in well under 10 ms,
and the counter updates every 20-100 ms, so a 1-s call means the driver was stuck) is flagged
`slow_read` with the longest call, and its values are dropped: a stuck call's counter holds energy
drawn after the window ended. A mark's time is taken before it waits for anything (the lock, a
stuck sampler call, the reads), so the window ends when the measured code ended; when the mark's own
read is slow, the window's end is the last good read plus its power × the time from that read to the
mark; a window that starts at a slow mark starts when that read returned (the measured code only
began then), from the counter it returned. A window's whole counter step is also held to the
power-limit bound, so a bad value kept from a slow read cannot pass either.

Grace Hopper: where the GPU power scope reads nothing, the instant field is read at
NVML_POWER_SCOPE_MODULE (GPU + CPU + memory of the superchip) and every window says so.
MIG: NVML reports whole-GPU energy only; every window of a MIG GPU says so (`mig_whole_gpu`: the judge
refuses energy claims on it). A GH200 (by name) whose power reads at GPU scope is labelled `grace_hopper`.

Visible GPUs only: the meter opens the GPUs CUDA_VISIBLE_DEVICES names (or all); one that answers
NVML_ERROR_NO_PERMISSION (a GPU of another Slurm job, hidden by cgroups) is left out and listed in
`unavailable` with the reason and fix (doctor shows it); the others are measured.
CUDA synchronisation at window edges is the monitor's job, not this meter's.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Callable, Iterable, Optional

from eitp_bench.energy import crosscheck, gpu_state
from eitp_bench.energy.base import Channel, Meter, MeterStatus, PowerSample, Sensor
from eitp_bench.energy.nvml.binding import (
    FIX_LIBRARY, FIX_PERMISSION, _as_mj, _describe, _field_number, _nvml_error, _text, load_pynvml,
)
from eitp_bench.energy.nvml.discovery import SkippedGpu, _denied, torch_device_uuids, visible_gpus
from eitp_bench.energy.nvml.state import GpuMark, NvmlMark, PERIOD_SPAN, _GpuState, inferred_period
from eitp_bench.energy.nvml.status import (
    _ARCH_NAMES, _cuda_version, _gpu_status, _grace_hopper, _init_status, _mig_state, power_scope,
)
from eitp_bench.errors import UserError
from eitp_bench.flags import Flag, flag
from eitp_bench.records import EnergyEntry


FI_DEV_POWER_INSTANT = 186  # NVML_FI_DEV_POWER_INSTANT
ARCH_AMPERE = 7  # NVML_DEVICE_ARCH_AMPERE: GetPowerUsage becomes a 1-s mean
SLOW_READ_S = 1.0  # a read (or a mark's wait for one) longer than this is stuck: flagged, values dropped
TEMPERATURE_POLL_S = 1.0  # the sampler reads each GPU's temperature this often, for a window's maximum
JUMP_FACTOR = 2.0  # boards exceed their limit in short transients, never by 2x over a counter update
JUMP_SLACK_S = 0.1  # the counter's update period at most: a step may hold one update's energy
CALIBRATE_S = 1.0  # fast counter reads at a meter's start (discover_meters): 9 changes of a 100-ms counter
CALIBRATE_POLL_S = 0.002


class NvmlMeter(Meter):
    """GPU energy per visible GPU: counter joules, cross-checked by (or falling back to) sampled power."""

    name = "nvml"

    def __init__(
        self,
        nvml: Any = None,
        interval: Optional[float] = 0.1,
        devices: Optional[list[int]] = None,
        timeline_capacity: int = 100_000,  # 2.8 h of samples at 10 Hz, about 10 MB
        clock: Callable[[], float] = time.monotonic,
        env: Optional[dict[str, str]] = None,
        torch_uuids: Optional[list[str]] = None,
        calibrate_s: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        read_state: bool = True,
    ):
        """`interval=None` or 0: no sampler thread (samples only at marks and `sample_now()`).
        `calibrate_s`: at start, read the counters fast for up to this long to resolve their update
        period (`discover_meters` asks for CALIBRATE_S; 0: infer it from the ordinary reads only)."""
        self._nvml = nvml if nvml is not None else load_pynvml()
        self.interval = interval
        self.calibrate_s = calibrate_s
        self.read_state = read_state  # the board's state at each mark (limit, clocks, throttling: gpu_state.py)
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        self.sampler_errors = 0  # unexpected exceptions the sampler survived
        self.last_sampler_error: Optional[str] = None
        N = self._nvml
        try:
            N.nvmlInit()
        except Exception as err:
            status = _init_status(N, err)
            raise UserError(f"NVML cannot start: {status.reason}", fix=status.fix) from err
        try:
            uuids = torch_uuids if torch_uuids is not None else torch_device_uuids()
            self.unavailable: list[SkippedGpu] = []  # GPUs this process may not read, with the reason
            try:
                gpus = visible_gpus(N, env, uuids, self.unavailable)
            except Exception as err:
                raise UserError(f"NVML cannot list GPUs: {_describe(N, err)}", fix=FIX_LIBRARY) from err
            if devices is not None:
                gpus = [g for g in gpus if g.ordinal in set(devices)]
            states = [_GpuState(g, timeline_capacity) for g in gpus]
            for st in states:
                self._detect(st)
            self._gpus = [st for st in states if st.denied is None]
            self.unavailable += [SkippedGpu(st.device, st.denied) for st in states if st.denied is not None]
            if not self._gpus:
                spec = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
                denied = "; ".join(f"{s.what}: {s.reason}" for s in self.unavailable)
                raise UserError(
                    "no NVIDIA GPU visible to NVML that this process may read "
                    f"(CUDA_VISIBLE_DEVICES={spec!r}, devices={devices})"
                    + (f"; {denied}" if denied else ""),
                    fix=FIX_PERMISSION if denied else
                    "check CUDA_VISIBLE_DEVICES and `nvidia-smi`, or measure without the nvml meter",
                )
        except BaseException:
            try:
                N.nvmlShutdown()
            except Exception:  # the set-up error is the one to report
                pass
            raise

    # --- set-up ---

    def _detect(self, st: _GpuState) -> None:
        """What this GPU can read: the counter, and which power source."""
        N, h = self._nvml, st.gpu.handle
        # Any exception from the binding here only means "this GPU cannot do that".
        try:
            st.arch = int(N.nvmlDeviceGetArchitecture(h))
        except Exception:
            st.arch = None
        try:
            st.mig = st.mig or bool(N.nvmlDeviceGetMigMode(h)[0])
        except Exception:
            pass
        try:
            limit_w = float(N.nvmlDeviceGetEnforcedPowerLimit(h)) / 1000.0
            if limit_w > 0:
                st.power_limit_w, st.power_limit_known = limit_w, True
        except Exception:
            pass
        try:
            st.name = _text(N.nvmlDeviceGetName(h))
        except Exception:
            st.name = None
        try:
            _as_mj(N.nvmlDeviceGetTotalEnergyConsumption(h))
            st.has_counter = True
        except Exception as err:
            if _denied(N, err):
                st.denied = f"NVML answered {err} reading its energy counter (not this process's GPU)"
                return
            if isinstance(err, getattr(N, "NVMLError_NotSupported", ())):
                st.counter_note = "no energy counter (pre-Volta): power is sampled and integrated"
            elif isinstance(err, _nvml_error(N)):
                st.counter_note = f"energy counter unreadable at start ({err}): power is sampled and integrated"
            else:
                st.counter_note = f"energy counter unreadable at start ({_describe(N, err)}): power is sampled and integrated"
        sources = ["instant", "instant-module"] if hasattr(N, "NVML_POWER_SCOPE_MODULE") else ["instant"]
        for source in sources:
            try:
                fv = N.nvmlDeviceGetFieldValues(h, [self._instant_field(source)])[0]
                if int(fv.nvmlReturn) == 0:
                    _field_number(fv)
                    st.power_source = source
                    return
            except Exception:
                pass
        try:
            float(N.nvmlDeviceGetPowerUsage(h))
            st.power_source = "usage"
        except Exception:
            st.power_source = "none"

    def channels(self) -> list[Channel]:
        return [Channel(self.name, st.device, "gpu") for st in self._gpus]

    # --- reading ---

    def _instant_field(self, source: str) -> Any:
        """Field 186 at the default (GPU) scope, or as (field, scope) at the module scope."""
        if source == "instant":
            return FI_DEV_POWER_INSTANT
        return (FI_DEV_POWER_INSTANT, self._nvml.NVML_POWER_SCOPE_MODULE)

    def _read_watts(self, st: _GpuState) -> Optional[float]:
        N, h = self._nvml, st.gpu.handle
        if st.power_source in ("instant", "instant-module"):
            fv = N.nvmlDeviceGetFieldValues(h, [self._instant_field(st.power_source)])[0]
            if int(fv.nvmlReturn) != 0:
                raise N.NVMLError(int(fv.nvmlReturn))
            return _field_number(fv) / 1000.0
        if st.power_source == "usage":
            return N.nvmlDeviceGetPowerUsage(h) / 1000.0
        return None

    def _read(self, st: _GpuState, now: float) -> tuple[Optional[str], bool]:
        """One read of counter and power into the running state (lock held). Returns (error, slow).

        `now` is when the read was asked for (a mark: before it waited for the lock). A read that
        completes more than SLOW_READ_S after `now` is slow: logged, and its values dropped.
        """
        N = self._nvml
        power_call = "nvmlDeviceGetPowerUsage" if st.power_source == "usage" else "nvmlDeviceGetFieldValues"
        calls: list[tuple[float, str]] = []
        try:
            t_a = self._clock()
            calls.append((t_a - now, "waiting for another NVML call to return"))
            watts = self._read_watts(st)
            watts = None if watts is None else float(watts)
            t_b = self._clock()
            calls.append((t_b - t_a, power_call))
            counter = _as_mj(N.nvmlDeviceGetTotalEnergyConsumption(st.gpu.handle)) if st.has_counter else None
            t_c = self._clock()
            calls.append((t_c - t_b, "nvmlDeviceGetTotalEnergyConsumption"))
        except Exception as err:  # NVML's errors, and anything else the binding throws or returns
            st.errors += 1
            st.last_error = f"NVML error on {st.device}: {_describe(N, err)}"
            st.last_t = None  # never integrate across a failed read
            return st.last_error, False
        if t_c - now > SLOW_READ_S:
            took, call = max(calls)
            st.slow.append((now, t_c - now, call))
            st.late = (t_c, counter, watts)
            return None, True
        if counter is not None:
            if st.counter_mj is not None and counter < st.counter_mj:
                st.resets += 1
                st.changes.clear()
            elif st.counter_mj is not None and st.counter_t is not None and (
                (counter - st.counter_mj) / 1000.0
                > JUMP_FACTOR * st.power_limit_w * (max(0.0, t_c - st.counter_t) + JUMP_SLACK_S) + 1.0
            ):
                st.jumps += 1
                limit = f"{st.power_limit_w:.0f} W power limit" if st.power_limit_known else (
                    f"{st.power_limit_w:.0f} W (no power limit reported)")
                st.last_jump = (
                    f"the energy counter stepped by {(counter - st.counter_mj) / 1000.0:.3f} J in "
                    f"{max(0.0, t_c - st.counter_t):.3f} s: more than {JUMP_FACTOR:g} x the board's {limit} allows"
                )
                st.changes.clear()
            elif st.counter_mj is not None and counter != st.counter_mj:
                if not st.changes or now > st.changes[-1]:
                    st.changes.append(now)
            st.counter_mj = counter
            st.counter_t = t_b
        if watts is not None and not (st.last_t is not None and now <= st.last_t):  # one sample per instant
            if st.last_t is not None:
                st.sampled_j += (watts + st.last_w) / 2 * (now - st.last_t)
            st.last_t, st.last_w = now, watts
            st.samples += 1
            st.timeline.append((now, watts))
        st.good_t = now
        return None, False

    def sample_now(self) -> None:
        """Take one sample on every GPU now (what the sampler thread does every interval)."""
        with self._lock:
            now = self._clock()
            for st in self._gpus:
                self._read(st, now)
                self._poll_temperature(st, now)

    def _poll_temperature(self, st: _GpuState, now: float) -> None:
        """A window's maximum temperature: one read per TEMPERATURE_POLL_S from the sampler (lock held)."""
        if st.temperature_t is not None and now - st.temperature_t < TEMPERATURE_POLL_S:
            return
        st.temperature_t = now
        t = gpu_state.read_edge_temperature(self._nvml, st.gpu.handle)
        if t is not None:
            st.temperatures.append((now, t))

    def mark(self) -> NvmlMark:
        # The edge is now, before waiting for the lock (a stuck sampler call) or for any read.
        now = self._clock()
        with self._lock:
            gpus = []
            for st in self._gpus:
                error, slow = self._read(st, now)
                # the board's state after the energy read, so that read stays as close to the edge as it was
                state = gpu_state.read_edge(self._nvml, st.gpu.handle) if self.read_state and not st.denied else None
                gpus.append(st.snapshot(error, now, slow, state))
            return NvmlMark(now, tuple(gpus))

    def static_state(self) -> list[dict[str, Any]]:
        """Per GPU, what is set once per run (board identity, ECC, persistence, MIG, locked clocks, power
        profile) plus its state now: for the run's provenance. Never raises."""
        with self._lock:
            return [{"device": st.device, **gpu_state.read_static(self._nvml, st.gpu.handle),
                     **{k: v for k, v in gpu_state.read_edge(self._nvml, st.gpu.handle).items()
                        if k in ("power_limit_w", "sm_clock_mhz", "mem_clock_mhz", "temperature_c")}}
                    for st in self._gpus]

    # --- sampler thread ---

    def calibrate(self, seconds: float) -> None:
        """Read every GPU's counter every CALIBRATE_POLL_S for up to `seconds` (or until each has
        changed PERIOD_SPAN + 1 times): each change is then seen within a few ms of its update, so the
        period comes out to about 1 %. The sampler's reads, about as sparse as the updates, cannot
        resolve it (a read may hold two updates or none). Never raises: a failing GPU keeps inferring."""
        N = self._nvml
        todo = {id(st): st for st in self._gpus if st.has_counter}
        last: dict[int, int] = {}
        seen: dict[int, list[float]] = {k: [] for k in todo}
        deadline = self._clock() + seconds
        while todo and self._clock() < deadline:
            for key, st in list(todo.items()):
                try:
                    with self._lock:
                        v = _as_mj(N.nvmlDeviceGetTotalEnergyConsumption(st.gpu.handle))
                except Exception:
                    del todo[key]
                    continue
                t = self._clock()
                if key in last and v != last[key]:
                    seen[key].append(t)
                last[key] = v
                if len(seen[key]) > PERIOD_SPAN:
                    del todo[key]
            self._sleep(CALIBRATE_POLL_S)
        for st in self._gpus:
            changes = seen.get(id(st), [])
            if len(changes) >= 3:
                st.calibrated_period_s = inferred_period(changes)

    def start(self) -> None:
        if self.calibrate_s > 0:
            self.calibrate(self.calibrate_s)
        self.sample_now()  # the first read happens before any window opens
        if self.interval and self._thread is None:
            self._stop_event.clear()
            self._thread = threading.Thread(target=self._run, name="eitp-bench-nvml-sampler", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        next_t = time.monotonic()
        while True:
            next_t += self.interval
            if self._stop_event.wait(max(0.0, next_t - time.monotonic())):
                return
            try:
                self.sample_now()
            except Exception as err:  # the sampler must never die: count it and go on
                self.sampler_errors += 1
                self.last_sampler_error = repr(err)
            if next_t < time.monotonic():  # fell behind (suspended?): don't burst to catch up
                next_t = time.monotonic()

    @property
    def sampler_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop_event.set()
            self._thread.join(timeout=5)
            self._thread = None
        if not self._closed:
            self._closed = True
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # nothing left to measure: a failing shutdown changes no figure
                pass

    def qualification_sensors(self) -> list[Any]:
        """Raw sensors for `energy.qualify`: per GPU its energy counter (J; what windows rest on) and its
        power reading (W; what windows fall back on without a counter). Reads bypass the meter's state."""
        N = self._nvml
        out = []
        for st in self._gpus:
            h = st.gpu.handle
            if st.has_counter:
                out.append(Sensor(self.name, st.device, "gpu", "energy", "total_energy",
                                  lambda h=h: _as_mj(N.nvmlDeviceGetTotalEnergyConsumption(h)) / 1000.0))
            if st.power_source != "none":
                out.append(Sensor(self.name, st.device, "gpu", "power", f"power_{st.power_source}",
                                  lambda st=st: self._read_watts(st), windows=not st.has_counter))
        return out

    # --- results ---

    def update_period_s(self, ordinal: int) -> Optional[float]:
        """The counter's update period for gpu:<ordinal>: the qualified one, else the calibrated one, else
        inferred from the reads (once two changes have been seen; see `inferred_period`)."""
        return next(st.update_period_s for st in self._gpus if st.gpu.ordinal == ordinal)

    def use_qualification(self, qualification: Optional[dict[str, Any]]) -> None:
        """Take each GPU's qualified counter period and edge error (energy/qualify.py's stored form):
        the period replaces the inferred one, the edge error sets the cross-check's tolerance."""
        for s in (qualification or {}).get("sensors", ()):
            if s.get("meter") != self.name or not s.get("windows"):
                continue
            for st in self._gpus:
                if st.device == s.get("device") and s.get("update_period_s"):
                    st.qualified_period_s = float(s["update_period_s"])
                    st.edge_s = float(s["edge_s"]) if s.get("edge_s") is not None else None

    def energy_between(self, begin: NvmlMark, end: NvmlMark) -> list[EnergyEntry]:
        with self._lock:
            return [self._energy(st, b, e, begin.t, end.t) for st, b, e in zip(self._gpus, begin.gpus, end.gpus)]

    def _energy(self, st: _GpuState, b: GpuMark, e: GpuMark, t0: float, t1: float) -> EnergyEntry:
        mark_t0 = t0
        # A slow read at an edge: at the end, the last good read's values plus its power × the time
        # from it to the edge; at the start, what the slow read returned, when it returned (the
        # measured code only began then). Both zero for good reads.
        b_counter, b_sampled, tail = b.counter_mj, b.sampled_j, (e.stale_w or 0.0) * e.stale_s
        if b.late_t is not None and b.late_counter_mj is not None:
            t0, b_counter = b.late_t, b.late_counter_mj
            if b.stale_w is not None and b.late_w is not None:
                b_sampled += (b.stale_w + b.late_w) / 2 * (b.stale_s + b.late_t - mark_t0)
        else:
            tail -= (b.stale_w or 0.0) * b.stale_s
        duration = t1 - t0
        samples = e.samples - b.samples + 1 if st.power_source != "none" else 0
        gap, gap_note = self._max_gap(st, t0, t1)
        state = gpu_state.window_state(b.state, e.state, t1 - mark_t0, self._window_temperatures(st, mark_t0, t1))
        out = EnergyEntry(meter=self.name, device=st.device, domain="gpu", joules=None,
                          method="counter" if st.has_counter else "sampled", duration_s=duration,
                          samples=max(samples, 0), max_gap_s=gap, hw_state=state)
        flags = out.flags
        flags.extend(gpu_state.throttle_flags(state))
        if gap_note:
            flags.append(gap_note)
        if st.mig:
            flags.append(flag("mig_whole_gpu", "MIG mode: NVML reports energy for the whole GPU, not for one MIG instance"))
        if st.power_source == "instant-module":
            flags.append(flag("module_scope", "power read at NVML_POWER_SCOPE_MODULE (Grace Hopper: GPU + CPU + "
                              "memory), not the GPU alone"))
        elif _grace_hopper(st.name):
            flags.append(flag("grace_hopper", f"{st.name}: a Grace Hopper superchip; NVML does not say whether its "
                              "energy counter covers the GPU alone or the module (GPU + Grace CPU + memory)"))
        if st.power_source == "usage" and (st.arch or 0) >= ARCH_AMPERE:
            flags.append(flag("averaged_power", "power samples are NVML's 1-s average (Ampere+): they lag changes in power"))

        slow = [(took, call, t) for t, took, call in st.slow if mark_t0 <= t <= t1]
        if slow:
            took, call, _ = max(slow)
            flags.append(flag(
                "slow_read", f"{len(slow)} NVML read(s) took over {SLOW_READ_S:g} s in this window; the longest "
                f"{took:.3f} s ({call}); their values were dropped and the window still ends at its own edge"
            ))
        if b.error or e.error or b.errors != e.errors:
            reason = e.error or b.error or st.last_error
            flags.append(flag("nvml_error", f"{reason} (during or at the edge of this window)"))
            return out
        if b.resets != e.resets or (st.has_counter and e.counter_mj < b_counter):
            flags.append(flag("reset", "the energy counter went backwards (driver reload or GPU reset) in this window"))
            return out
        if b.jumps != e.jumps:
            flags.append(flag("implausible_jump", f"{st.last_jump} (in this window)"))
            return out
        sampled = e.sampled_j - b_sampled + tail if st.power_source != "none" else None

        if not st.has_counter:
            if sampled is None:
                flags.append(flag("unreadable", f"{st.device} reports neither an energy counter nor power"))
                return out
            flags.append(flag("sampled_fallback", st.counter_note or "no energy counter: power is sampled and integrated"))
            out.joules = sampled
            return out

        counter_step_j = (e.counter_mj - b_counter) / 1000.0
        counter_j = counter_step_j + tail
        bound_j = JUMP_FACTOR * st.power_limit_w * (max(duration, 0.0) + JUMP_SLACK_S) + 1.0
        if counter_step_j > bound_j:  # the reads' own check misses a bad value kept from a slow read
            flags.append(flag("implausible_jump", f"the energy counter moved {counter_step_j:.3f} J in "
                              f"{duration:.3f} s: more than {JUMP_FACTOR:g} x the board's "
                              f"{st.power_limit_w:.0f} W allows (in this window)"))
            return out
        period = st.update_period_s
        short = period is not None and duration < period
        stuck = counter_step_j == 0 and not tail and sampled is not None and sampled > 0
        if short or stuck:
            why = f"~{period * 1000:.0f} ms" if period else "not yet inferred"
            if short or period is None:
                flags.append(flag(
                    "short_window", f"window shorter than the energy counter's update period ({why}): counter read "
                    f"{counter_j:.3f} J, power samples {sampled or 0:.3f} J; reporting the sampled integral"
                ))
            else:  # long enough, yet the counter stood still: a frozen counter, not a short window
                flags.append(flag(
                    "stalled", f"the energy counter did not move in {duration:.3f} s (update period {why}) while "
                    f"power samples show {sampled:.3f} J; reporting the sampled integral"
                ))
            if sampled is None:
                flags.append(flag("unreadable", f"{st.device} has no power reading to fall back on"))
                return out
            out.method, out.joules = "sampled", sampled
            return out

        out.joules = counter_j
        if sampled is not None:  # the samples are a cross-check here, never the figure (energy/crosscheck.py)
            out.sampled_joules = sampled
            out.crosscheck_tolerance_j = crosscheck.tolerance_j(counter_j, duration, self._edge_s(st))
            note = crosscheck.mismatch(counter_j, sampled, out.crosscheck_tolerance_j)
            if note is not None:
                flags.append(note)
        return out

    def _edge_s(self, st: _GpuState) -> float:
        """Seconds of energy each window edge may misplace: qualified D + max(P, W), else the counter's
        step, max(update period, sampling interval) (JUMP_SLACK_S while neither is known)."""
        if st.edge_s is not None:
            return st.edge_s
        return max(st.update_period_s or 0.0, self.interval or 0.0) or JUMP_SLACK_S

    @staticmethod
    def _window_temperatures(st: _GpuState, t0: float, t1: float) -> tuple[float, ...]:
        """Polled temperatures with t0 <= t <= t1; scans from the newest end, where windows usually are."""
        out = []
        for t, c in reversed(st.temperatures):
            if t < t0:
                break
            if t <= t1:
                out.append(c)
        return tuple(out)

    @staticmethod
    def _window_samples(st: _GpuState, t0: float, t1: float) -> list[tuple[float, float]]:
        """Samples with t0 <= t <= t1, oldest first; scans from the newest end, where windows usually are."""
        out = []
        for t, w in reversed(st.timeline):
            if t < t0:
                break
            if t <= t1:
                out.append((t, w))
        return out[::-1]

    def _max_gap(self, st: _GpuState, t0: float, t1: float) -> tuple[Optional[float], Optional[Flag]]:
        times = [t for t, _ in self._window_samples(st, t0, t1)]
        note = None
        if len(st.timeline) == st.timeline.maxlen and st.timeline[0][0] > t0:
            note = flag("history_truncated", f"timeline capacity exceeded: max gap is over the last {len(times)} samples only")
        gaps = [b - a for a, b in zip(times, times[1:])]
        return (max(gaps) if gaps else None), note

    def power_samples(self, t0: float, t1: float) -> list[PowerSample]:
        with self._lock:
            return [
                PowerSample(t, st.device, "gpu", w)
                for st in self._gpus
                for t, w in self._window_samples(st, t0, t1)
            ]

    # --- facts for provenance and doctor ---

    def info(self) -> dict[str, Any]:
        N = self._nvml

        def ask(fn: str, *args: Any) -> Any:
            try:
                return getattr(N, fn)(*args)
            except Exception:  # any failure of the binding: the fact is unknown
                return None

        def scaled(v: Any, k: float) -> Optional[float]:
            try:
                return None if v is None else float(v) / k
            except (TypeError, ValueError):
                return None

        gpus = []
        with self._lock:
            for st in self._gpus:
                h = st.gpu.handle
                name = ask("nvmlDeviceGetName", h)
                gpus.append({
                    "device": st.device,
                    "name": _text(name) if name is not None else None,
                    "uuid": st.gpu.uuid,
                    "mig_instance": st.gpu.mig_instance,
                    "mapped_by": st.gpu.mapped_by,
                    "architecture": _ARCH_NAMES.get(st.arch, st.arch),
                    "power_limit_w": scaled(ask("nvmlDeviceGetEnforcedPowerLimit", h), 1000),
                    "sm_clock_mhz": ask("nvmlDeviceGetClockInfo", h, getattr(N, "NVML_CLOCK_SM", 1)),
                    "mem_clock_mhz": ask("nvmlDeviceGetClockInfo", h, getattr(N, "NVML_CLOCK_MEM", 2)),
                    "app_sm_clock_mhz": ask("nvmlDeviceGetApplicationsClock", h, getattr(N, "NVML_CLOCK_SM", 1)),
                    "app_mem_clock_mhz": ask("nvmlDeviceGetApplicationsClock", h, getattr(N, "NVML_CLOCK_MEM", 2)),
                    "max_sm_clock_mhz": ask("nvmlDeviceGetMaxClockInfo", h, getattr(N, "NVML_CLOCK_SM", 1)),
                    "max_mem_clock_mhz": ask("nvmlDeviceGetMaxClockInfo", h, getattr(N, "NVML_CLOCK_MEM", 2)),
                    "temperature_c": ask("nvmlDeviceGetTemperature", h, getattr(N, "NVML_TEMPERATURE_GPU", 0)),
                    "persistence_mode": ask("nvmlDeviceGetPersistenceMode", h),
                    "mig_mode_state": _mig_state(ask("nvmlDeviceGetMigMode", h)),
                    "energy_counter": st.has_counter,
                    "power_source": st.power_source,
                    "mig_mode": st.mig,
                    "scope": power_scope(st),
                    "counter_update_period_s": st.update_period_s,
                })
        driver, version = ask("nvmlSystemGetDriverVersion"), ask("nvmlSystemGetNVMLVersion")
        return {
            "unavailable": [g.as_dict() for g in self.unavailable],
            "driver_version": _text(driver) if driver is not None else None,
            "nvml_version": _text(version) if version is not None else None,
            "cuda_driver_version": _cuda_version(ask("nvmlSystemGetCudaDriverVersion")),
            "sampler_interval_s": self.interval,
            "gpus": gpus,
        }

    def temperatures(self) -> dict[str, Optional[int]]:
        """GPU temperature (°C) per device now; None for a GPU whose reading fails (never raises)."""
        N = self._nvml
        out: dict[str, Optional[int]] = {}
        with self._lock:
            for st in self._gpus:
                try:
                    out[st.device] = int(N.nvmlDeviceGetTemperature(st.gpu.handle, getattr(N, "NVML_TEMPERATURE_GPU", 0)))
                except Exception:
                    out[st.device] = None
        return out

    def compute_processes(self, exclude_pids: Iterable[int] = ()) -> dict[str, Optional[list[dict[str, Any]]]]:
        """Other compute processes on each measured GPU: {device: [{pid, used_memory_mib}], or None when
        NVML cannot say (not supported, no permission, a binding fault). Never raises."""
        N, skip = self._nvml, set(exclude_pids)
        out: dict[str, Optional[list[dict[str, Any]]]] = {}
        with self._lock:
            for st in self._gpus:
                try:
                    procs = []
                    for p in N.nvmlDeviceGetComputeRunningProcesses(st.gpu.handle) or []:
                        pid = int(p.pid)
                        if pid in skip:
                            continue
                        used = getattr(p, "usedGpuMemory", None)
                        procs.append({"pid": pid, "used_memory_mib":
                                      round(used / 2**20, 1) if isinstance(used, (int, float)) else None})
                    out[st.device] = procs
                except Exception:
                    out[st.device] = None
        return out

    @classmethod
    def probe(cls, nvml: Any = None, env: Optional[dict[str, str]] = None, **_: Any) -> list[MeterStatus]:
        """Doctor's view, without starting a sampler: one status per visible GPU, or why there is none.

        Never raises: any exception from the binding becomes a status line with its reason.
        """
        if nvml is None:
            try:
                nvml = load_pynvml()
            except UserError as err:
                return [MeterStatus("nvml", False, reason=err.message, fix=err.fix)]
        N = nvml
        try:
            N.nvmlInit()
        except Exception as err:
            return [_init_status(N, err)]
        statuses: list[MeterStatus] = []
        try:
            skipped: list[SkippedGpu] = []
            gpus = visible_gpus(N, env, skipped=skipped)
            statuses.extend(s.status() for s in skipped)
            if not gpus:
                spec = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
                statuses.append(MeterStatus("nvml", False, reason=f"no NVIDIA GPU visible (CUDA_VISIBLE_DEVICES={spec!r})",
                                            fix="check `nvidia-smi` and CUDA_VISIBLE_DEVICES"))
            for g in gpus:
                try:
                    statuses.append(_gpu_status(N, g))
                except Exception as err:
                    statuses.append(MeterStatus("nvml", False, f"gpu:{g.ordinal}", "gpu", fix=FIX_LIBRARY,
                                                reason=f"gpu:{g.ordinal} unreadable: {_describe(N, err)}"))
        except Exception as err:
            statuses.append(MeterStatus("nvml", False, reason=f"NVML cannot list GPUs: {_describe(N, err)}",
                                        fix=FIX_LIBRARY))
        try:
            N.nvmlShutdown()
        except Exception as err:  # the readings above stand; say that NVML did not close cleanly
            statuses.append(MeterStatus("nvml", False, reason=f"nvmlShutdown failed: {_describe(N, err)}",
                                        fix=FIX_LIBRARY))
        return statuses

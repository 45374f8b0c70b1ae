"""NVIDIA GPU energy through NVML (the `pynvml` module of nvidia-ml-py).

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
import statistics
import sys
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

from eitp_bench.energy import crosscheck, gpu_state
from eitp_bench.energy.base import Channel, Meter, MeterStatus, PowerSample, Sensor
from eitp_bench.errors import UserError
from eitp_bench.flags import Flag, flag
from eitp_bench.records import EnergyEntry

FI_DEV_POWER_INSTANT = 186  # NVML_FI_DEV_POWER_INSTANT
ARCH_AMPERE = 7  # NVML_DEVICE_ARCH_AMPERE: GetPowerUsage becomes a 1-s mean
SLOW_READ_S = 1.0  # a read (or a mark's wait for one) longer than this is stuck: flagged, values dropped
TEMPERATURE_POLL_S = 1.0  # the sampler reads each GPU's temperature this often, for a window's maximum
DEFAULT_POWER_LIMIT_W = 2000.0  # when NVML gives no power limit: above any board sold (B200 1000 W)
JUMP_FACTOR = 2.0  # boards exceed their limit in short transients, never by 2x over a counter update
JUMP_SLACK_S = 0.1  # the counter's update period at most: a step may hold one update's energy
PERIOD_SPAN = 8  # counter changes averaged per run when inferring the update period
PERIOD_HISTORY = 65  # the last changes kept for it (8 runs of 8 intervals)
CALIBRATE_S = 1.0  # fast counter reads at a meter's start (discover_meters): 9 changes of a 100-ms counter
CALIBRATE_POLL_S = 0.002

FIX_PYNVML = "pip install nvidia-ml-py (it provides the `pynvml` module; the PyPI `pynvml` distribution is deprecated)"
FIX_LIBRARY = (
    "install the NVIDIA driver, or run the container with --gpus all and the NVIDIA container toolkit"
)
FIX_PERMISSION = ("nothing to do if the scheduler gave this job other GPUs (Slurm/cgroups); to measure this one, "
                  "request it in the job or set CUDA_VISIBLE_DEVICES to the GPUs the job owns")


def load_pynvml() -> Any:
    """Import `pynvml` lazily; a UserError with the fix if it is missing."""
    try:
        with warnings.catch_warnings():  # the deprecated `pynvml` distribution warns on import
            warnings.simplefilter("ignore", FutureWarning)
            import pynvml
    except ImportError as err:
        raise UserError(f"the pynvml module is not importable ({err})", fix=FIX_PYNVML) from err
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _uuid_key(uuid: str) -> str:
    """Compare UUIDs without the GPU-/MIG- prefix: torch prints them bare."""
    u = _text(uuid).strip().lower()
    for prefix in ("gpu-", "mig-"):
        if u.startswith(prefix):
            return u[len(prefix) :]
    return u


def _nvml_error(N: Any) -> Any:
    """pynvml's base error class, or a class nothing raises (a binding without one)."""
    cls = getattr(N, "NVMLError", None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else ()


def _describe(N: Any, err: BaseException) -> str:
    """An exception from the binding, for a flag or a doctor line: NVML's own words, or what went wrong."""
    if isinstance(err, _nvml_error(N)):
        return f"{type(err).__name__}: {err}"
    return f"unexpected {type(err).__name__} from the NVML binding: {err}"


def _as_mj(value: Any) -> int:
    """The energy counter's value as integer mJ; TypeError for anything that is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise TypeError(f"nvmlDeviceGetTotalEnergyConsumption returned {value!r}, not a count of mJ")
    return int(value)


def _field_number(fv: Any) -> float:
    """The value of an nvmlFieldValue_t, whatever its declared type."""
    attr = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
    return float(getattr(fv.value, attr.get(int(fv.valueType), "uiVal")))


# --- which GPUs, in torch's order -----------------------------------------------------------------


@dataclass
class VisibleGpu:
    ordinal: int  # torch / CUDA device ordinal
    handle: Any  # NVML handle of the physical GPU
    uuid: str  # the physical GPU's NVML UUID
    mig_instance: Optional[str] = None  # the MIG UUID, when the visible device is a MIG instance
    mapped_by: str = "nvml order"


def torch_device_uuids() -> Optional[list[str]]:
    """UUIDs of torch's CUDA devices by ordinal, or None. Uses torch only if it is already imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        return [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]
    except Exception:  # torch without CUDA, or an old torch without .uuid
        return None


@dataclass(frozen=True)
class SkippedGpu:
    """A GPU this process may not read (NVML_ERROR_NO_PERMISSION: a Slurm/cgroup-constrained node)."""

    what: str  # "index 1", "GPU-5f3c…", "gpu:1"
    reason: str
    fix: str = FIX_PERMISSION

    def status(self) -> MeterStatus:
        return MeterStatus("nvml", False, reason=f"{self.what} skipped: {self.reason}", fix=self.fix)

    def as_dict(self) -> dict[str, str]:
        return {"gpu": self.what, "reason": self.reason, "fix": self.fix}


def _denied(N: Any, err: BaseException) -> bool:
    return isinstance(err, getattr(N, "NVMLError_NoPermission", ()))


def visible_gpus(
    nvml: Any, env: Optional[dict[str, str]] = None, torch_uuids: Optional[list[str]] = None,
    skipped: Optional[list[SkippedGpu]] = None,
) -> list[VisibleGpu]:
    """Map torch ordinals to NVML handles: by UUID via torch if given, else by CUDA_VISIBLE_DEVICES.

    CUDA_VISIBLE_DEVICES entries are indices or GPU-/MIG- UUIDs (GPU- ones may be prefixes); like CUDA,
    we stop at the first entry that names no device. Indices assume PCI bus order (NVML's order).
    Only the GPUs named are opened (a full UUID is looked up directly, an index by index): on a node
    where cgroups hide the other GPUs, touching them answers NVML_ERROR_NO_PERMISSION. A GPU that
    answers so is left out with a `SkippedGpu` note in `skipped` and takes no ordinal (CUDA cannot
    open it either); the others are still measured.
    """
    env = os.environ if env is None else env
    skipped = [] if skipped is None else skipped
    count = nvml.nvmlDeviceGetCount()
    direct = getattr(nvml, "nvmlDeviceGetHandleByUUID", None)
    opened: dict[int, Any] = {}  # index -> (handle, uuid), or the NO_PERMISSION error

    def deny(what: str, err: BaseException) -> None:
        skipped.append(SkippedGpu(what, f"NVML answered {err} (not this process's GPU)"))

    def by_index(i: int, note: bool = True) -> Optional[tuple[Any, str]]:
        if i not in opened:
            try:
                h = nvml.nvmlDeviceGetHandleByIndex(i)
                opened[i] = (h, _text(nvml.nvmlDeviceGetUUID(h)))
            except Exception as err:
                if not _denied(nvml, err):
                    raise
                opened[i] = err
        if isinstance(opened[i], BaseException):
            if note:
                deny(f"GPU index {i}", opened[i])
            return None
        return opened[i]

    def physical(note: bool = True) -> list[tuple[Any, str]]:
        return [hu for hu in (by_index(i, note) for i in range(count)) if hu is not None]

    def by_uuid(uuid: str, ordinal: int, how: str) -> Optional[VisibleGpu]:
        key, text = _uuid_key(uuid), _text(uuid).strip()
        named = [text] if text.lower().startswith(("gpu-", "mig-")) else ["GPU-" + key, "MIG-" + key]
        for candidate in named if direct is not None else ():  # a full UUID: open that device alone
            try:
                h = direct(candidate)
                if candidate.lower().startswith("mig-"):  # a MIG instance: energy only exists for its parent
                    parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(h)
                    return VisibleGpu(ordinal, parent, _text(nvml.nvmlDeviceGetUUID(parent)), candidate, how)
                u = _text(nvml.nvmlDeviceGetUUID(h))
                if _uuid_key(u) == key:
                    return VisibleGpu(ordinal, h, u, mapped_by=how)
            except Exception as err:
                if _denied(nvml, err):
                    deny(text, err)
                    return None
        # a UUID prefix (CUDA accepts a unique one): among the GPUs this process may open
        hits = [(h, u) for h, u in physical(note=False) if _uuid_key(u).startswith(key)]
        if len(hits) == 1:
            return VisibleGpu(ordinal, hits[0][0], hits[0][1], mapped_by=how)
        return None

    if torch_uuids is not None:
        out = [by_uuid(u, i, "uuid via torch") for i, u in enumerate(torch_uuids)]
        return [g for g in out if g is not None]

    spec = env.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return [VisibleGpu(i, h, u) for i, (h, u) in enumerate(physical())]
    out: list[VisibleGpu] = []
    for entry in (e.strip() for e in spec.split(",")):
        ordinal = len(out)
        if entry.lstrip("-").isdigit():
            n = int(entry)
            if not 0 <= n < count:
                break
            hu = by_index(n)
            if hu is None:
                continue  # denied: noted in `skipped`
            gpu = VisibleGpu(ordinal, hu[0], hu[1], mapped_by="CUDA_VISIBLE_DEVICES index")
        elif entry:
            before = len(skipped)
            gpu = by_uuid(entry, ordinal, "CUDA_VISIBLE_DEVICES uuid")
            if gpu is None:
                if len(skipped) > before:
                    continue
                break
        else:
            break
        if any(g.uuid == gpu.uuid and g.mig_instance == gpu.mig_instance for g in out):
            break  # CUDA rejects duplicates
        out.append(gpu)
    return out


# --- per-GPU running state ------------------------------------------------------------------------


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


def _grace_hopper(name: Optional[str]) -> bool:
    """A Grace Hopper superchip by its product name (NVIDIA GH200 …)."""
    return bool(name) and "GH200" in name.upper()


def power_scope(st: "_GpuState") -> str:
    """What a GPU's figures cover, for provenance: "gpu", "module" (Grace Hopper at module scope) or
    "gpu or module" (a GH200 whose scope NVML does not state)."""
    if st.power_source == "instant-module":
        return "module"
    return "gpu or module" if _grace_hopper(st.name) else "gpu"


def _mig_state(value: Any) -> Optional[dict[str, bool]]:
    """nvmlDeviceGetMigMode's (current, pending) as booleans; None when unknown or not supported."""
    try:
        current, pending = value
        return {"current": bool(int(current)), "pending": bool(int(pending))}
    except (TypeError, ValueError):
        return None


def _cuda_version(value: Any) -> Optional[str]:
    """nvmlSystemGetCudaDriverVersion's integer (12040) as "12.4"; None when unknown."""
    try:
        v = int(value)
    except (TypeError, ValueError):
        return None
    return f"{v // 1000}.{(v % 1000) // 10}" if v > 0 else None


_ARCH_NAMES = {2: "kepler", 3: "maxwell", 4: "pascal", 5: "volta", 6: "turing", 7: "ampere", 8: "ada",
               9: "hopper", 10: "blackwell"}


def _init_status(N: Any, err: Exception) -> MeterStatus:
    if isinstance(err, getattr(N, "NVMLError_LibraryNotFound", ())):
        return MeterStatus("nvml", False, reason="NVIDIA driver library libnvidia-ml.so not found", fix=FIX_LIBRARY)
    if isinstance(err, getattr(N, "NVMLError_NoPermission", ())):
        return MeterStatus("nvml", False, reason=f"NVML permission denied: {err}",
                           fix="run as a user with access to /dev/nvidia* (the video group, or --gpus in a container)")
    return MeterStatus("nvml", False, reason=f"NVML failed to initialise: {_describe(N, err)}", fix=FIX_LIBRARY)


def _gpu_status(N: Any, gpu: VisibleGpu) -> MeterStatus:
    device = f"gpu:{gpu.ordinal}"
    try:
        name = _text(N.nvmlDeviceGetName(gpu.handle))
    except _nvml_error(N) as err:
        if _denied(N, err):
            return SkippedGpu(device, f"NVML answered {err} (not this process's GPU)").status()
        return MeterStatus("nvml", False, device, "gpu", reason=f"{device} unreadable: {err}", fix=FIX_LIBRARY)
    details: dict[str, Any] = {"name": name, "uuid": gpu.uuid}
    try:
        _as_mj(N.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
        return MeterStatus("nvml", True, device, "gpu", reason=f"{name}: energy counter",
                           details={**details, "method": "counter"})
    except Exception as err:
        if _denied(N, err):
            why = f"NVML answered {err} reading its energy counter (not this process's GPU)"
            return SkippedGpu(device, why).status()
        no_counter = isinstance(err, getattr(N, "NVMLError_NotSupported", ()))
        counter_err = str(err) if isinstance(err, _nvml_error(N)) else _describe(N, err)
    try:
        float(N.nvmlDeviceGetPowerUsage(gpu.handle))
    except Exception as err:
        return MeterStatus("nvml", False, device, "gpu",
                           reason=f"{name}: power reading not supported ({err}) and no energy counter",
                           fix="none for this GPU: its energy can only be estimated", details=details)
    reason = ("no energy counter (pre-Volta): power will be sampled and integrated" if no_counter
              else f"energy counter unreadable ({counter_err}): power will be sampled and integrated")
    return MeterStatus(
        "nvml", True, device, "gpu", reason=f"{name}: {reason}", details={**details, "method": "sampled"}
    )

"""A fake `pynvml` module for tests: simulated GPUs with a synthetic power trace.

    clock = ManualClock()
    nvml = FakeNvml(gpus=[FakeGpu(name="NVIDIA H100", watts=lambda t: 300.0)], clock=clock)
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock)

What it simulates (the behaviours the meter must cope with):
- the total-energy counter (mJ, integer) that only updates every `counter_period_s`, integrating the
  trace exactly up to each update time (trapezoid on 1 ms steps: exact for piecewise-linear traces
  whose breakpoints fall on the millisecond grid);
- `nvmlDeviceGetPowerUsage`: a 1-s average on Ampere and later, instantaneous before;
- the instant power field (`NVML_FI_DEV_POWER_INSTANT`, 186), which pre-Ampere GPUs lack here;
- a pre-Volta GPU (no energy counter), a GPU with no power reading, a counter that under- or
  over-reports (`counter_scale`), a counter reset (driver reload), a counter that jumps
  (`jump_counter`), a call that stalls (`stall_at`/`stall_s`), errors injected mid-run, a missing
  driver library, MIG mode, Grace Hopper (GPU power scope unsupported, module scope works), an instant
  power field that averages only part of each period (`power_coverage`, A100/H100: 25 %), a GPU of
  another job (`denied`: every call answers NVML_ERROR_NO_PERMISSION), and the board's state: power limit,
  clocks, temperature, clock-event reasons, violation counters (`power_throttle_share`, `add_violation`),
  ECC, serial, default application clocks, workload power profile.
Other faults of the binding (odd return types, non-NVML exceptions): set the method on the instance.

The error classes mirror pynvml's: `NVMLError(code)` returns the subclass for that code.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

# --- constants (same values as pynvml) ------------------------------------------------------------

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_POWER_SCOPE_GPU = 0
NVML_POWER_SCOPE_MODULE = 1

NVML_VALUE_TYPE_DOUBLE = 0
NVML_VALUE_TYPE_UNSIGNED_INT = 1

NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0
NVML_PERF_POLICY_POWER = 0
NVML_PERF_POLICY_THERMAL = 1
NVML_POWER_PROFILE_MAX_P = 0
NVML_POWER_PROFILE_MAX_Q = 1
NVML_POWER_PROFILE_COMPUTE = 2

NVML_DEVICE_ARCH_KEPLER = 2
NVML_DEVICE_ARCH_MAXWELL = 3
NVML_DEVICE_ARCH_PASCAL = 4
NVML_DEVICE_ARCH_VOLTA = 5
NVML_DEVICE_ARCH_TURING = 6
NVML_DEVICE_ARCH_AMPERE = 7
NVML_DEVICE_ARCH_ADA = 8
NVML_DEVICE_ARCH_HOPPER = 9

_ARCH = {
    "kepler": NVML_DEVICE_ARCH_KEPLER,
    "maxwell": NVML_DEVICE_ARCH_MAXWELL,
    "pascal": NVML_DEVICE_ARCH_PASCAL,
    "volta": NVML_DEVICE_ARCH_VOLTA,
    "turing": NVML_DEVICE_ARCH_TURING,
    "ampere": NVML_DEVICE_ARCH_AMPERE,
    "ada": NVML_DEVICE_ARCH_ADA,
    "hopper": NVML_DEVICE_ARCH_HOPPER,
}

# --- the error hierarchy --------------------------------------------------------------------------


class NVMLError(Exception):
    _by_code: dict[int, type] = {}

    def __new__(cls, value):
        if cls is NVMLError:
            cls = NVMLError._by_code.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value
        return obj

    def __init__(self, value):
        super().__init__(value)
        self.value = value

    def __str__(self):
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")


_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


def _subclass(name: str, code: int) -> type:
    cls = type(name, (NVMLError,), {"__new__": lambda typ, *a: NVMLError.__new__(typ, code)})
    NVMLError._by_code[code] = cls
    return cls


NVMLError_Uninitialized = _subclass("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _subclass("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _subclass("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _subclass("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_NotFound = _subclass("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_DriverNotLoaded = _subclass("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _subclass("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_GpuIsLost = _subclass("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_Unknown = _subclass("NVMLError_Unknown", NVML_ERROR_UNKNOWN)


# --- clocks and GPUs ------------------------------------------------------------------------------


class ManualClock:
    """A clock tests advance by hand, so every sample time is known exactly."""

    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> float:
        self.t += seconds
        return self.t


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    watts: Callable[[float], float] = lambda t: 300.0  # the power trace, W, as a function of clock time
    arch: str = "hopper"  # pascal or older: no energy counter; ampere or newer: GetPowerUsage is a 1-s mean
    uuid: Optional[str] = None  # default GPU-00000000-0000-0000-0000-00000000000<index>
    counter_period_s: float = 0.1
    counter_scale: float = 1.0  # 0.9: the counter under-reports by 10 %
    counter_start_mj: int = 123_456_789  # energy since driver load
    instant_field: Optional[bool] = None  # None: Volta+ have it
    power_supported: bool = True
    gpu_scope_power: bool = True  # False: Grace Hopper, where only NVML_POWER_SCOPE_MODULE reads
    mig: bool = False
    mig_uuids: list[str] = field(default_factory=list)
    power_limit_w: float = 700.0
    sm_clock_mhz: int = 1980
    mem_clock_mhz: int = 2619
    temperature_c: int = 41
    persistence: int = 1
    app_sm_clock_mhz: int = 1755  # application clocks (nvmlDeviceGetApplicationsClock)
    app_mem_clock_mhz: int = 2619
    max_sm_clock_mhz: int = 1980  # nvmlDeviceGetMaxClockInfo
    max_mem_clock_mhz: int = 2619
    processes: list = field(default_factory=list)  # (pid, used bytes) of compute processes on this GPU
    fail_from: Optional[float] = None  # clock time from which every call on this GPU raises `fail_code`
    fail_code: int = NVML_ERROR_GPU_IS_LOST
    stall_at: Optional[float] = None  # from this clock time, the next `stall_calls` calls of `stall_call` ...
    stall_s: float = 0.0  # ... take this long (a ManualClock is advanced; a real clock is slept)
    stall_call: str = "nvmlDeviceGetTotalEnergyConsumption"
    stall_calls: int = 1
    # The instant power field as on A100/H100: each `power_period_s` the sensor averages only the first
    # `power_coverage` of the period (0.25: 25 ms of every 100 ms) and reports that until the next one.
    # 1.0 (default): the field is the trace's value at the instant of the read.
    power_coverage: float = 1.0
    power_period_s: float = 0.1
    denied: bool = False  # True: every call on this GPU answers NVML_ERROR_NO_PERMISSION (another job's GPU)
    # The board's state (energy/gpu_state.py). Throttling: the share of clock time the power cap /
    # temperature held the clocks down, accumulated into NVML's violation counters (ns); `add_violation`
    # adds an exact amount. `clock_event_reasons`: the bitmask nvmlDeviceGetCurrentClocksEventReasons returns.
    power_throttle_share: float = 0.0
    thermal_throttle_share: float = 0.0
    clock_event_reasons: int = 0
    default_app_sm_clock_mhz: int = 1755  # nvmlDeviceGetDefaultApplicationsClock: app clocks != this -> locked
    ecc: Optional[int] = 1  # None: ECC not supported
    serial: Optional[str] = None  # default 16501234567<index>
    power_profile: Optional[int] = None  # the enforced workload power profile (bit number); None: not supported


@dataclass
class _FieldValue:
    fieldId: int
    scopeId: int
    timestamp: int
    latencyUsec: int
    valueType: int
    nvmlReturn: int
    value: "_Value"


@dataclass
class _Value:
    dVal: float = 0.0
    uiVal: int = 0
    ulVal: int = 0
    ullVal: int = 0
    sllVal: int = 0
    siVal: int = 0
    usVal: int = 0


@dataclass
class _ProcessInfo:
    pid: int
    usedGpuMemory: Optional[int]  # bytes; None where the driver hides it (pynvml gives None then)
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass
class _ViolationTime:
    referenceTime: int  # µs
    violationTime: int  # ns, cumulative


class _Mask255(ctypes.Structure):
    _fields_ = [("mask", ctypes.c_uint * 8)]


class c_nvmlWorkloadPowerProfileCurrentProfiles_v1_t(ctypes.Structure):  # noqa: N801 (pynvml's name)
    _fields_ = [("version", ctypes.c_uint), ("perfProfilesMask", _Mask255), ("requestedProfilesMask", _Mask255),
                ("enforcedProfilesMask", _Mask255)]


nvmlWorkloadPowerProfileCurrentProfiles_v1 = 0x1000064


class _Handle:
    def __init__(self, index: int, mig_uuid: Optional[str] = None):
        self.index = index
        self.mig_uuid = mig_uuid


class _GpuState:
    """The simulated internals of one GPU: the counter's integral since the fake started."""

    def __init__(self, gpu: FakeGpu, index: int, t0: float):
        self.gpu = gpu
        self.index = index
        self.t0 = t0
        self.integrated_until = t0
        self.integral_j = 0.0  # exact trapezoid integral of the trace from t0 to integrated_until
        self.offset_mj = float(gpu.counter_start_mj)
        if gpu.uuid is None:
            gpu.uuid = f"GPU-00000000-0000-0000-0000-{index:012d}"
        if gpu.serial is None:
            gpu.serial = f"16501234567{index:02d}"
        self.violation_s = {"power": 0.0, "thermal": 0.0}  # added by hand (FakeNvml.add_violation)

    def integrate_to(self, t: float) -> None:
        # 1 ms trapezoid steps on an absolute grid, so results do not depend on how often we are asked.
        steps = int(round((t - self.integrated_until) * 1000))
        w = self.gpu.watts
        a = self.integrated_until
        for k in range(steps):
            lo, hi = a + k / 1000, a + (k + 1) / 1000
            self.integral_j += (w(lo) + w(hi)) / 2 * 0.001
        self.integrated_until = a + steps / 1000

    def counter_mj(self, now: float) -> int:
        period = self.gpu.counter_period_s
        last_update = self.t0 + math.floor((now - self.t0) / period + 1e-9) * period
        if last_update > self.integrated_until:
            self.integrate_to(last_update)
        # integrate_to only moves forward; the value at `last_update` is cached in integral_j
        return int(self.offset_mj + self.integral_j * 1000 * self.gpu.counter_scale)


class FakeNvml:
    """Stands in for the `pynvml` module (nvidia-ml-py): pass it as `NvmlMeter(nvml=FakeNvml(...))`."""

    def __init__(
        self,
        gpus: Optional[list[FakeGpu]] = None,
        clock: Callable[[], float] = time.monotonic,
        library_found: bool = True,
        driver_version: str = "550.54.15",
        nvml_version: str = "12.550.54.15",
        cuda_driver_version: int = 12040,
    ):
        self.clock = clock
        self.library_found = library_found
        self.driver_version = driver_version
        self.nvml_version = nvml_version
        self.cuda_driver_version = cuda_driver_version
        t0 = clock()
        self._gpus = [_GpuState(g, i, t0) for i, g in enumerate(gpus if gpus is not None else [FakeGpu()])]
        self._init_count = 0
        self._lock = threading.Lock()  # the sampler thread and marks call in concurrently
        self.calls: dict[str, int] = {}
        # expose the error classes and constants as module attributes, like pynvml
        g = globals()
        for name, value in g.items():
            if name.startswith(("NVML", "NVMLError", "c_nvml", "nvmlWorkload")):
                setattr(self, name, value)

    # --- test controls ---

    def gpu(self, index: int) -> FakeGpu:
        return self._gpus[index].gpu

    def reset_counter(self, index: int, to_mj: int = 0) -> None:
        """Simulate a driver reload: the counter restarts from `to_mj`."""
        with self._lock:
            st = self._gpus[index]
            st.counter_mj(self.clock())
            st.offset_mj = to_mj - st.integral_j * 1000 * st.gpu.counter_scale

    def jump_counter(self, index: int, by_mj: int) -> None:
        """A counter that steps by `by_mj` at once (a firmware glitch, a bad read): not energy drawn."""
        with self._lock:
            self._gpus[index].offset_mj += by_mj

    def add_violation(self, index: int, kind: str, seconds: float) -> None:
        """`seconds` more of power ("power") or thermal ("thermal") capping on this GPU's violation counter."""
        self._gpus[index].violation_s[kind] += seconds

    def exact_joules(self, index: int, t0: float, t1: float, step: float = 1e-4) -> float:
        """The trace's integral over [t0, t1] (fine trapezoid), the truth tests compare against."""
        n = max(1, int(round((t1 - t0) / step)))
        h = (t1 - t0) / n
        w = self._gpus[index].gpu.watts
        return h * (sum(w(t0 + k * h) for k in range(1, n)) + (w(t0) + w(t1)) / 2)

    # --- pynvml's interface ---

    def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if not self.library_found:
            raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        if name != "nvmlInit" and self._init_count <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def _state(self, handle: _Handle, name: str) -> _GpuState:
        self._call(name)
        st = self._gpus[handle.index]
        g = st.gpu
        if g.stall_at is not None and name == g.stall_call and g.stall_calls > 0 and self.clock() >= g.stall_at:
            g.stall_calls -= 1
            if isinstance(self.clock, ManualClock):
                self.clock.advance(g.stall_s)
            else:
                time.sleep(g.stall_s)
        if st.gpu.fail_from is not None and self.clock() >= st.gpu.fail_from:
            raise NVMLError(st.gpu.fail_code)
        if st.gpu.denied:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        return st

    def nvmlInit(self):
        self._call("nvmlInit")
        self._init_count += 1

    def nvmlShutdown(self):
        self._call("nvmlShutdown")
        self._init_count -= 1

    def nvmlSystemGetDriverVersion(self):
        self._call("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetNVMLVersion(self):
        self._call("nvmlSystemGetNVMLVersion")
        return self.nvml_version

    def nvmlSystemGetCudaDriverVersion(self):
        self._call("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlDeviceGetCount(self):
        self._call("nvmlDeviceGetCount")
        return len(self._gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._call("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self._gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        if self._gpus[index].gpu.denied:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        return _Handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self._call("nvmlDeviceGetHandleByUUID")
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        for st in self._gpus:
            if st.gpu.uuid == uuid and st.gpu.denied:
                raise NVMLError(NVML_ERROR_NO_PERMISSION)
            if st.gpu.uuid == uuid:
                return _Handle(st.index)
            if uuid in st.gpu.mig_uuids:
                return _Handle(st.index, mig_uuid=uuid)
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle):
        self._call("nvmlDeviceGetDeviceHandleFromMigDeviceHandle")
        return _Handle(handle.index)

    def nvmlDeviceGetUUID(self, handle):
        st = self._state(handle, "nvmlDeviceGetUUID")
        return handle.mig_uuid or st.gpu.uuid

    def nvmlDeviceGetName(self, handle):
        return self._state(handle, "nvmlDeviceGetName").gpu.name

    def nvmlDeviceGetArchitecture(self, handle):
        return _ARCH[self._state(handle, "nvmlDeviceGetArchitecture").gpu.arch]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        with self._lock:
            st = self._state(handle, "nvmlDeviceGetTotalEnergyConsumption")
            if _ARCH[st.gpu.arch] < NVML_DEVICE_ARCH_VOLTA:
                raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
            return st.counter_mj(self.clock())

    def nvmlDeviceGetPowerUsage(self, handle):
        st = self._state(handle, "nvmlDeviceGetPowerUsage")
        if not st.gpu.power_supported:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        now, w = self.clock(), st.gpu.watts
        if _ARCH[st.gpu.arch] >= NVML_DEVICE_ARCH_AMPERE:  # a 1-s mean (midpoint rule, 100 points)
            return int(round(1000 * sum(w(now - 1 + (k + 0.5) / 100) for k in range(100)) / 100))
        return int(round(1000 * w(now)))

    def nvmlDeviceGetFieldValues(self, handle, fieldIds):
        st = self._state(handle, "nvmlDeviceGetFieldValues")
        now = self.clock()
        out = []
        for fid in fieldIds:
            fid, scope = fid if isinstance(fid, tuple) else (fid, 0)
            has_instant = st.gpu.instant_field
            if has_instant is None:
                has_instant = _ARCH[st.gpu.arch] >= NVML_DEVICE_ARCH_VOLTA
            ok = (
                fid == NVML_FI_DEV_POWER_INSTANT
                and has_instant
                and st.gpu.power_supported
                and (scope == NVML_POWER_SCOPE_MODULE or st.gpu.gpu_scope_power)
            )
            value = _Value(uiVal=int(round(1000 * self._instant_watts(st.gpu, now)))) if ok else _Value()
            out.append(
                _FieldValue(
                    fieldId=fid,
                    scopeId=scope,
                    timestamp=int(now * 1e6),
                    latencyUsec=0,
                    valueType=NVML_VALUE_TYPE_UNSIGNED_INT,
                    nvmlReturn=NVML_SUCCESS if ok else NVML_ERROR_NOT_SUPPORTED,
                    value=value,
                )
            )
        return out

    @staticmethod
    def _instant_watts(g: FakeGpu, now: float) -> float:
        """The instant field: the trace now, or (power_coverage < 1) the mean over the covered part of the
        last sensor period whose covered part has ended (midpoint rule, 25 points)."""
        if g.power_coverage >= 1.0:
            return g.watts(now)
        period, span = g.power_period_s, g.power_period_s * g.power_coverage
        start = math.floor(now / period + 1e-9) * period
        if now < start + span:
            start -= period
        return sum(g.watts(start + (k + 0.5) * span / 25) for k in range(25)) / 25

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return int(self._state(handle, "nvmlDeviceGetEnforcedPowerLimit").gpu.power_limit_w * 1000)

    def nvmlDeviceGetClockInfo(self, handle, clock_type):
        g = self._state(handle, "nvmlDeviceGetClockInfo").gpu
        return g.mem_clock_mhz if clock_type == NVML_CLOCK_MEM else g.sm_clock_mhz

    def nvmlDeviceGetApplicationsClock(self, handle, clock_type):
        g = self._state(handle, "nvmlDeviceGetApplicationsClock").gpu
        return g.app_mem_clock_mhz if clock_type == NVML_CLOCK_MEM else g.app_sm_clock_mhz

    def nvmlDeviceGetMaxClockInfo(self, handle, clock_type):
        g = self._state(handle, "nvmlDeviceGetMaxClockInfo").gpu
        return g.max_mem_clock_mhz if clock_type == NVML_CLOCK_MEM else g.max_sm_clock_mhz

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        g = self._state(handle, "nvmlDeviceGetComputeRunningProcesses").gpu
        return [_ProcessInfo(pid=pid, usedGpuMemory=used) for pid, used in g.processes]

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return self._state(handle, "nvmlDeviceGetTemperature").gpu.temperature_c

    def nvmlDeviceGetViolationStatus(self, handle, perf_policy):
        st = self._state(handle, "nvmlDeviceGetViolationStatus")
        kind = {NVML_PERF_POLICY_POWER: "power", NVML_PERF_POLICY_THERMAL: "thermal"}.get(perf_policy)
        if kind is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        now = self.clock()
        share = st.gpu.power_throttle_share if kind == "power" else st.gpu.thermal_throttle_share
        seconds = share * (now - st.t0) + st.violation_s[kind]
        return _ViolationTime(referenceTime=int(now * 1e6), violationTime=int(round(seconds * 1e9)))

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle):
        return self._state(handle, "nvmlDeviceGetCurrentClocksEventReasons").gpu.clock_event_reasons

    def nvmlDeviceGetDefaultApplicationsClock(self, handle, clock_type):
        g = self._state(handle, "nvmlDeviceGetDefaultApplicationsClock").gpu
        return g.app_mem_clock_mhz if clock_type == NVML_CLOCK_MEM else g.default_app_sm_clock_mhz

    def nvmlDeviceGetEccMode(self, handle):
        g = self._state(handle, "nvmlDeviceGetEccMode").gpu
        if g.ecc is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [g.ecc, g.ecc]

    def nvmlDeviceGetSerial(self, handle):
        return self._state(handle, "nvmlDeviceGetSerial").gpu.serial

    def nvmlDeviceWorkloadPowerProfileGetCurrentProfiles(self, handle, current_profiles):
        """As pynvml: fills the c_nvmlWorkloadPowerProfileCurrentProfiles_v1_t passed by reference."""
        g = self._state(handle, "nvmlDeviceWorkloadPowerProfileGetCurrentProfiles").gpu
        if g.power_profile is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        target = getattr(current_profiles, "_obj", current_profiles)  # ctypes.byref(...)
        target.enforcedProfilesMask.mask[0] = 1 << g.power_profile
        return NVML_SUCCESS

    def nvmlDeviceGetPersistenceMode(self, handle):
        return self._state(handle, "nvmlDeviceGetPersistenceMode").gpu.persistence

    def nvmlDeviceGetMigMode(self, handle):
        g = self._state(handle, "nvmlDeviceGetMigMode").gpu
        if _ARCH[g.arch] < NVML_DEVICE_ARCH_AMPERE:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return [int(g.mig), int(g.mig)]


def cli_with_fake_gpus(powercap_root, *args: str, **fake_env: str):
    """`eitp-bench ARGS` in a child process that imports the fake pynvml (tests/fake_pynvml/) and reads
    RAPL from `powercap_root`; `fake_env`: the EITP_TEST_FAKE_GPU_* settings (e.g. WATTS="300,denied")."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    env = dict(os.environ, EITP_BENCH_POWERCAP_ROOT=str(powercap_root),
               PYTHONPATH=os.pathsep.join([str(tests / "fake_pynvml"), str(tests.parent)]),
               **{f"EITP_TEST_FAKE_GPU_{k}": v for k, v in fake_env.items()})
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run([sys.executable, "-m", "eitp_bench.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def measure_a_sleep_with_fake_gpus(powercap_root, **fake_env: str):
    """`eitp-bench measure --json` around a half-second sleep, with fake GPUs (cli_with_fake_gpus)."""
    import sys

    return cli_with_fake_gpus(powercap_root, "measure", "--json", "--", sys.executable, "-c",
                              "import time; time.sleep(0.5)", **fake_env)

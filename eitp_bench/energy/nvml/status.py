"""What `doctor` and a meter's `info()` say about a GPU: whether NVML and each GPU answer, its
architecture, CUDA version, MIG mode, Grace Hopper and the power scope its readings cover.
"""

from __future__ import annotations

from typing import Any, Optional

from eitp_bench.energy.base import MeterStatus
from eitp_bench.energy.nvml.binding import FIX_LIBRARY, _as_mj, _describe, _nvml_error, _text
from eitp_bench.energy.nvml.discovery import SkippedGpu, VisibleGpu, _denied
from eitp_bench.energy.nvml.state import _GpuState


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

"""Detect this machine: GPUs (NVML), CPU, memory, OS, torch/CUDA versions.

Never fails: whatever cannot be read is left None and explained in `notes`.
NVML and the /proc paths are injectable so tests run on fakes.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

_USE_PYNVML = object()  # sentinel: import the real pynvml


@dataclass
class GpuInfo:
    index: int
    name: str
    uuid: Optional[str] = None
    memory_bytes: Optional[int] = None
    power_limit_w: Optional[float] = None
    energy_counter: Optional[bool] = None  # nvmlDeviceGetTotalEnergyConsumption works here


@dataclass
class CpuInfo:
    model: str = "unknown"
    vendor: Optional[str] = None
    sockets: Optional[int] = None
    cores: Optional[int] = None  # physical cores, all sockets
    threads: Optional[int] = None  # logical CPUs


@dataclass
class Machine:
    gpus: list[GpuInfo] = field(default_factory=list)
    cpu: CpuInfo = field(default_factory=CpuInfo)
    memory_bytes: Optional[int] = None
    os: str = ""
    kernel: str = ""
    arch: str = ""
    python: str = ""
    torch: Optional[str] = None
    cuda: Optional[str] = None
    driver: Optional[str] = None
    hostname: str = ""  # provenance only: never part of the profile id
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect(
    *,
    nvml: Any = _USE_PYNVML,
    cpuinfo_path: str | os.PathLike = "/proc/cpuinfo",
    meminfo_path: str | os.PathLike = "/proc/meminfo",
) -> Machine:
    """Describe this machine. `nvml`: a pynvml-like module, None to skip GPUs, default the real one."""
    notes: list[str] = []
    uname = platform.uname()
    torch_version, cuda_version = _torch_versions()
    gpus, driver = _detect_gpus(nvml, notes)
    return Machine(
        gpus=gpus,
        cpu=_detect_cpu(Path(cpuinfo_path), notes),
        memory_bytes=_detect_memory(Path(meminfo_path), notes),
        os=uname.system,
        kernel=uname.release,
        arch=uname.machine,
        python=platform.python_version(),
        torch=torch_version,
        cuda=cuda_version,
        driver=driver,
        hostname=uname.node,
        notes=notes,
    )


# --- GPUs ------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _detect_gpus(nvml: Any, notes: list[str]) -> tuple[list[GpuInfo], Optional[str]]:
    if nvml is _USE_PYNVML:
        try:
            import pynvml as nvml
        except ImportError:
            notes.append("pynvml not installed: GPUs not detected (pip install nvidia-ml-py)")
            return [], None
    if nvml is None:
        return [], None
    try:
        nvml.nvmlInit()
    except Exception as err:  # no driver, no GPU: normal on CPU machines
        notes.append(f"NVML unavailable: {err}")
        return [], None
    try:
        driver = _try(lambda: _text(nvml.nvmlSystemGetDriverVersion()), notes, "driver version")
        count = _try(nvml.nvmlDeviceGetCount, notes, "GPU count") or 0
        gpus = []
        for i in range(count):
            handle = _try(lambda: nvml.nvmlDeviceGetHandleByIndex(i), notes, f"GPU {i} handle")
            if handle is None:
                continue
            limit_mw = _try(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle), notes, f"GPU {i} power limit")
            memory = _try(lambda: nvml.nvmlDeviceGetMemoryInfo(handle).total, notes, f"GPU {i} memory")
            gpus.append(
                GpuInfo(
                    index=i,
                    name=_try(lambda: _text(nvml.nvmlDeviceGetName(handle)), notes, f"GPU {i} name") or "unknown GPU",
                    uuid=_try(lambda: _text(nvml.nvmlDeviceGetUUID(handle)), notes, f"GPU {i} uuid"),
                    memory_bytes=int(memory) if memory is not None else None,
                    power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
                    energy_counter=_has_energy_counter(nvml, handle),
                )
            )
        return gpus, driver
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def _has_energy_counter(nvml: Any, handle: Any) -> bool:
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return True
    except Exception:  # NVML_ERROR_NOT_SUPPORTED before Volta
        return False


def _try(fn, notes: list[str], what: str):
    try:
        return fn()
    except Exception as err:
        notes.append(f"{what}: {err}")
        return None


# --- CPU, memory, software --------------------------------------------------------------------


def _detect_cpu(path: Path, notes: list[str]) -> CpuInfo:
    threads = os.cpu_count()
    try:
        text = path.read_text()
    except OSError as err:
        notes.append(f"cannot read {path}: {err.strerror}")
        return CpuInfo(model=platform.processor() or "unknown", threads=threads)
    blocks = [b for b in text.split("\n\n") if b.strip()]
    model = vendor = None
    sockets: set[str] = set()
    cores: set[tuple[str, str]] = set()
    processors = 0
    cores_per_socket = None
    for block in blocks:
        fields = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip()] = value.strip()
        if "processor" not in fields:
            continue
        processors += 1
        model = model or fields.get("model name") or fields.get("Model") or fields.get("cpu model")
        vendor = vendor or fields.get("vendor_id") or fields.get("CPU implementer")
        if "physical id" in fields:
            sockets.add(fields["physical id"])
            if "core id" in fields:
                cores.add((fields["physical id"], fields["core id"]))
        if "cpu cores" in fields and cores_per_socket is None:
            cores_per_socket = int(fields["cpu cores"])
    n_sockets = len(sockets) or None
    n_cores = len(cores) or (cores_per_socket * n_sockets if cores_per_socket and n_sockets else None)
    return CpuInfo(
        model=re.sub(r"\s+", " ", model).strip() if model else (platform.processor() or "unknown"),
        vendor=vendor,
        sockets=n_sockets,
        cores=n_cores,
        threads=processors or threads,
    )


def _detect_memory(path: Path, notes: list[str]) -> Optional[int]:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError) as err:
        notes.append(f"cannot read total memory from {path}: {err}")
    return None


def _torch_versions() -> tuple[Optional[str], Optional[str]]:
    """torch and its CUDA version, without importing torch when it is not loaded yet (slow)."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        return getattr(torch, "__version__", None), getattr(getattr(torch, "version", None), "cuda", None)
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None, None
    version_file = Path(list(spec.submodule_search_locations)[0]) / "version.py"
    try:
        text = version_file.read_text()
    except OSError:
        return None, None
    values = dict(re.findall(r"^(__version__|cuda)\s*(?::\s*\S+)?\s*=\s*['\"]?([^'\"\n]*?)['\"]?\s*$", text, re.M))
    cuda = values.get("cuda")
    return values.get("__version__") or None, (cuda if cuda and cuda != "None" else None)

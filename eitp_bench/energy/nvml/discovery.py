"""Which GPUs a meter opens, in torch's order: the ones CUDA_VISIBLE_DEVICES names (by index or UUID,
MIG included), or all; a GPU that answers NVML_ERROR_NO_PERMISSION (another job's, hidden by cgroups) is
left out as a `SkippedGpu` with the reason and fix.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Optional

from eitp_bench.energy.base import MeterStatus
from eitp_bench.energy.nvml.binding import FIX_PERMISSION, _text, _uuid_key


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

"""Ranks and GPUs, checked in the parent before any work: how many GPUs this process may use, and
whether a launch's ranks fit on them.

NCCL (the backend of every rank on a GPU) needs one GPU per rank: two ranks on one GPU fail in the first
collective with "Duplicate GPU detected", after the run has started every repetition's processes.
gloo ranks on CPU may share a machine freely. The count never initialises CUDA in the parent (a CUDA
context would sit on the GPU for the whole suite and skew the isolation check): NVML with
CUDA_VISIBLE_DEVICES applied (energy.nvml.visible_gpus), else CUDA_VISIBLE_DEVICES alone, else
torch's count in a short child process.

Light at import (no torch): preflight imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

TORCH_COUNT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class GpuCount:
    count: int
    source: str  # how it was counted, for the message


def visible_gpu_count(env: Optional[Mapping[str, str]] = None, nvml: Any = None,
                      torch_count: Optional[Callable[[], Optional[int]]] = None) -> Optional[GpuCount]:
    """The GPUs this process may use (CUDA_VISIBLE_DEVICES applied), or None when nothing can tell."""
    env = os.environ if env is None else env
    counted = _nvml_count(env, nvml)
    if counted is not None:
        return counted
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if spec is not None:
        return GpuCount(_count_visible_entries(spec), f"CUDA_VISIBLE_DEVICES={spec!r}")
    n = (torch_count or _torch_count_in_child)()
    return GpuCount(n, "torch.cuda.device_count() in a child process") if n is not None else None


def _nvml_count(env: Mapping[str, str], nvml: Any) -> Optional[GpuCount]:
    from eitp_bench.energy.nvml import load_pynvml, visible_gpus

    try:
        N = nvml if nvml is not None else load_pynvml()
        N.nvmlInit()
    except Exception:  # no binding, no driver: NVML cannot say
        return None
    try:
        n = len(visible_gpus(N, dict(env)))
    except Exception:
        return None
    finally:
        try:
            N.nvmlShutdown()
        except Exception:
            pass
    spec = env.get("CUDA_VISIBLE_DEVICES")
    return GpuCount(n, "NVML" + (f" with CUDA_VISIBLE_DEVICES={spec!r}" if spec is not None else ""))


def _count_visible_entries(spec: str) -> int:
    """Entries CUDA would enumerate, without NVML to check them: up to the first empty or negative one."""
    n = 0
    for entry in (e.strip() for e in spec.split(",")):
        if not entry or entry.startswith("-"):
            break
        n += 1
    return n


def _torch_count_in_child() -> Optional[int]:
    """torch.cuda.device_count() in a child process, so this one never starts CUDA; None if it fails."""
    try:
        done = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
                              capture_output=True, text=True, timeout=TORCH_COUNT_TIMEOUT_S)
        return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return None


def uses_nccl(device: str, cuda_built: bool, visible: Optional[int]) -> bool:
    """Whether the ranks will run on GPUs over NCCL (distributed.ranks.RankContext.start's choice):
    device cuda, or auto with a CUDA build of torch and a GPU in sight."""
    return device == "cuda" or (device == "auto" and cuda_built and bool(visible))


def ranks_per_gpu_problem(nproc_per_node: int, device: str, visible: Optional[GpuCount],
                          cuda_built: bool) -> Optional[tuple[str, str]]:
    """(why, fix) when more NCCL ranks than visible GPUs would start on this machine, else None."""
    if nproc_per_node <= 1 or visible is None or visible.count < 1:
        return None  # one rank; or no GPU at all (the missing GPU is its own problem); or unknown
    if not uses_nccl(device, cuda_built, visible.count) or nproc_per_node <= visible.count:
        return None
    why = (f"launcher.nproc_per_node={nproc_per_node} ranks on device {device} would share {visible.count} visible "
           f"GPU(s) ({visible.source}); NCCL needs one GPU per rank and fails with \"Duplicate GPU detected\"")
    fix = (f"--nproc-per-node {visible.count} (one rank per GPU), make {nproc_per_node} GPUs visible "
           "(CUDA_VISIBLE_DEVICES), or --set device=cpu for gloo ranks")
    return why, fix


def rank_environment(environ: Mapping[str, str], nproc_per_node: int) -> dict[str, str]:
    """Variables to add for the ranks, as torchrun sets them: OMP_NUM_THREADS=1 when several ranks share
    this machine and the user set none (each rank's OpenMP pool would otherwise take every core)."""
    if nproc_per_node > 1 and "OMP_NUM_THREADS" not in environ:
        return {"OMP_NUM_THREADS": "1"}
    return {}

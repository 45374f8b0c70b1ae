"""Where a result came from: package, git commit, library versions, CUDA/driver, platform.

Every lookup is best effort: a missing git, torch or NVML leaves its field None, never an error.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path
from typing import Optional

from eitp_bench import __version__
from eitp_bench.records import Provenance


def git_commit(path: Optional[Path] = None) -> Optional[str]:
    """HEAD of the checkout holding eitp_bench (suffixed "-dirty" with local changes), or None."""
    where = path or Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True, text=True, timeout=5
        )
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(module: str) -> Optional[str]:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _nvidia_driver() -> Optional[str]:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            v = pynvml.nvmlSystemGetDriverVersion()
            return v.decode() if isinstance(v, bytes) else str(v)
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return None


def _cuda_version() -> Optional[str]:
    torch = sys.modules.get("torch")  # only if the workload already imported it
    if torch is None:
        return None
    return getattr(torch.version, "cuda", None)


def provenance(hardware_profile_id: Optional[str] = None, hardware: Optional[dict] = None) -> Provenance:
    """This process's provenance; the hardware profile id is filled in by hardware detection."""
    return Provenance(
        eitp_bench_version=__version__,
        git_commit=git_commit(),
        python=platform.python_version(),
        torch=_version("torch"),
        transformers=_version("transformers"),
        cuda=_cuda_version(),
        driver=_nvidia_driver() if _cuda_version() else None,
        platform=platform.platform(),
        hardware_profile_id=hardware_profile_id,
        hardware=dict(hardware or {}),
    )

"""What a suite needs that this machine lacks, found before any work starts.

`run` and `run --dry-run` share it. A missing GPU, model or data set stops `run` before the first
repetition (a dry run lists it under `missing` and exits 0); missing energy sensors do not stop a
run, but its energy claims will be NOT MEASURED, so the plan says so up front.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from eitp_bench.errors import UserError
from eitp_bench.suite import Suite


@dataclass
class Missing:
    what: str
    why: str
    fix: str
    blocking: bool = True  # False: the run goes on, with less (e.g. no energy sensors → estimates only)

    def as_dict(self) -> dict:
        return asdict(self)


def check_objectives(suite: Suite) -> None:
    """Loss coefficients per arm are known keys (a typo would otherwise fail inside every worker)."""
    from eitp_bench.workloads.arms import COMPRESSION_ARMS
    from eitp_bench.workloads.objectives import make_objective

    for arm, coefficients in suite.objectives.items():
        if arm in COMPRESSION_ARMS:
            raise UserError(
                f"suite {suite.name}: objectives.{arm}: {arm} has no loss of its own; it trains as {COMPRESSION_ARMS[arm]}",
                fix=f"set objectives.{COMPRESSION_ARMS[arm]} instead",
            )
        try:
            make_objective(arm, coefficients)
        except UserError as err:
            raise UserError(f"suite {suite.name}: objectives.{arm}: {err.message}", fix=err.fix) from None


def missing_requirements(suite: Suite, *, probe_sensors: bool = True) -> list[Missing]:
    """Everything the suite needs that this machine lacks; empty when it can run here as planned."""
    missing: list[Missing] = []
    if suite.device == "cuda" and not _cuda_available():
        missing.append(Missing(
            "CUDA GPU", "the suite asks for device cuda, but torch sees no CUDA GPU here",
            "run it on a GPU machine with a CUDA build of torch, or --set device=cpu",
        ))
    if suite.train.precision == "fp16" and suite.device == "cpu":
        missing.append(Missing(
            "fp16 training on CPU", "train.precision fp16 needs a GPU (CPU autocast is bf16)",
            "--set train.precision=bf16 or fp32 on CPU",
        ))
    missing += [Missing(m["what"], m["why"], m["fix"]) for m in _missing_assets(suite)]
    if probe_sensors:
        sensor = _missing_sensors(suite)
        if sensor is not None:
            missing.append(sensor)
    return missing


def stop_if_blocked(suite: Suite, missing: list[Missing]) -> None:
    """One UserError naming everything that stops the suite here (nothing has run yet)."""
    blocking = [m for m in missing if m.blocking]
    if not blocking:
        return
    what = "; ".join(f"{m.what}: {m.why}" for m in blocking)
    fixes = "; ".join(dict.fromkeys(m.fix for m in blocking))
    raise UserError(f"suite {suite.name!r} cannot run here ({what}); nothing was run", fix=fixes)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _missing_assets(suite: Suite) -> list[dict]:
    from eitp_bench.workloads.assets import missing_assets

    return missing_assets(suite)


def _missing_sensors(suite: Suite) -> Optional[Missing]:
    """A non-blocking entry when no sensor can measure joules here (RAPL for CPU, NVML for a GPU suite)."""
    from eitp_bench.energy.nvml import NvmlMeter
    from eitp_bench.energy.rapl import RaplMeter

    statuses = RaplMeter.probe() + NvmlMeter.probe()
    if any(s.available for s in statuses):
        return None
    reasons = "; ".join(dict.fromkeys(f"{s.meter}: {s.reason}" for s in statuses if s.reason))
    fixes = "; ".join(dict.fromkeys(s.fix for s in statuses if s.fix)) or "see eitp-bench doctor"
    return Missing(
        "energy sensors", f"no RAPL or NVML sensor can read here ({reasons}); energy claims will be NOT MEASURED",
        fixes, blocking=False,
    )

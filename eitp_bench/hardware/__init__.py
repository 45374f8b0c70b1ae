"""This machine's hardware: detection (detect.py) and published per-model profiles (profiles.py).

One job: say what this machine is and what state it is in (cpu_state.py, state.py, isolation.py).
May import: the suite and the shared vocabulary only; everything that runs or judges may import it.
"""

from __future__ import annotations

from eitp_bench.hardware.detect import CpuInfo, GpuInfo, Machine, detect


def describe(machine: Machine | None = None) -> dict:
    """What the runner puts in a record's provenance: the stable profile id, its alias, matched
    profiles and the detected details (driver, power limits, hostname go here, not in the id)."""
    from eitp_bench.hardware.profiles import match_machine, profile_alias, profile_id

    machine = machine or detect()
    matched = match_machine(machine)
    return {
        "profile_id": profile_id(machine, matched),
        "alias": profile_alias(machine),
        "gpu_profiles": [p.name if p else None for p in matched["gpus"]],
        "cpu_profile": matched["cpu"].name if matched["cpu"] else None,
        "machine": machine.to_dict(),
    }


__all__ = ["CpuInfo", "GpuInfo", "Machine", "describe", "detect"]

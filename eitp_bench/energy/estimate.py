"""A CPU energy *estimate* for machines where no sensor reads: CPU time × TDP ÷ logical cores.

    joules = CPU seconds (user + sys, this process + its children) × TDP / logical cores

Used only when neither RAPL nor NVML can read. Its joules have method "estimated", are never added
to measured ones, and every window says so. Caveats, stated in every window's flags:
- a child's CPU time counts only once the child has been waited for (getrusage RUSAGE_CHILDREN);
- it assumes every busy logical core draws an equal share of TDP and an idle one draws nothing.

Default TDP: 4 W per logical core, CodeCarbon 3.3.2's fallback for an unknown CPU
(`DEFAULT_POWER_PER_CORE = 4`, codecarbon/core/cpu.py). A hardware profile should supply the real TDP.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from eitp_bench.energy.base import Channel, Meter, MeterStatus
from eitp_bench.flags import Flag, flag
from eitp_bench.records import EnergyEntry

DEFAULT_WATTS_PER_LOGICAL_CORE = 4.0  # CodeCarbon 3.3.2's fallback for an unknown CPU
ESTIMATE_FLAG = flag("estimated", "estimated from CPU time × TDP/cores, not measured")
CHILDREN_FLAG = flag("children_cpu_time", "children's CPU time counts only once they have been waited for")


def process_cpu_seconds() -> float:
    """User + system CPU seconds of this process and its waited-for children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


@dataclass(frozen=True)
class EstimateMark:
    t: float
    cpu_s: float


class CpuTimeEstimateMeter(Meter):
    """Estimated CPU package energy from CPU time; method "estimated", device cpu:0."""

    name = "estimate"

    def __init__(
        self,
        tdp_w: Optional[float] = None,
        logical_cores: Optional[int] = None,
        cpu_seconds: Callable[[], float] = process_cpu_seconds,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`tdp_w` (watts) from a hardware profile; None uses 4 W per logical core and flags it."""
        self.logical_cores = logical_cores or os.cpu_count() or 1
        self.tdp_is_default = tdp_w is None
        self.tdp_watts = (
            DEFAULT_WATTS_PER_LOGICAL_CORE * self.logical_cores if tdp_w is None else float(tdp_w)
        )
        if self.tdp_watts <= 0:
            raise ValueError(f"tdp_w must be positive, got {tdp_w}")
        self._cpu_seconds = cpu_seconds
        self._clock = clock
        self._lock = threading.Lock()

    @property
    def watts_per_core(self) -> float:
        return self.tdp_watts / self.logical_cores

    def channels(self) -> list[Channel]:
        return [Channel(self.name, "cpu:0", "package")]

    def mark(self) -> EstimateMark:
        with self._lock:
            return EstimateMark(self._clock(), self._cpu_seconds())

    def flags(self) -> list[Flag]:
        out = [ESTIMATE_FLAG, CHILDREN_FLAG]
        if self.tdp_is_default:
            out.append(flag(
                "tdp_default", f"TDP default: no hardware profile ({DEFAULT_WATTS_PER_LOGICAL_CORE:g} W per logical "
                f"core × {self.logical_cores} = {self.tdp_watts:g} W, CodeCarbon's fallback)"
            ))
        return out

    def energy_between(self, begin: EstimateMark, end: EstimateMark) -> list[EnergyEntry]:
        cpu_s = end.cpu_s - begin.cpu_s
        flags = self.flags()
        joules: Optional[float] = cpu_s * self.watts_per_core
        if cpu_s < 0:  # getrusage never decreases; guard anyway: never negative energy
            joules = None
            flags.append(flag("reset", f"CPU time went backwards ({cpu_s:.6f} s)"))
        return [EnergyEntry(meter=self.name, device="cpu:0", domain="package", joules=joules, method="estimated",
                            duration_s=end.t - begin.t, flags=flags)]

    def info(self) -> dict[str, Any]:
        return {
            "tdp_watts": self.tdp_watts,
            "tdp_source": "default (no hardware profile)" if self.tdp_is_default else "given",
            "logical_cores": self.logical_cores,
            "watts_per_core": self.watts_per_core,
        }

    @classmethod
    def probe(cls, **_: Any) -> list[MeterStatus]:
        return [
            MeterStatus(
                "estimate",
                True,
                "cpu:0",
                "package",
                reason="always available, but an estimate (CPU time × TDP/cores), not a measurement",
                fix="enable RAPL or NVML for measured joules (see the other lines)",
                details={"method": "estimated"},
            )
        ]

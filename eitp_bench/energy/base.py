"""What every meter shares: channels, point-in-time marks, per-domain results.

A meter exposes *channels* (device × domain). The monitor asks it for a `mark()`
at each window edge and later for `energy_between(begin, end)`, one `records.EnergyEntry` per
channel (the record's own type: there is no second energy type to convert from). Because a mark is
an immutable snapshot of the meter's running state, windows can nest and overlap
freely: a window is just a pair of marks.

Counters that wrap (RAPL) are unwrapped by the meter's own poller thread, so a
mark always carries a monotonic, corrected cumulative energy.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from eitp_bench.records import EnergyEntry

# Domains whose joules may be added into a device or machine total.
# core/uncore are inside package; psys contains package (and more): never add them.
ADDITIVE_DOMAINS = ("gpu", "package", "dram")


@dataclass(frozen=True)
class Channel:
    meter: str  # rapl, nvml, estimate
    device: str  # cpu:0, gpu:0
    domain: str  # package, core, uncore, dram, psys, gpu


@dataclass(frozen=True)
class PowerSample:
    t: float  # time.monotonic() seconds
    device: str
    domain: str
    watts: float


@dataclass
class Sensor:
    """One raw reading source for qualification (energy/qualify.py): `read()` gives cumulative joules
    ("energy") or watts ("power"), straight from the hardware, bypassing a meter's running state."""

    meter: str  # rapl, nvml
    device: str  # cpu:0, gpu:0
    domain: str  # package, dram, gpu …
    quantity: str  # "energy" (a counter, J) or "power" (W)
    source: str  # energy_uj, total_energy, power_usage, power_instant …
    read: Callable[[], float]
    windows: bool = True  # the source energy windows rest on (a counter; power only as a fallback)
    max_watts: Optional[float] = None  # a counter step above this × its time is a fault (qualification refuses it)


@dataclass
class MeterStatus:
    """One line of `eitp-bench doctor`: can this meter read, and if not, why and how to fix it."""

    meter: str
    available: bool
    device: Optional[str] = None
    domain: Optional[str] = None
    reason: str = ""
    fix: Optional[str] = None
    details: dict[str, Any] = field(default_factory=dict)


class Meter(abc.ABC):
    """A source of joules. Thread-safe: marks may be taken from any thread."""

    name: str = "meter"

    @abc.abstractmethod
    def channels(self) -> list[Channel]:
        """The device × domain channels this meter reports."""

    def start(self) -> None:
        """Start background pollers/samplers; the first read happens here, before any window opens."""

    def stop(self) -> None:
        """Stop background threads. Idempotent."""

    @abc.abstractmethod
    def mark(self) -> Any:
        """An immutable snapshot of the meter's cumulative state, taken now."""

    @abc.abstractmethod
    def energy_between(self, begin: Any, end: Any) -> list[EnergyEntry]:
        """Per-channel energy between two marks (one entry per channel, invalid ones flagged; window unset)."""

    def power_samples(self, t0: float, t1: float) -> list[PowerSample]:
        """Power timeline points with t0 <= t <= t1 (time.monotonic()); empty if the meter has none."""
        return []

    def info(self) -> dict[str, Any]:
        """Static facts about the hardware behind this meter (names, limits, clocks)."""
        return {}

    @classmethod
    def probe(cls, **kwargs: Any) -> list[MeterStatus]:
        """Diagnose without starting: what is available here, and for what is not, the reason and fix."""
        return []

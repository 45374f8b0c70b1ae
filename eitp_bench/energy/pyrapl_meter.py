"""Optional cross-check: the same RAPL counters read through pyRAPL (`pip install 'eitp-bench[pyrapl]'`).

Never the default meter. pyRAPL (0.2.3.1, unmaintained since 2019) has no wraparound
handling and hard-codes /sys/class/powercap/intel-rapl/intel-rapl:N (no injectable
root, no die zones). So a window across a wrap is reported invalid here, not repaired:
use `RaplMeter` for real numbers and this only to compare.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from eitp_bench.energy.base import Channel, Meter, MeterStatus
from eitp_bench.flags import flag
from eitp_bench.records import EnergyEntry
from eitp_bench.errors import UserError

INSTALL_FIX = "pip install 'eitp-bench[pyrapl]'"


@dataclass(frozen=True)
class PyRaplMark:
    t: float
    values: tuple[float, ...]  # raw µJ as pyRAPL returns them: (pkg s0, dram s0, pkg s1, dram s1 …), -1 = absent


class PyRaplMeter(Meter):
    name = "pyrapl"

    def __init__(self) -> None:
        try:
            from pyRAPL import Device
            from pyRAPL.sensor import Sensor
        except ImportError as err:
            raise UserError("pyRAPL is not installed", fix=INSTALL_FIX) from err
        try:
            self._sensor = Sensor([Device.PKG, Device.DRAM])
        except Exception:  # pyRAPL raises when DRAM is missing: try the package alone
            try:
                self._sensor = Sensor([Device.PKG])
            except Exception as err:
                raise UserError(f"pyRAPL cannot read RAPL here: {type(err).__name__}: {err}",
                                fix="see `eitp-bench doctor` for the rapl meter") from err
        self._lock = threading.Lock()
        first = self._sensor.energy()
        self._channels = []
        for i, value in enumerate(first):
            if value >= 0:
                self._channels.append((i, Channel(self.name, f"cpu:{i // 2}", ("package", "dram")[i % 2])))

    def channels(self) -> list[Channel]:
        return [c for _, c in self._channels]

    def mark(self) -> PyRaplMark:
        with self._lock:
            return PyRaplMark(time.monotonic(), tuple(self._sensor.energy()))

    def energy_between(self, begin: PyRaplMark, end: PyRaplMark) -> list[EnergyEntry]:
        out = []
        for i, ch in self._channels:
            delta = end.values[i] - begin.values[i]
            bad = delta < 0  # a wrap: pyRAPL cannot correct it
            out.append(EnergyEntry(
                meter=self.name, device=ch.device, domain=ch.domain,
                joules=None if bad else delta / 1e6, method="counter", duration_s=end.t - begin.t, samples=2,
                flags=[flag("wrap_unrepairable", "counter wrapped inside the window (pyRAPL has no wraparound "
                            "handling)")] if bad else [],
            ))
        return out

    @classmethod
    def probe(cls, **_: Any) -> list[MeterStatus]:
        try:
            import pyRAPL  # noqa: F401
        except ImportError:
            return [MeterStatus(cls.name, False, reason="pyRAPL is not installed (optional cross-check)",
                                fix=INSTALL_FIX)]
        try:
            meter = cls()
        except UserError as err:
            return [MeterStatus(cls.name, False, reason=err.message, fix=err.fix)]
        except Exception as err:  # PermissionError and friends surface uncaught from pyRAPL
            return [MeterStatus(cls.name, False, reason=f"pyRAPL failed: {type(err).__name__}: {err}",
                                fix="run as root or see `eitp-bench doctor` for the rapl meter")]
        return [MeterStatus(cls.name, True, c.device, c.domain, reason="cross-check only; no wrap handling")
                for c in meter.channels()]


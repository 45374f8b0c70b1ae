"""The CPU's frequency settings, read from sysfs once per run (docs/hardware-state.md).

Governor, frequency range, turbo/boost and SMT change how much energy the same work takes; they are
recorded in provenance (`hardware.state.cpu`) so two runs that differ in them can be told apart.
`root` is injectable (tests build a fake /sys). Every field is None where the kernel does not expose it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

SYS = Path("/sys/devices/system/cpu")


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def cpu_state(root: Union[str, Path, None] = None) -> dict[str, Any]:
    """{governors, min_mhz, max_mhz, hw_min_mhz, hw_max_mhz, boost, boost_source, driver, smt}."""
    base = Path(root) if root is not None else SYS
    policies = sorted(base.glob("cpufreq/policy*")) or sorted(base.glob("cpu[0-9]*/cpufreq"))
    governors = sorted({g for g in (_read(p / "scaling_governor") for p in policies) if g})

    def mhz(name: str, pick) -> Optional[float]:
        values = [v for v in (_int(_read(p / name)) for p in policies) if v is not None]
        return pick(values) / 1000.0 if values else None  # kHz → MHz

    no_turbo = _int(_read(base / "intel_pstate" / "no_turbo"))
    boost = _int(_read(base / "cpufreq" / "boost"))
    if no_turbo is not None:
        boost_on, source = not no_turbo, "intel_pstate/no_turbo"
    elif boost is not None:
        boost_on, source = bool(boost), "cpufreq/boost"
    else:
        boost_on, source = None, None
    return {
        "driver": _read(policies[0] / "scaling_driver") if policies else None,
        "governors": governors or None,
        "min_mhz": mhz("scaling_min_freq", min),
        "max_mhz": mhz("scaling_max_freq", max),
        "hw_min_mhz": mhz("cpuinfo_min_freq", min),
        "hw_max_mhz": mhz("cpuinfo_max_freq", max),
        "boost": boost_on,
        "boost_source": source,
        "smt": _read(base / "smt" / "control"),
    }

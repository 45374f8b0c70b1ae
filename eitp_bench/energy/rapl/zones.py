"""The powercap tree's RAPL zones: where the tree is (`resolve_root`, EITP_BENCH_POWERCAP_ROOT), which
zones it holds and what each one measures (`discover`: package, core, uncore, dram, psys, die zones; MMIO
duplicates dropped), each zone's stated maximum power, and the one clear message when the tree cannot
be read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from eitp_bench.energy.base import MeterStatus
from eitp_bench.flags import Flag, flag


DEFAULT_ROOT = "/sys/class/powercap"
ROOT_ENV = "EITP_BENCH_POWERCAP_ROOT"
# Stated maximum power per zone kind (W), used to pick the poll period and to reject jumps.
# Generous on purpose: the largest server sockets draw ~400 W, DRAM a few tens of W.
DEFAULT_PMAX_W = {"package": 1000.0, "core": 1000.0, "uncore": 500.0, "dram": 500.0, "psys": 2000.0}
FALLBACK_PMAX_W = 2000.0


# A zone's constraint files (constraint_N_max_power_uw, constraint_N_power_limit_uw) state its power
# limits; the counter may exceed the long-term limit in turbo (PL2/PL4 reach 1.25-2.5 × TDP) for
# short times, so Pmax = this factor × the largest stated value. No files: DEFAULT_PMAX_W.
STATED_PMAX_FACTOR = 3.0


ZONE_DIR = re.compile(r"^intel-rapl(-mmio)?:\d+(:\d+)*$")
PACKAGE_NAME = re.compile(r"^package-(\d+)$")
DIE_NAME = re.compile(r"^package-(\d+)-die-(\d+)$")


PERMISSION_FIX = (
    "run as root, or `sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj "
    "/sys/class/powercap/intel-rapl:*/*/energy_uj` (until reboot), or make it permanent with a udev rule in "
    "/etc/udev/rules.d/99-rapl.rules: "
    'ACTION=="add", SUBSYSTEM=="powercap", KERNEL=="intel-rapl:*", RUN+="/bin/chmod o+r /sys%p/energy_uj"'
)


Reader = Callable[[Path], str]


def read_sysfs(path: Path) -> str:
    """Read one sysfs file afresh (a new open each time: sysfs values are produced on open/read)."""
    with open(path, "r") as f:
        return f.read()


def resolve_root(root: Optional[os.PathLike | str] = None) -> Path:
    return Path(root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)


@dataclass(frozen=True)
class Zone:
    zone_id: str  # intel-rapl:0:1
    path: Path  # the real folder
    name: str  # package-0, core, dram …
    kind: str  # package, core, uncore, dram, psys or the raw name
    device: str  # cpu:0, platform
    domain: str  # package, dram, package-die-1, core-die-1 …
    die: Optional[int] = None
    max_range_uj: Optional[int] = None
    pmax_w: float = FALLBACK_PMAX_W
    unavailable: Optional[str] = None  # why energy_uj could not be read at start
    pmax_source: str = "default"  # default, given (pmax_w=), or constraint files


@dataclass
class Discovery:
    zones: list[Zone] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # human-readable: what was skipped and why


def _zone_dirs(root: Path) -> list[tuple[str, Path]]:
    """(zone id, real folder) for every zone, flat links and nested children alike, each once."""
    found: dict[str, tuple[str, Path]] = {}

    def visit(entry: Path) -> None:
        if not ZONE_DIR.match(entry.name) or not entry.is_dir():
            return
        real = entry.resolve()
        if str(real) in found:
            return
        found[str(real)] = (entry.name, real)
        for child in sorted(real.iterdir()):
            if child.name.startswith(entry.name + ":"):
                visit(child)

    for entry in sorted(root.iterdir()):
        visit(entry)
        # The control-type folders (intel-rapl, intel-rapl-mmio) hold the zones too.
        if entry.name in ("intel-rapl", "intel-rapl-mmio") and entry.is_dir():
            for sub in sorted(entry.iterdir()):
                visit(sub)
    return sorted(found.values(), key=lambda item: _zone_sort_key(item[0]))


def _zone_sort_key(zone_id: str) -> tuple:
    control, *nums = zone_id.split(":")
    return (control != "intel-rapl", [int(n) for n in nums])


def _read_int(reader: Reader, path: Path) -> int:
    return int(reader(path).strip())


def discover(root: Path, reader: Reader = read_sysfs, pmax_w: Optional[dict[str, float]] = None) -> Discovery:
    """Classify every zone under root. Never raises for a bad zone: it lands in `dropped` or `unavailable`."""
    given = dict(pmax_w or {})
    out = Discovery()
    raw: list[tuple[str, Path, str]] = []
    for zone_id, real in _zone_dirs(root):
        try:
            name = reader(real / "name").strip()
        except (OSError, ValueError) as err:
            out.dropped.append(f"{zone_id}: name unreadable ({_describe(err)})")
            continue
        raw.append((zone_id, real, name))

    msr_names = {name for zid, _, name in raw if not zid.startswith("intel-rapl-mmio")}
    names_by_id = {zid: name for zid, _, name in raw}
    dropped_ids: set[str] = set()
    for zone_id, real, name in raw:
        top = ":".join(zone_id.split(":")[:2])
        if zone_id.startswith("intel-rapl-mmio") and names_by_id.get(top) in msr_names:
            dropped_ids.add(zone_id)
            if zone_id == top:
                out.dropped.append(f"{zone_id}: MMIO duplicate of the MSR zone named {name!r}")

    for zone_id, real, name in raw:
        if zone_id in dropped_ids:
            continue
        parent_id = ":".join(zone_id.split(":")[:2])
        parent_name = names_by_id.get(parent_id, "") if parent_id != zone_id else name
        kind, device, domain, die = _classify(zone_id, name, parent_name)
        try:
            max_range: Optional[int] = _read_int(reader, real / "max_energy_range_uj")
        except (OSError, ValueError):
            max_range = None  # still usable until the first wrap, which then cannot be corrected
        unavailable = None
        try:
            _read_int(reader, real / "energy_uj")
        except (OSError, ValueError) as err:
            unavailable = f"energy_uj unreadable ({_describe(err)})"
        if kind in given:
            pmax, source = given[kind], "given"
        elif (stated := _stated_max_w(reader, real)) is not None:
            pmax, source = STATED_PMAX_FACTOR * stated, "constraint files"
        else:
            pmax, source = DEFAULT_PMAX_W.get(kind, FALLBACK_PMAX_W), "default"
        out.zones.append(Zone(zone_id, real, name, kind, device, domain, die, max_range,
                              pmax, unavailable, source))
    return out


CONSTRAINT_FILE = re.compile(r"^constraint_\d+_(max_power|power_limit)_uw$")


def _stated_max_w(reader: Reader, folder: Path) -> Optional[float]:
    """The largest power (W) the zone's constraint files state, or None when it has none readable."""
    values = []
    try:
        names = sorted(p.name for p in folder.iterdir() if CONSTRAINT_FILE.match(p.name))
    except OSError:
        return None
    for fname in names:
        try:
            values.append(_read_int(reader, folder / fname))
        except (OSError, ValueError):
            continue
    values = [v for v in values if v > 0]
    return max(values) / 1e6 if values else None


def _classify(zone_id: str, name: str, parent_name: str) -> tuple[str, str, str, Optional[int]]:
    """(kind, device, domain, die) of a zone from its name and its top-level zone's name."""
    index = int(zone_id.split(":")[1])
    if name == "psys":
        return "psys", "platform", "psys", None
    if m := PACKAGE_NAME.match(name):
        return "package", f"cpu:{m.group(1)}", "package", None
    if m := DIE_NAME.match(name):
        die = int(m.group(2))
        return "package", f"cpu:{m.group(1)}", f"package-die-{die}", die
    # A child: its socket comes from its package's name.
    if m := PACKAGE_NAME.match(parent_name):
        return name, f"cpu:{m.group(1)}", name, None
    if m := DIE_NAME.match(parent_name):
        die = int(m.group(2))
        return name, f"cpu:{m.group(1)}", f"{name}-die-{die}", die
    return name, f"cpu:{index}", name, None


def _unavailable_flag(unavailable: str) -> Flag:
    code = "permission_denied" if "PermissionError" in unavailable else "unreadable"  # as _describe wrote it
    return flag(code, f"unavailable: {unavailable}")


def _describe(err: BaseException) -> str:
    if isinstance(err, PermissionError):
        return "PermissionError: root-only since CVE-2020-8694"
    return f"{type(err).__name__}: {err}"


def _root_problem(path: Path) -> MeterStatus:
    return MeterStatus(
        "rapl", False,
        reason=f"no powercap sysfs at {path} (typical inside containers, which hide /sys/class/powercap)",
        fix="run on the host, or mount it read-only into the container "
            "(docker run -v /sys/class/powercap:/sys/class/powercap:ro …)",
    )


def _no_zones(path: Path) -> MeterStatus:
    return MeterStatus(
        "rapl", False,
        reason=f"{path} exists but has no intel-rapl zones",
        fix="load the RAPL driver (`sudo modprobe intel_rapl_msr intel_rapl_common`; `rapl` on older kernels); "
            "AMD CPUs need Linux >= 5.11 for RAPL in powercap",
    )

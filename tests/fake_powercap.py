"""Fake powercap sysfs trees in the kernel's layout, for tests and benchmarks.

The kernel keeps zones under /sys/devices/virtual/powercap/<control-type>/, nests
children inside their package (intel-rapl:0/intel-rapl:0:0), and lists every zone
flat in /sys/class/powercap as symlinks. We copy that:

    base/devices/virtual/powercap/intel-rapl/intel-rapl:0/{name,energy_uj,max_energy_range_uj}
    base/devices/virtual/powercap/intel-rapl/intel-rapl:0/intel-rapl:0:0/...
    base/class/powercap/intel-rapl      -> the control-type folder (what pyRAPL walks)
    base/class/powercap/intel-rapl:0    -> its zone folder
    base/class/powercap/intel-rapl:0:0  -> the nested child

Point `EITP_BENCH_POWERCAP_ROOT` (or `RaplMeter(root=...)`) at `FakePowercap.root`.
The fake keeps its own exact accounting (integer µJ added, unwrapped) so a test
knows the true energy whatever the counter did.

    fake = FakePowercap(tmp_path)
    fake.add_package(0, max_range_uj=20_000_000)           # package-0 + core, uncore, dram
    with fake.simulate({"intel-rapl:0": 57.3, "intel-rapl:0:2": 7.1}) as sim:
        ...
        with sim.paused():                                    # counters frozen: read the truth
            truth = fake.total_uj("intel-rapl:0")
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

INTEL_RANGE_UJ = 262_143_328_850  # 2^32 units of 2^-14 J: the usual Intel max_energy_range_uj
AMD_RANGE_UJ = 65_532_610_987  # 2^32 units of 15.3 µJ


class FakePowercap:
    """Builds and drives a fake powercap tree under `base`."""

    def __init__(self, base: Path, in_place: bool = False):
        self.base = Path(base)
        self.root = self.base / "class" / "powercap"
        self.devices = self.base / "devices" / "virtual" / "powercap"
        self.root.mkdir(parents=True, exist_ok=True)
        # in_place: overwrite energy_uj through the same inode (for tools that keep the file
        # open and seek, like pyRAPL); otherwise write a temp file and rename it over (atomic).
        self.in_place = in_place
        self._zones: dict[str, Path] = {}  # zone id -> real folder
        self._range: dict[str, int] = {}
        self._total: dict[str, int] = {}  # µJ ever added, unwrapped: the truth
        self._raw: dict[str, int] = {}
        self._mirrors: dict[str, list[str]] = {}  # zone -> zones that show its counter (AMD dies, MMIO)
        self._mirror_of: dict[str, str] = {}
        self.lock = threading.RLock()  # held while a counter changes; `Simulator.paused` holds it

    # --- building -----------------------------------------------------------------------
    def add_zone(self, zone_id: str, name: str, max_range_uj: Optional[int] = INTEL_RANGE_UJ,
                 parent: Optional[str] = None, energy_uj: int = 0, mirror_of: Optional[str] = None,
                 max_power_uw: Optional[int] = None) -> str:
        """One zone folder with name, energy_uj and (unless None) max_energy_range_uj, plus its flat link.

        mirror_of: this zone shows another zone's counter (written together with it): an AMD die zone
        that reads the socket-wide register, or an MMIO view of an MSR zone. max_power_uw: write the
        constraint files (long_term limit and max power) the kernel exposes for a zone."""
        control = zone_id.split(":")[0]  # intel-rapl or intel-rapl-mmio
        control_dir = self.devices / control
        if not control_dir.exists():
            control_dir.mkdir(parents=True)
            (control_dir / "enabled").write_text("1\n")
            _symlink(self.root / control, control_dir)
        folder = (self._zones[parent] if parent else control_dir) / zone_id
        folder.mkdir(parents=True)
        (folder / "name").write_text(name + "\n")
        if max_range_uj is not None:
            (folder / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        if max_power_uw is not None:
            (folder / "constraint_0_name").write_text("long_term\n")
            (folder / "constraint_0_power_limit_uw").write_text(f"{max_power_uw * 4 // 5}\n")
            (folder / "constraint_0_max_power_uw").write_text(f"{max_power_uw}\n")
        _symlink(self.root / zone_id, folder)
        self._zones[zone_id] = folder
        self._range[zone_id] = max_range_uj if max_range_uj is not None else INTEL_RANGE_UJ
        if mirror_of is not None:
            self._mirrors.setdefault(mirror_of, []).append(zone_id)
            self._mirror_of[zone_id] = mirror_of
            self._range[zone_id] = self._range[mirror_of]
            self._write(zone_id, self._raw[mirror_of])
        else:
            self.set_energy(zone_id, energy_uj)
        return zone_id

    def add_package(self, index: int, name: Optional[str] = None, max_range_uj: Optional[int] = INTEL_RANGE_UJ,
                    children: tuple[str, ...] = ("core", "uncore", "dram"), energy_uj: int = 0,
                    child_range_uj: Optional[int] = None) -> str:
        """Zone intel-rapl:<index> named `name` (default package-<index>) with nested children :0, :1 …"""
        zone_id = self.add_zone(f"intel-rapl:{index}", name or f"package-{index}", max_range_uj, energy_uj=energy_uj)
        for k, child in enumerate(children):
            rng = child_range_uj if child_range_uj is not None else max_range_uj
            self.add_zone(f"{zone_id}:{k}", child, rng, parent=zone_id)
        return zone_id

    def add_mmio_duplicate(self, index: int = 0, name: str = "package-0",
                           max_range_uj: Optional[int] = INTEL_RANGE_UJ, mirror_of: Optional[str] = None) -> str:
        """intel-rapl-mmio:<index>: the same package seen through the MMIO interface."""
        return self.add_zone(f"intel-rapl-mmio:{index}", name, max_range_uj, mirror_of=mirror_of)

    def add_psys(self, index: int = 1, max_range_uj: Optional[int] = INTEL_RANGE_UJ) -> str:
        return self.add_zone(f"intel-rapl:{index}", "psys", max_range_uj)

    def path(self, zone_id: str, file: str = "") -> Path:
        """The zone's folder (or a file in it) through its flat link, as a reader sees it."""
        return self.root / zone_id / file if file else self.root / zone_id

    def remove_file(self, zone_id: str, file: str) -> None:
        (self._zones[zone_id] / file).unlink()

    # --- driving the counters -----------------------------------------------------------
    def set_energy(self, zone_id: str, uj: int) -> None:
        """Write the raw counter (a reset or a scripted value); the truth restarts from it."""
        zone_id = self._mirror_of.get(zone_id, zone_id)
        with self.lock:
            self._total[zone_id] = int(uj)
            self._write(zone_id, int(uj))

    def advance(self, zone_id: str, joules: float) -> int:
        """Add energy (rounded to whole µJ), wrapping the counter at the range; returns the raw counter."""
        return self.advance_uj(zone_id, round(joules * 1e6))

    def advance_uj(self, zone_id: str, uj: int) -> int:
        zone_id = self._mirror_of.get(zone_id, zone_id)
        with self.lock:
            self._total[zone_id] += uj
            raw = (self._raw[zone_id] + uj) % self._range[zone_id]
            self._write(zone_id, raw)
            return raw

    def total_uj(self, zone_id: str) -> int:
        """Every µJ added to this zone since its last set_energy (unwrapped): the true energy."""
        zone_id = self._mirror_of.get(zone_id, zone_id)
        with self.lock:
            return self._total[zone_id]

    def raw_uj(self, zone_id: str) -> int:
        with self.lock:
            return self._raw[zone_id]

    def simulate(self, watts: dict[str, float], period_s: float = 0.001) -> "Simulator":
        """A background thread adding constant watts to each zone every ~period_s (use as a context manager)."""
        return Simulator(self, watts, period_s)

    def freeze(self, zone_id: str, frozen: bool = True) -> None:
        """A stuck counter: energy still counts in the truth, but energy_uj stops changing."""
        with self.lock:
            self._frozen = getattr(self, "_frozen", set())
            (self._frozen.add if frozen else self._frozen.discard)(zone_id)

    def _write(self, zone_id: str, raw: int) -> None:
        for mirror in self._mirrors.get(zone_id, ()):
            self._write(mirror, raw)
        if zone_id in getattr(self, "_frozen", ()):
            return
        self._raw[zone_id] = raw
        target = self._zones[zone_id] / "energy_uj"
        if self.in_place:
            # Fixed width (padded after the newline) so a shorter number overwrites a longer one.
            width = len(str(self._range[zone_id])) + 1
            data = f"{raw}\n".ljust(width).encode()
            fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, data, 0)
            finally:
                os.close(fd)
        else:
            tmp = target.with_name(".energy_uj.tmp")
            tmp.write_text(f"{raw}\n")
            os.replace(tmp, target)


class Simulator:
    """Adds `watts × elapsed` to zones every ~period_s, with exact integer-µJ accounting (no drift)."""

    def __init__(self, fake: FakePowercap, watts: dict[str, float], period_s: float = 0.001,
                 catch_up_factor: float = 3.0):
        unknown = set(watts) - set(fake._zones)
        if unknown:
            raise ValueError(f"no such fake zone(s): {sorted(unknown)}; have {sorted(fake._zones)}")
        self.fake, self.watts, self.period_s = fake, dict(watts), period_s
        # A thread starved by a busy machine must not dump seconds of energy in one write: a real
        # counter moves ~1 ms of energy per update, and no meter can unwrap a jump of a whole range.
        # So a late simulator writes at most 1/20 of the range at once and catches up at no more
        # than `catch_up_factor` × the nominal watts (give the meter a Pmax above that).
        self.catch_up_factor = catch_up_factor
        self.ticks = 0
        self.lag_uj: dict[str, int] = {z: 0 for z in watts}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._added: dict[str, int] = {z: 0 for z in watts}

    def start(self) -> "Simulator":
        self._t0 = self._last = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fake-powercap", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Freeze every counter (the simulator waits); energy due meanwhile is added on resume."""
        with self.fake.lock:
            yield

    def tick(self) -> float:
        """Bring every zone towards `watts × (now − t0)` µJ (see catch_up_factor); returns `now`."""
        with self.fake.lock:
            now = time.monotonic()
            elapsed, since_last = now - self._t0, now - self._last
            for zone, w in self.watts.items():
                due = round(w * elapsed * 1e6) - self._added[zone]
                step = min(due, round(self.catch_up_factor * w * since_last * 1e6),
                           self.fake._range[zone] // 20)
                if step > 0:
                    self._added[zone] += step
                    self.fake.advance_uj(zone, step)
                self.lag_uj[zone] = due - max(step, 0)
            self._last = now
            self.ticks += 1
            return now

    @property
    def caught_up(self) -> bool:
        """True when the last tick brought every zone fully up to watts × elapsed."""
        return all(lag <= 0 for lag in self.lag_uj.values())

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.tick()


# --- CPU layouts -------------------------------------------------------------------------
# Each builder makes one machine's tree and returns (watts per driven zone, expected channels): the
# channel (device, domain) -> the driven zones whose true energy it must report (summed).

LAYOUTS = ("intel-1s", "intel-2s-psys-mmio", "amd-mirrored-dies", "cascade-lake-ap", "intel-hybrid-client")


def build_layout(fake: "FakePowercap", layout: str, max_range_uj: Optional[int] = INTEL_RANGE_UJ
                 ) -> tuple[dict[str, float], dict[tuple[str, str], list[str]]]:
    if layout == "intel-1s":
        fake.add_package(0, max_range_uj=max_range_uj, energy_uj=123_456)
        watts = {"intel-rapl:0": 57.3, "intel-rapl:0:0": 31.9, "intel-rapl:0:1": 4.4, "intel-rapl:0:2": 7.1}
        expect = {("cpu:0", "package"): ["intel-rapl:0"], ("cpu:0", "core"): ["intel-rapl:0:0"],
                  ("cpu:0", "uncore"): ["intel-rapl:0:1"], ("cpu:0", "dram"): ["intel-rapl:0:2"]}
    elif layout == "intel-2s-psys-mmio":
        fake.add_package(0, max_range_uj=max_range_uj, children=("core", "dram"), energy_uj=1_000)
        fake.add_package(1, max_range_uj=max_range_uj, children=("core", "dram"), energy_uj=9_999_999)
        fake.add_psys(2, max_range_uj=max_range_uj)
        fake.add_mmio_duplicate(0, "package-0", max_range_uj, mirror_of="intel-rapl:0")
        watts = {"intel-rapl:0": 61.0, "intel-rapl:0:0": 40.0, "intel-rapl:0:1": 9.0,
                 "intel-rapl:1": 48.5, "intel-rapl:1:0": 30.0, "intel-rapl:1:1": 8.25, "intel-rapl:2": 140.0}
        expect = {("cpu:0", "package"): ["intel-rapl:0"], ("cpu:0", "dram"): ["intel-rapl:0:1"],
                  ("cpu:1", "package"): ["intel-rapl:1"], ("cpu:1", "dram"): ["intel-rapl:1:1"],
                  ("platform", "psys"): ["intel-rapl:2"]}
    elif layout == "amd-mirrored-dies":
        # Threadripper 1950X-like: two die zones, one socket counter (AMD's 15.3 µJ unit range).
        rng = max_range_uj if max_range_uj != INTEL_RANGE_UJ else AMD_RANGE_UJ
        fake.add_zone("intel-rapl:0", "package-0-die-0", rng, energy_uj=7_777_777)
        fake.add_zone("intel-rapl:1", "package-0-die-1", rng, mirror_of="intel-rapl:0")
        watts = {"intel-rapl:0": 131.0}
        expect = {("cpu:0", "package"): ["intel-rapl:0"], ("cpu:0", "package-die-0"): ["intel-rapl:0"],
                  ("cpu:0", "package-die-1"): ["intel-rapl:0"]}
    elif layout == "cascade-lake-ap":
        # Two real dies per package, each with its own counter and its own DRAM child.
        fake.add_package(0, name="package-0-die-0", max_range_uj=max_range_uj, children=("dram",),
                         energy_uj=3_141_592_653)
        fake.add_package(1, name="package-0-die-1", max_range_uj=max_range_uj, children=("dram",),
                         energy_uj=2_718_281_828)
        watts = {"intel-rapl:0": 150.0, "intel-rapl:0:0": 12.5, "intel-rapl:1": 149.0, "intel-rapl:1:0": 11.0}
        expect = {("cpu:0", "package"): ["intel-rapl:0", "intel-rapl:1"],
                  ("cpu:0", "dram"): ["intel-rapl:0:0", "intel-rapl:1:0"],
                  ("cpu:0", "package-die-0"): ["intel-rapl:0"], ("cpu:0", "dram-die-1"): ["intel-rapl:1:0"]}
    elif layout == "intel-hybrid-client":
        # Alder Lake-like laptop: package (core, uncore = iGPU), psys, and the package again via MMIO.
        fake.add_package(0, max_range_uj=max_range_uj, children=("core", "uncore"), energy_uj=42)
        fake.add_psys(1, max_range_uj=max_range_uj)
        fake.add_mmio_duplicate(0, "package-0", max_range_uj, mirror_of="intel-rapl:0")
        watts = {"intel-rapl:0": 28.0, "intel-rapl:0:0": 19.0, "intel-rapl:0:1": 2.5, "intel-rapl:1": 45.0}
        expect = {("cpu:0", "package"): ["intel-rapl:0"], ("cpu:0", "core"): ["intel-rapl:0:0"],
                  ("cpu:0", "uncore"): ["intel-rapl:0:1"], ("platform", "psys"): ["intel-rapl:1"]}
    else:
        raise ValueError(f"unknown layout {layout!r}; have {LAYOUTS}")
    return watts, expect


class FailingReader:
    """A file reader for `RaplMeter(reader=...)` that raises chosen errors for chosen files.

    CI runs as root, so chmod cannot make a file unreadable; this can. `fail("intel-rapl:0:2/energy_uj",
    PermissionError(13, "Permission denied"))` makes every read of a path ending so raise; `heal()` undoes it.
    """

    def __init__(self, base_reader: Optional[Callable[[Path], str]] = None):
        self._fail: dict[str, BaseException] = {}
        self._base = base_reader or (lambda p: Path(p).read_text())
        self.lock = threading.Lock()

    def fail(self, path_suffix: str, error: BaseException) -> None:
        with self.lock:
            self._fail[path_suffix] = error

    def heal(self) -> None:
        with self.lock:
            self._fail.clear()

    def __call__(self, path: Path) -> str:
        text = str(path)
        with self.lock:
            for suffix, error in self._fail.items():
                if text.endswith(suffix):
                    raise error
        return self._base(path)


def _symlink(link: Path, target: Path) -> None:
    # Absolute (the kernel's are relative): the class folder can then be bind-mounted over
    # /sys/class/powercap and its links still lead into this tree.
    os.symlink(target.resolve(), link)

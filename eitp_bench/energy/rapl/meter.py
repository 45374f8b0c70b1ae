"""`RaplMeter`: CPU energy from RAPL counters, read straight from the powercap sysfs tree (zones.py finds them).

Layout (Linux): /sys/class/powercap lists every zone flat as a symlink (intel-rapl:0,
intel-rapl:0:0, intel-rapl-mmio:0 …); each package zone also holds its children as
sub-folders. A zone has `name`, `energy_uj` (a counter in µJ that wraps at
`max_energy_range_uj`) and updates about every millisecond.

What we report, one channel per zone, each zone counted once (by real path):
- `package-N`            -> cpu:N / package   (contains core and uncore: never add those to it)
- core, uncore, dram     -> cpu:N / core, uncore, dram (dram is NOT inside package: its own domain)
- `package-N-die-M` (AMD multi-die, also Cascade Lake-AP) -> cpu:N / package-die-M, their children
  -> cpu:N / dram-die-M, core-die-M …; and, when no plain zone of that kind exists on the socket, one
  cpu:N / package (dram, core …) channel per kind built from the die zones:
    * mirrored dies (AMD Threadripper/EPYC: every die zone reads the same socket-wide counter) are
      counted ONCE (flag `die_mirror`); summing them doubled the CPU energy in other tools;
    * distinct dies (Intel Cascade Lake-AP: two real dies per package, each with its own counter and
      its own DRAM child) are summed (flag `die_sum`), DRAM children into `dram`.
  Which one is decided from the counters themselves (see `_update_mirrors`).
- psys                   -> platform / psys (the whole SoC platform; contains package)
- an `intel-rapl-mmio` zone whose name matches an MSR zone is the same package twice: dropped.

Wraparound: a poller thread reads every zone every P seconds, P = range / (2 · Pmax) clamped to
[1 ms, 1 s], so at most one wrap can pass between reads; P is also at most JUMP_RESOLUTION_J / Pmax
(a forward jump of that size stands out against Pmax × P) and STALL_S / STALL_READS (a freeze of
STALL_S holds several reads). With the 1000 W default that is a read every 4 ms, so a jump of about
7 J or more is caught even when the poller is 20 % late. A backwards step is one wrap; a step
that even one wrap cannot explain (over Pmax, a reset, an unreadable range, a gap long enough
for a whole range) makes that zone invalid for the windows that hold the step (below); a read
error makes it invalid from then on, with the reason. Marks read every zone
synchronously under the same lock, so window edges are exact.

Faults are flagged, never passed off:
- a step above the zone's maximum power × elapsed time (wrap or no wrap) is `implausible_jump`, a step
  that cannot be unwrapped is `wrap_unrepairable`: the zone is invalid for every window that contains
  that step (joules None) and counts on from the new value afterwards;
- a counter that did not move for STALL_S while the meter read it is `stalled`: over the whole window
  joules are None, over part of it joules are kept and the flag gives the span. Frozen spans are
  recorded as they end (from the first to the last read showing the value), so the check does not
  depend on which reads a window's history still holds.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from eitp_bench.energy.base import Channel, Meter, MeterStatus, PowerSample
from eitp_bench.energy.rapl.unwrap import JUMP_GRACE_S, JUMP_RESOLUTION_J, UPDATE_PERIOD_S, unwrap_step
from eitp_bench.energy.rapl.zones import (
    PERMISSION_FIX, Reader, Zone, _describe, _no_zones, _read_int, _root_problem, _unavailable_flag, discover,
    read_sysfs, resolve_root,
)
from eitp_bench.errors import UserError
from eitp_bench.flags import Flag, flag
from eitp_bench.records import EnergyEntry


POLL_FLOOR_S = 0.001  # the counters update about every 1 ms: polling faster reads the same value
POLL_CAP_S = 1.0


# A counter that shows the same value for longer than this is stalled. RAPL updates every ~1 ms, and
# one counter unit is 61 µJ (Intel) or 15.3 µJ (AMD), so a zone that draws even 0.2 mW moves within
# 0.3 s; 0.5 s (500 update periods) leaves room for a poller descheduled on a busy machine while
# still catching VMs that expose frozen energy_uj files and counters that stop mid-run.
STALL_S = 0.5


STALL_READS = 5  # the poll period is at most STALL_S / STALL_READS: a freeze of STALL_S spans several reads


# Die zones are mirrors of one counter when they show the same raw value (modulo the range) at the
# same read, within MIRROR_TOL_S × Pmax of energy (the files are read one after the other: an update
# or a descheduled thread can land between them). See `_update_mirrors`.
MIRROR_TOL_S = 0.002


MAX_FAULTS = 1000  # faults (jumps, unrepairable wraps) remembered per zone
DEFAULT_HISTORY = 50_000  # reads kept for gaps and power timelines (ring buffer)


@dataclass
class _ZoneState:
    raw: Optional[int] = None  # last raw counter; None before the first read
    total_uj: int = 0  # corrected, monotonic
    wraps: int = 0
    invalid: Optional[Flag] = None  # why this zone cannot be trusted from now on (unreadable)
    since_t: Optional[float] = None  # time of the first read that showed the current raw value
    last_t: Optional[float] = None  # time of the last read
    stalls: deque = field(default_factory=lambda: deque(maxlen=MAX_FAULTS))  # (from t, to t): frozen spans
    faults: deque = field(default_factory=lambda: deque(maxlen=MAX_FAULTS))  # (seq, Flag): bad steps


@dataclass(frozen=True)
class RaplMark:
    """An immutable snapshot: per zone the corrected cumulative µJ (None once invalid) and wrap count."""

    meter_id: int
    seq: int
    t: float
    totals: tuple[Optional[int], ...]
    wraps: tuple[int, ...]
    invalid: tuple[Optional[Flag], ...]
    since: tuple[Optional[float], ...] = ()  # per zone: since when its counter shows this value
    mirrored: tuple[bool, ...] = ()  # per die group: still consistent with one mirrored counter
    raws: tuple[Optional[int], ...] = ()


@dataclass(frozen=True)
class _Read:
    seq: int
    t: float
    by_poller: bool
    totals: tuple[Optional[int], ...]


@dataclass(frozen=True)
class _ChannelSpec:
    channel: Channel
    zones: tuple[int, ...]  # indices into the meter's zones (several for a die group)
    note: Optional[Flag] = None
    group: Optional[int] = None  # index into the meter's die groups: mirrored or summed per window


class RaplMeter(Meter):
    """RAPL package/core/uncore/dram/psys energy from powercap, wrap-corrected by a poller thread."""

    name = "rapl"

    def __init__(self, root: Optional[os.PathLike | str] = None, *, reader: Reader = read_sysfs,
                 pmax_w: Optional[dict[str, float]] = None, poll_interval: Optional[float] = None,
                 history: int = DEFAULT_HISTORY, clock: Callable[[], float] = time.monotonic,
                 background: bool = True, jump_grace_s: float = JUMP_GRACE_S):
        """reader: reads one file (inject failures in tests); pmax_w: per-kind maximum watts;
        poll_interval: poll faster than the safe period (never slower); background=False: no
        thread, call `poll()` yourself (deterministic tests); jump_grace_s: slack on dt when judging
        a jump (raise it for simulated counters that update in bursts)."""
        self.root = resolve_root(root)
        self._reader = reader
        self._clock = clock
        self._grace_s = jump_grace_s
        self._background = background
        if not self.root.is_dir():
            status = _root_problem(self.root)
            raise UserError(status.reason, fix=status.fix)
        try:
            found = discover(self.root, reader, pmax_w)
        except OSError as err:
            raise UserError(f"cannot list {self.root}: {_describe(err)}", fix=PERMISSION_FIX) from err
        self.zones = found.zones
        self.dropped = found.dropped
        if not self.zones:
            status = _no_zones(self.root)
            raise UserError(status.reason, fix=status.fix)
        if all(z.unavailable for z in self.zones):
            raise UserError(f"no RAPL zone under {self.root} is readable: {self.zones[0].unavailable}",
                            fix=PERMISSION_FIX)
        self.poll_interval = self._poll_period(poll_interval)
        self._groups: list[tuple[int, ...]] = []
        self._specs = self._channel_specs()
        self._mirror = [True] * len(self._groups)  # no read has shown the group's dies apart yet
        self._apart = [0] * len(self._groups)  # consecutive reads that showed them apart
        self._state = [_ZoneState(invalid=_unavailable_flag(z.unavailable) if z.unavailable else None)
                       for z in self.zones]
        self._lock = threading.Lock()
        self._seq = -1
        self._last_t: Optional[float] = None
        self._history: deque[_Read] = deque(maxlen=history)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- set-up -----------------------------------------------------------------------
    def _poll_period(self, requested: Optional[float]) -> float:
        readable = [z for z in self.zones if not z.unavailable]
        safe = [z.max_range_uj / 1e6 / (2 * z.pmax_w) for z in readable if z.max_range_uj]
        # a jump of JUMP_RESOLUTION_J must stand out against Pmax × dt; a freeze must span several reads
        safe += [JUMP_RESOLUTION_J / z.pmax_w for z in readable] + [STALL_S / STALL_READS]
        period = min(safe, default=POLL_CAP_S)
        if requested is not None:
            period = min(period, requested)
        return max(POLL_FLOOR_S, min(POLL_CAP_S, period))

    def _channel_specs(self) -> list[_ChannelSpec]:
        specs, seen = [], set()
        for i, z in enumerate(self.zones):
            # Two zones with one device/domain should not happen; if it does, keep both apart.
            domain = z.domain if (z.device, z.domain) not in seen else f"{z.domain}@{z.zone_id}"
            seen.add((z.device, domain))
            specs.append(_ChannelSpec(Channel(self.name, z.device, domain), (i,)))
        # Die zones of one socket and kind (package, dram, core …) form a group; when the socket has
        # no plain zone of that kind, the group gives the socket's channel of that kind.
        plain = {(z.device, z.domain) for z in self.zones if z.die is None}
        dies: dict[tuple[str, str], list[int]] = {}
        for i, z in enumerate(self.zones):
            if z.die is not None and (z.device, z.kind) not in plain:
                dies.setdefault((z.device, z.kind), []).append(i)
        for (device, kind), idx in sorted(dies.items()):
            self._groups.append(tuple(idx))
            specs.append(_ChannelSpec(Channel(self.name, device, kind), tuple(idx), group=len(self._groups) - 1))
        return specs

    def _group_names(self, group: int) -> str:
        return ", ".join(f"{self.zones[i].zone_id} ({self.zones[i].name})" for i in self._groups[group])

    def _update_mirrors(self) -> None:
        """Mirrored or distinct die counters, decided from the counters themselves.

        Mirror zones read one register, so at every read they show the same raw value (modulo the
        range), give or take an update landing between the reads of the files (tolerance: Pmax ×
        MIRROR_TOL_S). Distinct die counters started at different values at boot and count different
        energy: their raw values do not coincide, even under a balanced load where their deltas
        could. A group is taken as distinct once two consecutive reads show its dies apart (one read
        apart can be a descheduled poller), and stays distinct. Each window also checks its own die
        deltas (`energy_between`), so dies that only started apart in this meter's reads (a fake tree
        starting at 0, say) are summed as soon as their deltas differ.
        """
        for g, idx in enumerate(self._groups):
            if not self._mirror[g]:
                continue
            raws = [(self._state[i].raw, self.zones[i]) for i in idx
                    if self._state[i].raw is not None and not self._state[i].invalid]
            if len(raws) < 2:
                continue
            ref, ref_zone = raws[0]
            tol = max(z.pmax_w for _, z in raws) * MIRROR_TOL_S * 1e6
            apart = False
            for raw, z in raws[1:]:
                d = abs(raw - ref)
                if z.max_range_uj and z.max_range_uj == ref_zone.max_range_uj:
                    d = min(d, z.max_range_uj - d)
                apart = apart or d > tol
            self._apart[g] = self._apart[g] + 1 if apart else 0
            if self._apart[g] >= 2:
                self._mirror[g] = False

    def channels(self) -> list[Channel]:
        return [s.channel for s in self._specs]

    def info(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "poll_interval_s": self.poll_interval,
            "zones": [{"zone": z.zone_id, "name": z.name, "device": z.device, "domain": z.domain,
                       "max_energy_range_uj": z.max_range_uj, "pmax_w": z.pmax_w, "pmax_source": z.pmax_source,
                       "unavailable": z.unavailable} for z in self.zones],
            "die_groups": [{"zones": [self.zones[i].zone_id for i in idx], "mirrored": self._mirror[g]}
                           for g, idx in enumerate(self._groups)],
            "stall_threshold_s": STALL_S,
            "dropped": list(self.dropped),
        }

    # --- polling ----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self.poll()  # the baseline read: before any window opens
        if self._background:
            import weakref

            self._stop = threading.Event()  # a fresh one per thread: a finalizer may hold the old one
            # The thread holds only a weak reference: a meter (or its monitor) dropped without stop()
            # is still collected, and the finalizer then ends the thread.
            self._thread = threading.Thread(target=_poll_loop, args=(weakref.ref(self), self._stop, self.poll_interval),
                                            name="rapl-poller", daemon=True)
            weakref.finalize(self, self._stop.set)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "RaplMeter":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


    def poll(self) -> None:
        """One poller read of every zone (what the thread does each period)."""
        with self._lock:
            self._read_all(by_poller=True)

    def _read_all(self, by_poller: bool) -> _Read:
        raws: list[Optional[int] | BaseException] = []
        t0 = self._clock()
        for z, st in zip(self.zones, self._state):
            if st.invalid:
                raws.append(None)
                continue
            try:
                raws.append(_read_int(self._reader, z.path / "energy_uj"))
            except (OSError, ValueError) as err:
                raws.append(err)
        t = (t0 + self._clock()) / 2
        dt = t - self._last_t if self._last_t is not None else 0.0
        seq = self._seq + 1
        for z, st, raw in zip(self.zones, self._state, raws):
            if raw is None:
                continue
            if isinstance(raw, BaseException):
                code = "permission_denied" if isinstance(raw, PermissionError) else "unreadable"
                st.invalid = flag(code, f"energy_uj read failed at t={t:.3f}: {_describe(raw)}")
                continue
            if st.raw is not None:
                delta, wraps, reason = unwrap_step(st.raw, raw, dt, z.max_range_uj, z.pmax_w, self._grace_s)
                if reason:
                    # Invalid for every window holding this step; later steps count from the new value.
                    st.faults.append((seq, flag(reason.code, f"{reason.message} (at t={t:.3f})")))
                    delta, wraps = 0, 0
                st.total_uj += delta
                st.wraps += wraps
            if raw != st.raw:
                if st.raw is not None and st.since_t is not None and st.last_t - st.since_t > STALL_S:
                    st.stalls.append((st.since_t, st.last_t))  # a frozen span has just ended
                st.since_t = t
            st.raw = raw
            st.last_t = t
        self._seq = seq
        self._last_t = t
        self._update_mirrors()
        read = _Read(self._seq, t, by_poller, tuple(None if s.invalid else s.total_uj for s in self._state))
        self._history.append(read)
        return read

    # --- windows ----------------------------------------------------------------------
    def mark(self) -> RaplMark:
        """A fresh synchronous read of every zone (exact window edge), as an immutable snapshot."""
        with self._lock:
            read = self._read_all(by_poller=False)
            return RaplMark(id(self), read.seq, read.t, read.totals,
                            tuple(s.wraps for s in self._state), tuple(s.invalid for s in self._state),
                            since=tuple(s.since_t for s in self._state), mirrored=tuple(self._mirror),
                            raws=tuple(None if s.invalid else s.raw for s in self._state))

    def energy_between(self, begin: RaplMark, end: RaplMark) -> list[EnergyEntry]:
        if begin.meter_id != id(self) or end.meter_id != id(self):
            raise ValueError("marks come from another meter")
        if end.seq < begin.seq:
            raise ValueError("end mark was taken before begin mark")
        duration = end.t - begin.t
        samples = end.seq - begin.seq + 1
        max_gap, gap_note = self._max_gap(begin, end)
        common: list[Flag] = []
        if duration < UPDATE_PERIOD_S:
            common.append(flag("short_window", "window shorter than the counter update period (~1 ms): 0 or 1 "
                               "counter steps"))
        elif duration < 10 * UPDATE_PERIOD_S:
            common.append(flag("few_updates", "window under 10 counter updates (~1 ms each): quantisation error up "
                               "to ~1 ms of energy"))
        if gap_note:
            common.append(gap_note)
        zone_res = self._zone_results(begin, end)
        mirrored = {g: self._window_mirrored(g, begin, end, zone_res) for g in range(len(self._groups))}
        die_group = {i: g for g, idx in enumerate(self._groups) for i in idx}
        out = []
        for spec in self._specs:
            flags = list(common)
            if spec.note:
                flags.append(spec.note)
            if spec.group is not None:
                joules, zone_flags = self._group_joules(spec, mirrored[spec.group], zone_res)
            else:
                (i,) = spec.zones
                delta, zone_flags = zone_res[i]
                joules = None if delta is None else delta / 1e6
                g = die_group.get(i)
                if g is not None and mirrored[g]:
                    zone_flags = [flag("die_mirror", f"this die zone mirrors the socket counter read by the other "
                                       f"die zones ({self._group_names(g)}): never add it to them")] + zone_flags
            flags.extend(zone_flags)
            wraps = sum(end.wraps[i] - begin.wraps[i] for i in spec.zones)
            if spec.group is not None and mirrored[spec.group]:
                wraps = max(end.wraps[i] - begin.wraps[i] for i in spec.zones)
            out.append(EnergyEntry(meter=self.name, device=spec.channel.device, domain=spec.channel.domain,
                                   joules=joules, method="counter", duration_s=duration, samples=samples,
                                   max_gap_s=max_gap, wraps=wraps, flags=flags))
        return out

    def _zone_results(self, begin: RaplMark, end: RaplMark) -> list[tuple[Optional[int], list[Flag]]]:
        """Per zone: (µJ over the window, or None when invalid; its flags)."""
        with self._lock:
            faults = [[f for seq, f in st.faults if begin.seq < seq <= end.seq] for st in self._state]
            stalls = [list(st.stalls) for st in self._state]
        out: list[tuple[Optional[int], list[Flag]]] = []
        for i, z in enumerate(self.zones):
            reasons = [f for f in (end.invalid[i], begin.invalid[i]) if f][:1] + faults[i]
            if reasons or begin.totals[i] is None or end.totals[i] is None:
                out.append((None, reasons))
                continue
            delta = end.totals[i] - begin.totals[i]
            since = end.since[i] if end.since else None
            if since is not None and since <= begin.t and end.t - since > STALL_S and end.t > begin.t:
                out.append((None, [flag("stalled", f"{z.zone_id} ({z.name}) counter did not move from t={since:.3f} "
                                        f"to t={end.t:.3f} ({end.t - since:.3f} s; RAPL updates every ~1 ms, "
                                        f"threshold {STALL_S:g} s): over the whole window, so no joules")]))
                continue
            out.append((delta, self._stall_spans(z, begin, end, stalls[i], since)))
        return out

    @staticmethod
    def _stall_spans(z: Zone, begin: RaplMark, end: RaplMark, stalls: list[tuple[float, float]],
                     since: Optional[float]) -> list[Flag]:
        """A `stalled` flag for the longest frozen span of zone z that overlaps the window (ended ones
        as recorded, one still going at the end mark from `since`), cut at the window's end."""
        spans = [(a, min(b, end.t)) for a, b in stalls if b > begin.t and a < end.t]
        if since is not None and end.t - since > STALL_S:
            spans.append((since, end.t))
        if not spans:
            return []
        a, b = max(spans, key=lambda span: span[1] - span[0])
        return [flag("stalled", f"{z.zone_id} ({z.name}) counter did not move from t={a:.3f} to t={b:.3f} "
                     f"({b - a:.3f} s; RAPL updates every ~1 ms, threshold {STALL_S:g} s): joules kept, but "
                     "energy drawn in that span may be missing")]

    def _window_mirrored(self, g: int, begin: RaplMark, end: RaplMark,
                         zone_res: list[tuple[Optional[int], list[Flag]]]) -> bool:
        """The group's dies were never apart at a read (see `_update_mirrors`) and moved alike here: their
        deltas over the window agree within the read tolerance at both edges."""
        if end.mirrored and not end.mirrored[g]:
            return False
        idx = self._groups[g]
        # Counter deltas whatever the zones' validity: a stalled die next to a moving one is not a mirror.
        deltas = [end.totals[i] - begin.totals[i] for i in idx
                  if end.totals[i] is not None and begin.totals[i] is not None]
        if len(deltas) < 2:
            return bool(end.mirrored and end.mirrored[g])
        tol = max(self.zones[i].pmax_w for i in idx) * MIRROR_TOL_S * 1e6
        return max(deltas) - min(deltas) <= 2 * tol  # an update between the file reads at either edge

    def _group_joules(self, spec: _ChannelSpec, mirrored: bool,
                      zone_res: list[tuple[Optional[int], list[Flag]]]) -> tuple[Optional[float], list[Flag]]:
        names = self._group_names(spec.group)
        if mirrored:
            note = flag("die_mirror", f"die zones {names} advance identically: one socket-wide counter seen "
                        "through each die, counted once")
            for i in spec.zones:
                if zone_res[i][0] is not None:
                    return zone_res[i][0] / 1e6, [note] + zone_res[i][1]
            return None, [note] + [f for i in spec.zones for f in zone_res[i][1]]
        note = flag("die_sum", f"sum of die zones {names}: distinct counters, one per die")
        flags = [note] + [f for i in spec.zones for f in zone_res[i][1]]
        if any(zone_res[i][0] is None for i in spec.zones):
            return None, flags
        return sum(zone_res[i][0] for i in spec.zones) / 1e6, flags

    def _max_gap(self, begin: RaplMark, end: RaplMark) -> tuple[Optional[float], Optional[Flag]]:
        with self._lock:
            times = [r.t for r in self._history if begin.seq <= r.seq <= end.seq]
            oldest = self._history[0].seq if self._history else None
        if len(times) < 2:
            return (end.t - begin.t if begin.seq != end.seq else None), None
        gap = max(b - a for a, b in zip(times, times[1:]))
        if oldest is not None and oldest > begin.seq:
            # Older reads fell out of the ring buffer: this is the largest gap among those kept.
            return gap, flag("history_truncated", f"max_gap_s covers only the last {len(times)} reads (history buffer)")
        return gap, None

    def power_samples(self, t0: float, t1: float) -> list[PowerSample]:
        """ΔE/Δt between consecutive poller reads ending in [t0, t1], per channel."""
        with self._lock:
            reads = [r for r in self._history if r.by_poller]
            mirrored = list(self._mirror)
        out = []
        for a, b in zip(reads, reads[1:]):
            if not (t0 <= b.t <= t1) or b.t - a.t <= 0:
                continue
            for spec in self._specs:
                zones = spec.zones
                if spec.group is not None and mirrored[spec.group]:
                    zones = zones[:1]  # one socket counter seen through each die: once
                vals = [(a.totals[i], b.totals[i]) for i in zones]
                if any(x is None or y is None for x, y in vals):
                    continue
                watts = sum(y - x for x, y in vals) / 1e6 / (b.t - a.t)
                out.append(PowerSample(b.t, spec.channel.device, spec.channel.domain, watts))
        return out

    # --- doctor -----------------------------------------------------------------------
    @classmethod
    def probe(cls, root: Optional[os.PathLike | str] = None, reader: Reader = read_sysfs,
              **_: Any) -> list[MeterStatus]:
        path = resolve_root(root)
        if not path.is_dir():
            return [_root_problem(path)]
        try:
            found = discover(path, reader)
        except OSError as err:
            return [MeterStatus(cls.name, False, reason=f"cannot list {path}: {_describe(err)}",
                                fix="run as root or mount /sys/class/powercap into the container")]
        if not found.zones:
            return [_no_zones(path)]
        statuses = []
        for z in found.zones:
            details = {"zone": z.zone_id, "name": z.name, "max_energy_range_uj": z.max_range_uj}
            if z.unavailable:
                perm = "PermissionError" in z.unavailable
                statuses.append(MeterStatus(cls.name, False, z.device, z.domain,
                                            reason=f"{z.zone_id} ({z.name}): {z.unavailable}",
                                            fix=PERMISSION_FIX if perm else "check the powercap driver (dmesg)",
                                            details=details))
            else:
                reason = "" if z.max_range_uj else "max_energy_range_uj unreadable: a wrap will invalidate it"
                statuses.append(MeterStatus(cls.name, True, z.device, z.domain, reason=reason, details=details))
        return statuses


def _poll_loop(meter_ref, stop: threading.Event, interval: float) -> None:
    """The poller thread: reads every `interval` until stopped or until its meter is gone."""
    while not stop.wait(interval):
        meter = meter_ref()
        if meter is None:
            return
        meter.poll()
        del meter  # no strong reference while waiting

"""Energy of a multi-rank repetition: every sensor read by exactly one rank, every entry gathered, summed.

Who reads what (decided once per repetition, the same on every rank):
- a GPU is read through NVML by the lowest rank that runs on it (`gpu_owners`): two ranks sharing
  one GPU never both count it;
- the machine-wide CPU and DRAM meters (RAPL) are read by local rank 0 of each machine only;
- the CPU-time estimate (only where no sensor reads) is per process, so every rank keeps its own.

`RankMonitor` is an EnergyMonitor whose windows open and close after a barrier of every rank (and a
CUDA synchronise), tag each entry with its rank and host, and all-gather the entries, so every rank's
`WindowResult` holds every rank's entries and `measured_joules` is their sum: never an average.
The collectives are injected (`barrier`, `all_gather`), so this module needs no torch.distributed
and is tested with plain functions.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Hashable, Iterator, Optional, Sequence

from eitp_bench.energy.monitor import EnergyMonitor, _key, measured_entries
from eitp_bench.records import EnergyEntry

NODE_METERS = ("rapl", "pyrapl")  # machine-wide: one reader per host


def gpu_owners(identities: Sequence[Hashable]) -> list[bool]:
    """Per rank: does it read its GPU? `identities[r]` names rank r's physical GPU ((host, uuid));
    the lowest rank on each GPU reads it, the others leave it to that rank. None: no GPU to read."""
    seen: set = set()
    out = []
    for ident in identities:
        out.append(ident is not None and ident not in seen)
        if ident is not None:
            seen.add(ident)
    return out


def node_meter_owners(hosts: Sequence[str], local_ranks: Sequence[int]) -> list[bool]:
    """Per rank: does it read its machine's CPU/DRAM meters? Local rank 0 of each host, exactly once."""
    out, seen = [], set()
    for host, local in zip(hosts, local_ranks):
        owns = local == 0 and host not in seen
        out.append(owns)
        if owns:
            seen.add(host)
    return out


def tag(entries: Sequence[EnergyEntry], rank: int, host: str) -> list[EnergyEntry]:
    """Copies of one rank's entries, marked with that rank and host."""
    return [e.model_copy(update={"rank": rank, "host": host, "flags": list(e.flags)}) for e in entries]


def combine(per_rank: Sequence[Sequence[EnergyEntry]]) -> list[EnergyEntry]:
    """Every rank's tagged entries, in rank order. Refuses a sensor counted twice: a machine-wide meter's
    channel read by two ranks of one host, or one rank's channel twice in one window."""
    out: list[EnergyEntry] = []
    seen: dict[tuple, int] = {}
    for entries in per_rank:
        for e in entries:
            if e.rank is None or e.host is None:
                raise ValueError(f"entry {e.meter} {e.device} {e.domain} has no rank and host: tag() it first")
            who = e.host if e.meter in NODE_METERS else (e.host, e.rank)
            key = (who, *_key(e))
            if key in seen:
                raise ValueError(f"sensor counted twice: {e.meter} {e.device} {e.domain} on {e.host} "
                                 f"(ranks {seen[key]} and {e.rank})")
            seen[key] = e.rank
            out.append(e)
    return out


def measured_total(entries: Sequence[EnergyEntry]) -> Optional[float]:
    """The measured joules of gathered entries: the plain sum over ranks and machines (as WindowResult
    does for one process), None when nothing was measured."""
    measured = measured_entries(entries)
    return float(sum(e.joules for e in measured)) if measured else None  # type: ignore[misc]


class RankMonitor(EnergyMonitor):
    """One rank's monitor: its own sensors, windows aligned across ranks, entries gathered from all.

    rank, host: this process's global rank and machine name.
    barrier(): every rank waits for the others (the caller synchronises CUDA first).
    all_gather(obj) -> list: every rank's obj, in rank order (torch.distributed.all_gather_object).
    Inside `local()` a window is this rank's alone (a task only rank 0 runs): no barrier, no gather.
    """

    def __init__(self, meters, *, rank: int, host: str, barrier: Callable[[], None],
                 all_gather: Callable[[Any], list], **kwargs: Any):
        self.rank = rank
        self.host = host
        self._barrier = barrier
        self._all_gather = all_gather
        self.collective = True
        super().__init__(meters, **kwargs)

    @contextmanager
    def local(self) -> Iterator["RankMonitor"]:
        """Windows opened here are measured by this rank alone (its GPU, its machine's CPU if it owns it)."""
        before, self.collective = self.collective, False
        try:
            yield self
        finally:
            self.collective = before

    def _edge(self) -> None:
        super()._edge()  # CUDA work queued so far belongs before this edge
        if self.collective:
            self._barrier()  # every rank crosses the edge together

    def _combine(self, energy: list[EnergyEntry]) -> list[EnergyEntry]:
        mine = tag(energy, self.rank, self.host)
        if not self.collective:
            return mine
        gathered = self._all_gather([e.model_dump(mode="json") for e in mine])
        return combine([[EnergyEntry.model_validate(d) for d in entries] for entries in gathered])

    def measure_idle(self, seconds: float):
        idle = super().measure_idle(seconds)
        # The idle window holds every rank's entries; this rank's baseline is its own sensors only.
        watts = {_key(e): e.watts for e in idle.result.energy if e.rank == self.rank and e.watts is not None}
        self.idle_watts = watts  # type: ignore[assignment]
        idle.watts = watts  # type: ignore[assignment]
        return idle

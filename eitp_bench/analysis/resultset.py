"""ResultSet: the stored runs with every analysis rule applied once.

- ok runs only for metrics (failed runs are counted, never averaged in);
- the comparability key is (suite_config_hash, hardware_profile_id): never the suite name, so two
  configurations stored under one name are judged apart, and machines are never mixed;
- energy figures use measured joules only (counter or sampled, valid); estimates stay visible as such;
- flags are lists of coded reasons (the store's `flags`/`flag_messages` columns), never split strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

from eitp_bench.analysis.frames import Frames, for_suite, load_frames
from eitp_bench.records import MEASURED_METHODS


@dataclass(frozen=True)
class ComparabilityKey:
    config_hash: str
    hardware_profile_id: str


@dataclass
class Group:
    """The runs of one configuration on one machine: what a verdict may be judged from."""

    key: ComparabilityKey
    suite: str  # the name it was stored under (display only)
    metrics: Any  # ok runs' metrics
    energy: Any  # ok runs' energy entries (every method; `measured` below for energy figures)
    config: Optional[dict]
    latest: str  # the newest run's start time

    @property
    def measured_energy(self):
        return measured_only(self.energy)


def measured_only(energy):
    """Valid counter/sampled entries: the only joules energy figures and claims use."""
    if energy is None or len(energy) == 0:
        return energy
    return energy[energy["method"].isin(MEASURED_METHODS) & energy["joules"].notna()]


class ResultSet:
    """Frames from a store (or frames) with the rules applied; `groups()` most recent first."""

    def __init__(self, frames: Frames):
        self.frames = frames
        self.metrics = _ok(_keyed(frames.metrics))
        self.energy = _ok(_keyed(frames.energy))

    @classmethod
    def load(cls, store_or_frames=None, *, suite: Optional[str] = None) -> "ResultSet":
        return cls(for_suite(load_frames(store_or_frames), suite))

    def groups(self) -> list[Group]:
        if self.metrics is None or len(self.metrics) == 0:
            return []
        keys = ["suite_config_hash", "hardware_profile_id"]
        latest = self.metrics.groupby(keys, sort=False)["started_at"].max().sort_values(ascending=False)
        by_key = dict(iter(self.metrics.groupby(keys, sort=False)))
        energy = dict(iter(self.energy.groupby(keys, sort=False))) if self.energy is not None and len(self.energy) else {}
        out = []
        for (config_hash, profile), started in latest.items():
            m = by_key[(config_hash, profile)]
            out.append(Group(ComparabilityKey(str(config_hash), str(profile)), str(m["suite"].iloc[0]), m,
                             energy.get((config_hash, profile), self.energy.iloc[0:0] if self.energy is not None else None),
                             (self.frames.configs or {}).get(config_hash), str(started)))
        return out

    def __iter__(self) -> Iterator[Group]:
        return iter(self.groups())


def _keyed(df):
    """A missing hardware profile is its own machine, 'unknown' (never pooled with a known one)."""
    if df is None or len(df) == 0 or "hardware_profile_id" not in df.columns:
        return df
    return df.assign(hardware_profile_id=df["hardware_profile_id"].fillna("unknown").astype(str))


def _ok(df):
    return df[df["status"] == "ok"] if df is not None and len(df) and "status" in df.columns else df

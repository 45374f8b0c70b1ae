"""ResultSet: the stored runs with every analysis rule applied once.

- ok runs only for metrics (failed runs are counted, never averaged in);
- the comparability key is (suite_config_hash, hardware_profile_id, energy_state): never the suite name,
  so two configurations stored under one name are judged apart, machines are never mixed, and runs whose
  boards ran at another power limit, clock lock, power profile or driver major are kept apart
  (analysis/hwstate.py; `energy_state_key` below);
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
    energy_state: str = ""  # hwstate.state_label of the runs' recorded hardware state ('' = none recorded)


@dataclass
class Group:
    """The runs of one configuration on one machine: what a verdict may be judged from."""

    key: ComparabilityKey
    suite: str  # the name it was stored under (display only)
    metrics: Any  # ok runs' metrics
    energy: Any  # ok runs' energy entries (every method; `measured` below for energy figures)
    config: Optional[dict]
    latest: str  # the newest run's start time
    not_pooled: Optional[str] = None  # NOT COMPARABLE note: the same configuration ran under another state

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
        self.metrics = energy_state_key(_ok(_keyed(frames.metrics)), frames.provenance)
        self.energy = energy_state_key(_ok(_keyed(frames.energy)), frames.provenance)

    @classmethod
    def load(cls, store_or_frames=None, *, suite: Optional[str] = None) -> "ResultSet":
        return cls(for_suite(load_frames(store_or_frames), suite))

    def groups(self) -> list[Group]:
        if self.metrics is None or len(self.metrics) == 0:
            return []
        keys = ["suite_config_hash", "hardware_profile_id", "energy_state"]
        latest = self.metrics.groupby(keys, sort=False)["started_at"].max().sort_values(ascending=False)
        by_key = dict(iter(self.metrics.groupby(keys, sort=False)))
        energy = dict(iter(self.energy.groupby(keys, sort=False))) if self.energy is not None and len(self.energy) else {}
        notes = _not_pooled_notes(list(latest.index), self.frames.provenance, by_key)
        out = []
        for key, started in latest.items():
            config_hash, profile, state = key
            m = by_key[key]
            out.append(Group(ComparabilityKey(str(config_hash), str(profile), str(state)), str(m["suite"].iloc[0]), m,
                             energy.get(key, self.energy.iloc[0:0] if self.energy is not None else None),
                             (self.frames.configs or {}).get(config_hash), str(started), notes.get(key)))
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


def energy_state_key(df, provenance):
    """The key's third component: each run's energy-moving hardware state (hwstate.with_state), and its
    board, as columns `energy_state` and `board`."""
    from eitp_bench.analysis.hwstate import with_state

    if df is None or len(df) == 0:
        return df if df is None or "energy_state" in df.columns else df.assign(energy_state="", board=None)
    return with_state(df, provenance)


def _not_pooled_notes(keys: list[tuple], provenance, by_key: dict) -> dict[tuple, str]:
    """For each (config, profile) that ran under several energy states: the NOT COMPARABLE note per group."""
    from eitp_bench.analysis.hwstate import not_comparable_note, run_states

    states = run_states(provenance)
    parsed: dict[str, dict] = {}
    for key in keys:
        run = str(by_key[key]["run_id"].iloc[0])
        parsed[key[2]] = states.get(run, ({}, None))[0]
    out = {}
    for key in keys:
        others = [k[2] for k in keys if k[:2] == key[:2] and k[2] != key[2]]
        note = not_comparable_note(key[2], others, parsed)
        if note:
            out[key] = note
    return out

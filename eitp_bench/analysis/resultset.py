"""ResultSet: the stored runs with every analysis rule applied once.

- ok runs only for metrics (failed runs are counted, never averaged in);
- the comparability key is (suite_config_hash, hardware_profile_id, energy_state): never the suite name,
  so two configurations stored under one name are judged apart, machines are never mixed, and runs whose
  boards ran at another power limit, clock lock, power profile or driver major are kept apart
  (analysis/hwstate.py; `rounds.energy_state_key`);
- energy figures use measured joules only (counter or sampled, valid); estimates stay visible as such;
- flags are lists of coded reasons (the store's `flags`/`flag_messages` columns), never split strings;
- the round is the unit of replication: records of one (configuration, hardware profile, arm, task, size,
  seed, repetition) stored by several batches (a re-import, a nightly job storing the same suite again)
  are one round (`Group.rounds`: the median of their values, their spread kept as `round_sd` and their
  number as `copies`). The judge counts rounds, never copies: a deterministic metric stored twice with
  the same seed is one observation, not two. `rounds.evidence()` says how many rounds and batches a verdict
  rests on (analysis/rounds.py holds the round's rules; analysis/stored_rounds.py reads rounds from a store).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from eitp_bench.analysis.frames import Frames, for_suite, load_frames
from eitp_bench.analysis.rounds import RunsBehind, combine_rounds, energy_state_key, keyed as _keyed, ok_rows as _ok
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
    metrics: Any  # ok runs' metrics (None when the store gave its rounds: analysis/stored_rounds.py)
    config: Optional[dict]
    latest: str  # the newest run's start time
    not_pooled: Optional[str] = None  # NOT COMPARABLE note: the same configuration ran under another state
    # the result set's ok energy entries and the positions of this group's (None: the whole frame)
    energy_rows: tuple = field(default=(None, None), repr=False, compare=False)

    @property
    def energy(self):
        """Ok runs' energy entries (every method; `measured_energy` for energy figures), taken from the result
        set's frame when asked, not held by each group: the five judged groups' copies of 45 000 entries were
        19 MiB held through every verdict at 1 000 000 records."""
        frame, rows = self.energy_rows
        return frame if frame is None or rows is None else frame.take(rows)

    @property
    def measured_energy(self):
        return measured_only(self.energy)

    @property
    def rounds(self):
        """The metrics with copies of a round (stored by several batches) combined: what the judge receives."""
        if self._rounds is None:
            self._rounds = combine_rounds(self.metrics)
        return self._rounds

    @property
    def runs_behind(self) -> "RunsBehind":
        """The stored runs behind the rounds: what the evidence, batch and isolation counts read."""
        if self._runs_behind is None:
            self._runs_behind = RunsBehind.of_metrics(self.metrics)
        return self._runs_behind

    _rounds: Any = field(default=None, repr=False, compare=False)
    _runs_behind: Any = field(default=None, repr=False, compare=False)


def measured_only(energy):
    """Valid counter/sampled entries: the only joules energy figures and claims use."""
    if energy is None or len(energy) == 0:
        return energy
    return energy[energy["method"].isin(MEASURED_METHODS) & energy["joules"].notna()]


def faulty_figures(rows, codes) -> tuple[set, set]:
    """(run_ids, codes found) of metric rows flagged with any of `codes` (e.g. a joules_to_target whose summed
    segments were too short to be steady): the figure is skipped like a faulty energy window."""
    if rows is None or len(rows) == 0 or "flags" not in rows.columns:
        return set(), set()
    found = rows["flags"].map(lambda c: set(c or ()) & set(codes))
    bad = found.map(bool)
    return set(rows.loc[bad, "run_id"]), set().union(*found[bad]) if bad.any() else set()


class ResultSet:
    """Frames from a store (or frames) with the rules applied; `groups()` most recent first."""

    def __init__(self, frames: Frames):
        self.frames = frames
        # frames that came with their rounds (read from a store: analysis/stored_rounds.py) are judged on them
        self.stored_rounds = getattr(frames, "rounds", None)
        self.metrics = (self.stored_rounds.frame if self.stored_rounds is not None
                        else energy_state_key(_ok(_keyed(frames.metrics)), frames.provenance))
        self.energy = energy_state_key(_ok(_keyed(frames.energy)), frames.provenance)
        self._page_rounds = None

    @property
    def page_rounds(self):
        """The rounds of every group read (ok runs' finite metrics, a round's copies combined): what the
        report's metric sections (theory, time, warnings) show, so that they count rounds as the judge does."""
        if self.stored_rounds is not None:
            return self.metrics
        if self._page_rounds is None:
            self._page_rounds = combine_rounds(self.metrics)
        return self._page_rounds

    @classmethod
    def load(cls, store_or_frames=None, *, suite: Optional[str] = None) -> "ResultSet":
        return cls(for_suite(load_frames(store_or_frames), suite))

    def groups(self) -> list[Group]:
        import numpy as np

        if self.metrics is None or len(self.metrics) == 0:
            return []
        keys = ["suite_config_hash", "hardware_profile_id", "energy_state"]
        by_key = dict(iter(self.metrics.groupby(keys, sort=False)))
        if self.stored_rounds is None:
            latest = self.metrics.groupby(keys, sort=False)["started_at"].max()
        else:  # a round's row is its first copy: the newest start is among the runs behind it
            import pandas as pd

            behind = self.stored_rounds.behind
            latest = pd.Series([behind[k].latest for k in by_key],
                               index=pd.MultiIndex.from_tuples(list(by_key), names=keys), name="started_at")
        latest = latest.sort_values(ascending=False)
        # each group's rows by position, taken when its verdicts ask (Group.energy)
        no_rows = np.array([], dtype=np.int64)
        energy = self.energy.groupby(keys, sort=False).indices if self.energy is not None and len(self.energy) else {}
        notes = _not_pooled_notes(list(latest.index), self.frames.provenance, by_key)
        out = []
        for key, started in latest.items():
            config_hash, profile, state = key
            m = by_key[key]
            group = Group(ComparabilityKey(str(config_hash), str(profile), str(state)), str(m["suite"].iloc[0]), m,
                          (self.frames.configs or {}).get(config_hash), str(started), notes.get(key),
                          energy_rows=(self.energy, energy.get(key, no_rows)))
            if self.stored_rounds is not None:
                group.metrics, group._rounds, group._runs_behind = None, m, self.stored_rounds.behind[key]
            out.append(group)
        return out

    def __iter__(self) -> Iterator[Group]:
        return iter(self.groups())


def _not_pooled_notes(keys: list[tuple], provenance, by_key: dict) -> dict[tuple, str]:
    """For each (config, profile) that ran under several energy states: the NOT COMPARABLE note per group."""
    from eitp_bench.analysis.hwstate import not_comparable_note, run_states

    firsts = {key: str(by_key[key]["run_id"].iloc[0]) for key in keys}  # a group's state is each of its runs'
    if provenance is not None and len(provenance):  # only those runs' states, not a dict of every run's
        provenance = provenance[provenance["run_id"].isin(set(firsts.values()))]
    states = run_states(provenance)
    parsed: dict[str, dict] = {}
    for key in keys:
        parsed[key[2]] = states.get(firsts[key], ({}, None))[0]
    out = {}
    for key in keys:
        others = [k[2] for k in keys if k[:2] == key[:2] and k[2] != key[2]]
        note = not_comparable_note(key[2], others, parsed)
        if note:
            out[key] = note
    return out

"""ResultSet: the stored runs with every analysis rule applied once.

- ok runs only for metrics (failed runs are counted, never averaged in);
- the comparability key is (suite_config_hash, hardware_profile_id, energy_state): never the suite name,
  so two configurations stored under one name are judged apart, machines are never mixed, and runs whose
  boards ran at another power limit, clock lock, power profile or driver major are kept apart
  (analysis/hwstate.py; `energy_state_key` below);
- energy figures use measured joules only (counter or sampled, valid); estimates stay visible as such;
- flags are lists of coded reasons (the store's `flags`/`flag_messages` columns), never split strings;
- the round is the unit of replication: records of one (configuration, hardware profile, arm, task, size,
  seed, repetition) stored by several batches (a re-import, a nightly job storing the same suite again)
  are one round (`Group.rounds`: the median of their values, their spread kept as `round_sd` and their
  number as `copies`). The judge counts rounds, never copies: a deterministic metric stored twice with
  the same seed is one observation, not two. `evidence()` says how many rounds and batches a verdict rests on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    metrics: Any  # ok runs' metrics (None when the store gave its rounds: analysis/stored_rounds.py)
    energy: Any  # ok runs' energy entries (every method; `measured` below for energy figures)
    config: Optional[dict]
    latest: str  # the newest run's start time
    not_pooled: Optional[str] = None  # NOT COMPARABLE note: the same configuration ran under another state

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


class RunsBehind:
    """The stored runs of one group that hold a finite metric, one row each in store order (the runs
    frame's columns), and which of them hold each metric name."""

    def __init__(self, runs, holders: dict):
        self.frame = runs
        self._holders = holders  # metric name → positions in `frame` (sorted)
        self._evidence: dict[bytes, tuple[int, int]] = {}
        self._clock_cache = None

    @classmethod
    def of_metrics(cls, metrics) -> "RunsBehind":
        import numpy as np

        runs = metrics.drop_duplicates("run_id").reset_index(drop=True)
        at = {run_id: i for i, run_id in enumerate(runs["run_id"])}
        holders = {str(name): np.unique(rows.map(at).to_numpy(dtype=np.int64))
                   for name, rows in metrics.groupby("name", sort=False)["run_id"]}
        return cls(runs, holders)

    def runs(self, *, name: Optional[str] = None, arms: Optional[list[str]] = None, task: Optional[str] = None):
        """The runs holding `name` (every run when None), of these arms and task when given."""
        return self.frame.iloc[self._positions(name, arms, task)]

    def _positions(self, name: Optional[str], arms: Optional[list[str]], task: Optional[str]):
        import numpy as np

        at = np.arange(len(self.frame)) if name is None else self._holders.get(name, np.array([], dtype=np.int64))
        keep = np.ones(len(at), dtype=bool)
        if arms is not None:
            keep &= self.frame["arm"].isin(arms).to_numpy()[at]
        if task is not None:
            keep &= (self.frame["task"] == task).to_numpy()[at]
        return at[keep]

    def evidence(self, name: Optional[str], arms: list[str], task: Optional[str]) -> tuple[int, int]:
        """(distinct rounds, batches) of the runs holding `name` of these arms and task. Claims on one
        task share their runs: each distinct set of runs is counted once."""
        from eitp_bench.analysis.stats import sequential_looks

        at = self._positions(name, arms, task)
        if len(at) == 0:
            return 0, 0
        if (key := at.tobytes()) not in self._evidence:
            slots, rounds, starts, ends = self._clock()
            looks = sequential_looks([slots[i] for i in at], starts[at], ends[at])
            self._evidence[key] = (len({rounds[i] for i in at}), looks.batches)
        return self._evidence[key]

    def looks(self):
        """The batches (stats.sequential_looks) all these runs came in."""
        from eitp_bench.analysis.stats import sequential_looks

        slots, _, starts, ends = self._clock()
        return sequential_looks(slots, starts, ends)

    def _clock(self):
        """Per run: its batch slot (arm, task, size, repetition), its round (size, seed, repetition) as text,
        and its start and end in seconds (the ISO times parsed once, not once per verdict)."""
        import numpy as np

        if self._clock_cache is None:
            from eitp_bench.analysis.stats.planning import seconds

            f = self.frame
            columns = {c: f[c].tolist() for c in ("arm", "task", "size", "seed", "repetition")}
            slots = list(zip(columns["arm"], columns["task"], columns["size"], columns["repetition"]))
            rounds = list(zip(*(map(str, columns[c]) for c in ("size", "seed", "repetition"))))
            starts = seconds(f["started_at"].tolist())
            ends = seconds(f["finished_at"].tolist()) if "finished_at" in f.columns else np.full(len(f), np.nan)
            self._clock_cache = (slots, rounds, starts, ends)
        return self._clock_cache


ROUND_KEYS = ["suite_config_hash", "hardware_profile_id", "arm", "task", "size", "seed", "repetition"]
_METRIC_KEYS = ["name", "window"]


def combine_rounds(metrics):
    """One row per round × metric: copies of a round stored by several batches become their median.

    The first stored copy gives the row's run_id (its energy entries stand for the round) and other columns;
    `copies` counts the copies and `round_sd` is their standard deviation (the within-round spread: machine
    noise on identical work, 0 for one copy). A flag on any copy stays on the round: a fault is never
    averaged away. Without copies the frame comes back with copies = 1 and round_sd = 0.
    """
    if metrics is None or len(metrics) == 0 or not set(ROUND_KEYS + _METRIC_KEYS) <= set(metrics.columns):
        return metrics
    keys = ROUND_KEYS + _METRIC_KEYS + [k for k in ("energy_state",) if k in metrics.columns]  # never across states
    if not metrics.duplicated(subset=keys).any():  # the usual store: nothing to combine
        return metrics.assign(copies=1, round_sd=0.0)
    m = metrics.reset_index(drop=True)  # positions, not labels: a frame's index may repeat
    gid = m.groupby(keys, sort=False, dropna=False).ngroup()  # NaN windows are one key, not dropped
    n = gid.map(gid.value_counts())
    values = m["value"].groupby(gid)
    out = m[~gid.duplicated()].copy()  # the first stored copy of each round × metric
    g = gid[out.index]
    out["value"] = g.map(values.median()).to_numpy()
    out["copies"] = g.map(values.size()).to_numpy()
    out["round_sd"] = g.map(values.std(ddof=1)).fillna(0.0).to_numpy()
    if "flags" in m.columns and (n > 1).any():
        merged: dict = {}
        messages = m["flag_messages"] if "flag_messages" in m.columns else m["flags"]
        for k, codes, msgs in zip(gid, m["flags"], messages):
            seen = merged.setdefault(k, ([], []))
            for code, msg in zip(codes or (), msgs or ()):
                if code not in seen[0]:
                    seen[0].append(code)
                    seen[1].append(msg)
        out["flags"] = [merged[k][0] for k in g]
        if "flag_messages" in out.columns:
            out["flag_messages"] = [merged[k][1] for k in g]
    return out


def evidence(behind: Optional[RunsBehind], task: Optional[str], arms: list[str], metric: Optional[str]) -> tuple[int, int]:
    """(distinct rounds, batches) behind a verdict on `metric` of these arms: the stored copies counted once
    per round; batches split as `stats.sequential_looks` does (a round seen again, or a long idle gap)."""
    if behind is None or metric is None:
        return 0, 0
    return behind.evidence(metric, arms, task)


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

    @property
    def page_rounds(self):
        """The rounds of every group read (ok runs' finite metrics, a round's copies combined): what the
        report's metric sections (theory, time, warnings) show, so that they count rounds as the judge does."""
        if self.stored_rounds is not None:
            return self.metrics
        if self._page_rounds is None:
            self._page_rounds = combine_rounds(self.metrics)
        return self._page_rounds

    _page_rounds = None

    @classmethod
    def load(cls, store_or_frames=None, *, suite: Optional[str] = None) -> "ResultSet":
        return cls(for_suite(load_frames(store_or_frames), suite))

    def groups(self) -> list[Group]:
        if self.metrics is None or len(self.metrics) == 0:
            return []
        keys = ["suite_config_hash", "hardware_profile_id", "energy_state"]
        by_key = dict(iter(self.metrics.groupby(keys, sort=False)))
        if self.stored_rounds is None:
            latest = self.metrics.groupby(keys, sort=False)["started_at"].max()
        else:  # a round's row is its first copy: the newest start is among the runs behind it
            import pandas as pd

            behind = self.stored_rounds.behind
            latest = pd.Series([behind[k].frame["started_at"].max() for k in by_key],
                               index=pd.MultiIndex.from_tuples(list(by_key), names=keys), name="started_at")
        latest = latest.sort_values(ascending=False)
        energy = dict(iter(self.energy.groupby(keys, sort=False))) if self.energy is not None and len(self.energy) else {}
        notes = _not_pooled_notes(list(latest.index), self.frames.provenance, by_key)
        out = []
        for key, started in latest.items():
            config_hash, profile, state = key
            m = by_key[key]
            group = Group(ComparabilityKey(str(config_hash), str(profile), str(state)), str(m["suite"].iloc[0]), m,
                          energy.get(key, self.energy.iloc[0:0] if self.energy is not None else None),
                          (self.frames.configs or {}).get(config_hash), str(started), notes.get(key))
            if self.stored_rounds is not None:
                group.metrics, group._rounds, group._runs_behind = None, m, self.stored_rounds.behind[key]
            out.append(group)
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

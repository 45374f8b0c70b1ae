"""The round, the unit of replication: its keys, its stored copies combined, and the runs behind it.

A round is one (configuration, hardware profile, arm, task, size, seed, repetition). A nightly job (or a
re-import) that stores the same suite again adds copies of its rounds, never new rounds: `combine_rounds`
makes them one row (the median, their number and spread, every copy's flags), and `RunsBehind` keeps the
stored runs behind the rounds for the counts that are about runs (batches, isolation, evidence). Also here:
the comparability key's columns as every reader computes them (`keyed`, `ok_rows`, `energy_state_key`).
Nothing here reads a store: analysis/resultset.py (frames) and analysis/stored_rounds.py (a stream) use it.
"""

from __future__ import annotations

import hashlib
from typing import Optional


ROUND_KEYS = ["suite_config_hash", "hardware_profile_id", "arm", "task", "size", "seed", "repetition"]
_METRIC_KEYS = ["name", "window"]
# what RunsBehind's counts read of a run: its identity, its round and batch slot, and its clock
BEHIND_COLUMNS = ["run_id", "arm", "task", "size", "seed", "repetition", "started_at", "finished_at"]


def add_flags(merged: tuple[list, list], codes, messages) -> None:
    """Adds a copy's flags (codes and their messages) to a round's `merged` (codes, messages), each code
    once, in the order the copies come: a fault on any copy stays on the round."""
    for code, message in zip(codes or (), messages or ()):
        if code not in merged[0]:
            merged[0].append(code)
            merged[1].append(message)


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
            add_flags(merged.setdefault(k, ([], [])), codes, msgs)
        out["flags"] = [merged[k][0] for k in g]
        if "flag_messages" in out.columns:
            out["flag_messages"] = [merged[k][1] for k in g]
    return out


def evidence(behind: Optional["RunsBehind"], task: Optional[str], arms: list[str], metric: Optional[str]) -> tuple[int, int]:
    """(distinct rounds, batches) behind a verdict on `metric` of these arms: the stored copies counted once
    per round; batches split as `stats.sequential_looks` does (a round seen again, or a long idle gap)."""
    if behind is None or metric is None:
        return 0, 0
    return behind.evidence(metric, arms, task)


class RunsBehind:
    """The stored runs of one group that hold a finite metric, one row each in store order (the runs
    frame's columns), and which of them hold each metric name.

    `rows`: the group's runs as positions in `runs`, a frame the groups of one read share
    (stored_rounds.py). Their columns are then taken when asked, never held: a copy per group of the
    125 000 runs a report reads at 1 000 000 records stayed in the process as 17 MiB."""

    def __init__(self, runs, holders: dict, rows=None, latest: Optional[str] = None):
        self._runs, self._rows = runs, rows
        self._latest = latest  # the newest start as stored (text), when the runs hold instants
        self._holders = holders  # metric name → positions among the group's runs (sorted)
        self._evidence: dict[bytes, tuple[int, int]] = {}
        self._clock_cache = None
        self._codes: dict[str, tuple] = {}  # column → its factorized (codes, uniques): _is_one_of

    def forget(self) -> None:
        """Let go what was worked out from the runs to answer the verdicts' questions (each run's batch clock
        and codes: 28 bytes a run, 3.5 MiB for the five groups a report judges at 1 000 000 records, held to
        the page's end): asked again, it is worked out again."""
        self._clock_cache, self._codes, self._evidence = None, {}, {}

    @classmethod
    def of_metrics(cls, metrics) -> "RunsBehind":
        import numpy as np

        runs = metrics.drop_duplicates("run_id").reset_index(drop=True)
        at = {run_id: i for i, run_id in enumerate(runs["run_id"])}
        holders = {str(name): np.unique(rows.map(at).to_numpy(dtype=np.int64))
                   for name, rows in metrics.groupby("name", sort=False)["run_id"]}
        return cls(runs, holders)

    @property
    def frame(self):
        """The group's runs, one row each in store order (index 0, 1, …)."""
        return self._runs if self._rows is None else self._runs.iloc[self._rows].reset_index(drop=True)

    @property
    def latest(self) -> str:
        """The newest start of these runs, as stored (ISO text, compared as text)."""
        return self._latest if self._latest is not None else str(self.column("started_at").max())

    @property
    def columns(self):
        return self._runs.columns

    def __len__(self) -> int:
        return len(self._runs) if self._rows is None else len(self._rows)

    def column(self, name: str):
        """One column of the group's runs (a Series in store order)."""
        return self._runs[name] if self._rows is None else self._runs[name].iloc[self._rows]

    def runs(self, *, name: Optional[str] = None, arms: Optional[list[str]] = None, task: Optional[str] = None):
        """The runs holding `name` (every run when None), of these arms and task when given."""
        return self.frame.iloc[self._positions(name, arms, task)]

    def _positions(self, name: Optional[str], arms: Optional[list[str]], task: Optional[str]):
        import numpy as np

        at = np.arange(len(self)) if name is None else self._holders.get(name, np.array([], dtype=np.int64))
        keep = np.ones(len(at), dtype=bool)
        if arms is not None:
            keep &= self._is_one_of("arm", arms)[at]
        if task is not None:
            keep &= self._is_one_of("task", [task])[at]
        return at[keep]

    def _is_one_of(self, column: str, values: list):
        """Per run, whether its `column` is one of `values`: the column's text factorized once, each call
        compares integers (a verdict asks this of a nightly group's 25 000 runs; 80 verdicts a report)."""
        import numpy as np

        if column not in self._codes:  # int32 codes: held as long as the group (a nightly group's 25 000 runs)
            codes, uniques = self.column(column).factorize()
            self._codes[column] = (codes.astype(np.int32), uniques)
        codes, uniques = self._codes[column]
        values = set(values)
        wanted = [i for i, u in enumerate(uniques) if u in values]
        return np.isin(codes, wanted)

    def evidence(self, name: Optional[str], arms: list[str], task: Optional[str]) -> tuple[int, int]:
        """(distinct rounds, batches) of the runs holding `name` of these arms and task. Claims on one
        task share their runs: each distinct set of runs is counted once."""
        import numpy as np

        from eitp_bench.analysis.stats import sequential_looks

        at = self._positions(name, arms, task)
        if len(at) == 0:
            return 0, 0
        if (key := hashlib.blake2b(at.tobytes(), digest_size=16).digest()) not in self._evidence:  # not the bytes: held
            slots, rounds, starts, ends = self._clock()
            looks = sequential_looks(slots[at].tolist(), starts[at], ends[at])
            self._evidence[key] = (len(np.unique(rounds[at])), looks.batches)
        return self._evidence[key]

    def looks(self):
        """The batches (stats.sequential_looks) all these runs came in."""
        from eitp_bench.analysis.stats import sequential_looks

        slots, _, starts, ends = self._clock()
        return sequential_looks(slots.tolist(), starts, ends)

    def _clock(self):
        """Per run: its batch slot (arm, task, size, repetition) and its round (size, seed, repetition) as
        integer codes, and its start and end in seconds (the ISO times parsed once, not once per verdict).
        Codes, not tuples of the values: a nightly group's 25 000 runs held as tuples of strings for the
        whole report cost 57 MiB at 1 000 000 records; as codes, 0.4 MiB."""
        import numpy as np

        if self._clock_cache is None:
            from eitp_bench.analysis.stats.planning import seconds

            f = self.frame
            slots = row_codes(f, ["arm", "task", "size", "repetition"]).astype(np.int32)  # held with the group
            rounds = row_codes(f, ["size", "seed", "repetition"]).astype(np.int32)
            starts = seconds(f["started_at"].to_numpy())  # text or instants (frames.load_newest)
            ends = seconds(f["finished_at"].to_numpy()) if "finished_at" in f.columns else np.full(len(f), np.nan)
            self._clock_cache = (slots, rounds, starts, ends)
        return self._clock_cache


def row_codes(frame, columns: list[str]):
    """One integer per row (a numpy array), equal where the rows' values in `columns` are equal, numbered
    in order of first appearance (a missing value is a value: never dropped)."""
    return frame.groupby(columns, sort=False, dropna=False).ngroup().to_numpy()


def keyed(df):
    """A missing hardware profile is its own machine, 'unknown' (never pooled with a known one)."""
    if df is None or len(df) == 0 or "hardware_profile_id" not in df.columns:
        return df
    return df.assign(hardware_profile_id=_text(df["hardware_profile_id"], "unknown"))


def _text(column, missing: str):
    """The column as text (not the store's categories: new values are made from it), `missing` where it has
    none. Filled by position: astype(str) keeps a missing value missing only from pandas 3 on."""
    return column.astype(str).where(column.notna(), missing)


def ok_rows(df):
    if df is None or len(df) == 0 or "status" not in df.columns:
        return df
    ok = df["status"] == "ok"
    # every row ok (a nightly store's usual case): a view, not a copy of the frame (copy-on-write shares
    # its columns until one is written), so the result set's energy entries are not held twice
    return df.copy(deep=False) if ok.all() else df[ok]


def energy_state_key(df, provenance):
    """The key's third component: each run's energy-moving hardware state (hwstate.with_state), and its
    board, as columns `energy_state` and `board`. `provenance`: a provenance frame, hwstate.run_labels, or
    hwstate.StateLabels for rows read with their run's energy_state_id."""
    from eitp_bench.analysis.hwstate import with_state

    if df is None or len(df) == 0:
        if df is None or "energy_state" in df.columns:
            return df
        return df.drop(columns="energy_state_id", errors="ignore").assign(energy_state="", board=None)
    return with_state(df, provenance)

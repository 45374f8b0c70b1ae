"""The store's rows as frames, loaded once: the input of every analysis.

`load_frames` accepts a Store, a store path/URL, a dict of frames (tests) or Frames; it opens a store
read-only (never creates one: a typo is not a new store).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Collection, Iterator, Optional

from eitp_bench.errors import UserError


PLOTTED_RUNS = 6  # runs per device that a report's power plot shows (analysis/findings.py)
# The run columns a report's page reads of the runs it judges (load_newest), and those its energy entries
# carry: a column read is held for every run to the end of the report (each int column 1 MiB, each
# time 4 MiB of text at 1 000 000 records), and the energy entries' are copies of the runs'.
PAGE_RUN_COLUMNS = ["run_id", "suite", "suite_config_hash", "arm", "task", "size", "seed", "repetition", "device",
                    "status", "error", "started_at", "finished_at", "hardware_profile_id"]
PAGE_ENERGY_RUN_COLUMNS = ["run_id", "suite", "suite_config_hash", "arm", "task", "size", "seed", "repetition",
                           "status", "hardware_profile_id"]


@dataclass(frozen=True)
class StoredTimeline:
    """A store's power timelines, not read yet: the largest table by far, and a report plots a few runs of
    it. `plotted` reads the points of those runs only, `points` all of them (the evidence bundle)."""

    store: Any
    # None: every run's; else only these runs', a frozenset or a pandas Index. load_newest gives the runs
    # frame's run_id column as an Index (Arrow text, shared with the frame): a frozenset of the 125 000 runs
    # a report reads at 1 000 000 records held 15 MiB of Python strings for the whole report
    run_ids: Optional[Collection] = field(default=None, hash=False)
    # the SQL condition on runs that read `run_ids` (load_newest): the plotted runs are picked among
    # those runs in SQL, never from every run of the store. Always the condition that read exactly
    # `run_ids`: `only` drops it
    where: Any = field(default=None, compare=False)

    def only(self, run_ids: set) -> "StoredTimeline":
        kept = frozenset(run_ids) if self.run_ids is None else frozenset(run_ids).intersection(self.run_ids)
        # `where` read the runs before this restriction: it no longer says which runs these are
        return StoredTimeline(self.store, kept)

    def points(self):
        df = self.store.timeline_frame()
        return df if self.run_ids is None else df[df["run_id"].isin(self.run_ids)]

    def plotted(self, max_runs: int):
        """The points of the first `max_runs` runs (in store order) with a timeline on each device."""
        if self.where is not None or self.run_ids is None:
            # SQL picks them among the runs `where` read (or every run): a few rows come back, never a
            # row per run read
            first = self.store.timeline_runs(where=self.where, first=max_runs)
        else:  # runs restricted in Python (for_suite, only_runs over a whole read): picked among those
            pairs = self.store.timeline_runs()
            first = pairs[pairs["run_id"].isin(self.run_ids)].groupby("device", sort=False).head(max_runs)
        if len(first) == 0:
            return self.store.timeline_frame(run_ids=[]).iloc[0:0]
        df = self.store.timeline_frame(run_ids=sorted(set(first["run_id"])))
        # a run picked for one device may have points on another device, where it is not among the first
        picked = set(zip(first["device"], first["run_id"]))
        return df[[pair in picked for pair in zip(df["device"], df["run_id"])]]


def timeline_points(frames: "Frames"):
    """Every timeline point of the frames' runs, as a frame (read from the store when still unread)."""
    tl = frames.timeline
    return tl.points() if isinstance(tl, StoredTimeline) else tl


def plotted_timeline(frames: "Frames", max_runs: int):
    """The timeline points of the first `max_runs` runs per device: all a power plot shows."""
    tl = frames.timeline
    return tl.plotted(max_runs) if isinstance(tl, StoredTimeline) else tl


@dataclass
class Frames:
    runs: Any
    metrics: Any
    energy: Any
    timeline: Any  # a frame, or a StoredTimeline (unread): read it with timeline_points / plotted_timeline
    provenance: Any = None  # one row per run: run_id + provenance fields, when the store provides it
    source: str = "frames"
    configs: dict = None  # suite_config_hash → the stored suite config (None: unknown)
    not_finite: Any = None  # metric rows whose value was NaN/inf (stored null): kept out of `metrics`
    scope: Any = None  # StoreScope: the frames hold only the newest groups' runs (load_newest)
    rounds: Any = None  # stored_rounds.StoredRounds: the judge's rounds, read instead of `metrics` (load_newest)


@dataclass(frozen=True)
class StoreScope:
    """Frames that hold only the runs of the newest `max_groups` groups (load_newest): what the analysis
    shows of the rest of the store was counted in SQL (store/queries.py), never read."""

    max_groups: int
    groups: list  # newest_groups.StoredGroup, every group of the store (or --suite), newest first
    not_finite: list  # the warnings' not_finite rows, counted over every run
    runs_total: int = 0  # runs of the store (or --suite), counted in SQL: those not read are runs_total - len(runs)
    # the not_finite rows of the runs read, counted in SQL (the frames hold no null metric row): the page's
    # warnings, which describe the runs read like its other sections
    not_finite_read: list = field(default_factory=list)
    pairs: tuple = ()  # the (configuration hash, profile) pairs whose runs the frames hold (load_newest_each)


def _finite_metrics(frames: Frames) -> Frames:
    """A metric stored as null (it was NaN or an infinity) is missing, never 0: every analysis reads
    `metrics` without it, and the warnings count it from `not_finite`."""
    m = frames.metrics
    if m is None or len(m) == 0 or "value" not in m.columns:
        return frames
    null = m["value"].isna()
    if not null.any():
        return frames
    return replace(frames, metrics=m[~null], not_finite=m[null])


def load_frames(store_or_frames=None) -> Frames:
    """Frames from a Frames, a dict of frames, a Store, or a store path/URL (None: the default store)."""
    import pandas as pd

    if isinstance(store_or_frames, Frames):
        return _finite_metrics(store_or_frames)
    if isinstance(store_or_frames, dict):
        empty = pd.DataFrame()
        return _finite_metrics(Frames(*(store_or_frames.get(k, empty) for k in ("runs", "metrics", "energy", "timeline")),
                                      provenance=store_or_frames.get("provenance"), source="frames",
                                      configs=store_or_frames.get("configs")))
    store = store_or_frames
    if store is None or isinstance(store, (str, Path)):
        store = _open(store)
    runs = store.runs_frame()
    provenance = store.provenance_frame(runs=runs) if hasattr(store, "provenance_frame") else None
    timeline = StoredTimeline(store) if hasattr(store, "timeline_runs") else store.timeline_frame()
    return _finite_metrics(Frames(
        runs, store.metrics_frame(runs=runs), store.energy_frame(runs=runs), timeline,
        provenance=provenance, source=str(getattr(store, "path", store_or_frames or "default store")),
        configs=store.configs() if hasattr(store, "configs") else None))


def load_newest(store_or_path, *, suite: Optional[str] = None, max_groups: int = 5) -> Frames:
    """Frames of the runs a report judges (the newest `max_groups` groups, restricted to `suite`), read
    alone: what `for_suite(load_frames(store), suite)` gives for those groups, with a StoreScope for the
    rest. Frames (and dicts of frames) are only restricted to the suite."""
    store = sql_store(store_or_path)
    if store is None:
        return for_suite(load_frames(store_or_path), suite)
    return _read_newest(store, _source(store, store_or_path), suite, max_groups, _stored_groups(store, store_or_path, suite))


def load_report(store_or_path, *, suite: Optional[str] = None, max_groups: int = 5) -> Frames:
    """What the HTML report reads. A store (or suite) of at most `max_groups` groups is read whole, as
    `for_suite(load_frames(store), suite)`: the report shows every run, the same page as ever. A larger
    one is read as load_newest reads it: the newest groups' runs only, and the report says which runs
    its sections describe (its StoreScope), never passing them off as the whole store."""
    store = sql_store(store_or_path)
    if store is None:
        return for_suite(load_frames(store_or_path), suite)
    groups = _stored_groups(store, store_or_path, suite)
    if len(groups) <= max_groups:
        return for_suite(load_frames(store), suite)
    return _read_newest(store, _source(store, store_or_path), suite, max_groups, groups)


def sql_store(store_or_path):
    """The Store to query in SQL, opened read-only from a path/URL; None for frames, dicts and stores
    without SQL (those are read whole)."""
    if store_or_path is None or isinstance(store_or_path, (str, Path)):
        return _open(store_or_path)
    if isinstance(store_or_path, (Frames, dict)) or not hasattr(store_or_path, "dialect"):
        return None
    return store_or_path


def _source(store, store_or_path) -> str:
    return str(getattr(store, "path", store_or_path or "default store"))


def _stored_groups(store, store_or_path, suite: Optional[str]) -> list:
    """Every comparability group of the store (or suite), newest first, from SQL aggregates; a clear
    error for an empty store or an unknown suite."""
    from eitp_bench.analysis.newest_groups import verdict_groups
    from eitp_bench.store import queries as store_queries

    source = _source(store, store_or_path)
    if store_queries.run_count(store) == 0:
        raise UserError(f"no runs in {source}: nothing to report",
                        fix="run a suite first (eitp-bench run SUITE) or point --store at a results store")
    if suite is not None and store_queries.run_count(store, suite=suite) == 0:
        known = ", ".join(store_queries.suites(store)[:10])
        raise UserError(f"no runs of suite {suite!r} in {source}", fix=f"use one of: {known}")
    return verdict_groups(store, suite=suite)


def load_newest_each(store_or_path, *, suite: Optional[str] = None, max_groups: int = 5) -> Iterator[Frames]:
    """load_newest's frames one (configuration hash, hardware profile) pair at a time, in the order the
    newest groups first name them: each holds every run of its pair (all its energy states, so its
    groups' NOT COMPARABLE notes are a full read's) and the StoreScope of the whole read, with `pairs`
    saying which pair it holds. Judged one after the other (findings.analyse_each), the verdicts are
    load_newest's while only one pair's runs are held: `report --json` at 1 000 000 records held the five
    judged groups' 125 000 runs at once, 41 MiB more than at 100 000 records (docs/scale.md). Frames,
    dicts of frames and stores without SQL: load_newest's one frame."""
    store = sql_store(store_or_path)
    if store is None:
        yield load_newest(store_or_path, suite=suite, max_groups=max_groups)
        return
    source, groups = _source(store, store_or_path), _stored_groups(store, store_or_path, suite)
    pairs = newest_pairs(groups, max_groups)
    scope = _scope(store, suite, max_groups, groups, pairs)
    if scope is None:  # no ok run with a metric: nothing to judge, and nothing large to read
        yield for_suite(load_frames(store), suite)
        return
    for pair in pairs:
        yield _read_pairs(store, source, suite, [pair], groups, replace(scope, pairs=(pair,)))


def newest_pairs(groups: list, max_groups: int) -> list[tuple[str, str]]:
    """The (configuration hash, hardware profile) pairs of the newest `max_groups` groups, newest first."""
    return list(dict.fromkeys((g.config_hash, g.hardware_profile_id) for g in groups[:max_groups]))


def _read_newest(store, source: str, suite: Optional[str], max_groups: int, groups: list) -> Frames:
    """The newest groups' runs, with their metrics as the judge's rounds, combined while the rows stream
    past (analysis/stored_rounds.py): no frame of every stored copy (`metrics` is None)."""
    pairs = newest_pairs(groups, max_groups)
    scope = _scope(store, suite, max_groups, groups, pairs)
    if scope is None:  # no ok run with a metric: nothing to judge, and nothing large to read
        return for_suite(load_frames(store), suite)
    return _read_pairs(store, source, suite, pairs, groups, scope)


def _scope(store, suite: Optional[str], max_groups: int, groups: list, pairs: list) -> Optional[StoreScope]:
    """What the reports say of the runs not read, counted in SQL; None where the pairs name no run."""
    from eitp_bench.store import queries as store_queries

    where = store_queries.runs_of(pairs, suite=suite)
    if where is None:
        return None
    return StoreScope(max_groups, groups, store_queries.not_finite_counts(store, suite=suite),
                      not_finite_read=store_queries.not_finite_counts(store, suite=suite, where=where),
                      runs_total=store_queries.run_count(store, suite=suite), pairs=tuple(pairs))


def _read_pairs(store, source: str, suite: Optional[str], pairs: list, groups: list, scope: StoreScope) -> Frames:
    """Every run of these (configuration, profile) pairs: runs, provenance, the judge's rounds and energy."""
    import pandas as pd

    from eitp_bench.analysis.stored_rounds import read_rounds
    from eitp_bench.store import queries as store_queries

    where = store_queries.runs_of(pairs, suite=suite)
    # the times as instants (8 bytes a time, not 40 of text): each group's newest start, which orders the
    # groups, is then the one the store's listing of them gives (analysis/newest_groups.py)
    runs, seqs = store.runs_and_seqs(where=where, columns=PAGE_RUN_COLUMNS, instants=True)
    provenance = store.provenance_frame(where=where, runs=runs)
    latest = {(g.config_hash, g.hardware_profile_id, g.energy_state): g.latest for g in groups}
    rounds = read_rounds(store, where, runs, seqs, provenance, latest=latest)
    return _finite_metrics(Frames(
        runs, None, store.energy_frame(where=where, runs=runs, run_columns=PAGE_ENERGY_RUN_COLUMNS),
        StoredTimeline(store, pd.Index(runs["run_id"]), where), provenance=provenance,
        source=source, configs=store.configs(hashes={h for h, _ in pairs}), rounds=rounds, scope=scope))


def load_series(store_or_path, *, names=None, config_hash: Optional[str] = None) -> Frames:
    """What `compare` and `regress` read: the ok runs' finite metric values with only the columns of a
    series (store_queries.series_metrics; only `names`, and only one configuration's runs, when given),
    each with its run's energy_state_id, and, as provenance, the stored states' labels by id
    (hwstate.StateLabels: nothing per run). Frames, dicts of frames and stores without SQL are loaded
    whole, with a provenance frame (`config_hash` needs a SQL store)."""
    from eitp_bench.analysis.hwstate import state_labels
    from eitp_bench.store import queries as store_queries

    store = sql_store(store_or_path)
    if store is None:
        if config_hash is not None:
            raise ValueError("load_series(config_hash=…) reads a SQL store")
        return load_frames(store_or_path)
    if store_queries.run_count(store) == 0:
        return load_frames(store)  # no runs: the commands say so from the (empty) frames
    metrics = store_queries.series_metrics(store, names=names, config_hash=config_hash, extra=("energy_state_id",))
    return Frames(None, metrics, None, None,
                  provenance=state_labels(store_queries.state_values(store, config_hash=config_hash)),
                  source=_source(store, store_or_path))


def _open(path):
    try:
        from eitp_bench.store import Store
    except ImportError as err:  # pragma: no cover - until the store lands
        raise UserError(f"the results store is not available ({err})", fix="install eitp-bench completely") from None
    # read-only: never created (a typo is not a new store), never written, works on a read-only file
    return Store.open(str(path) if path is not None else None, read_only=True)


def for_suite(frames: Frames, suite: Optional[str]) -> Frames:
    if frames.runs is None or len(frames.runs) == 0:
        raise UserError(f"no runs in {frames.source}: nothing to report",
                        fix="run a suite first (eitp-bench run SUITE) or point --store at a results store")
    if suite is None or frames.scope is not None:  # scoped frames were read for the suite
        return frames
    if suite not in set(frames.runs["suite"]):
        known = ", ".join(sorted(set(frames.runs["suite"]))[:10])
        raise UserError(f"no runs of suite {suite!r} in {frames.source}", fix=f"use one of: {known}")
    return only_runs(frames, set(frames.runs.loc[frames.runs["suite"] == suite, "run_id"]))


def only_runs(frames: Frames, run_ids: set) -> Frames:
    """The frames restricted to these runs."""
    if frames.scope is not None:  # its store-side counts are of every run: they would not follow
        raise ValueError("frames read by load_newest cannot be restricted further; use load_frames")

    def keep(df):
        if isinstance(df, StoredTimeline):
            return df.only(run_ids)
        return df if df is None or len(df) == 0 else df[df["run_id"].isin(run_ids)]

    return Frames(keep(frames.runs), keep(frames.metrics), keep(frames.energy), keep(frames.timeline),
                  keep(frames.provenance), frames.source, frames.configs, keep(frames.not_finite))

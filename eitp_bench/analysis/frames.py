"""The store's rows as frames, loaded once: the input of every analysis.

`load_frames` accepts a Store, a store path/URL, a dict of frames (tests) or Frames; it opens a store
read-only (never creates one: a typo is not a new store).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

from eitp_bench.errors import UserError


@dataclass(frozen=True)
class StoredTimeline:
    """A store's power timelines, not read yet: the largest table by far, and a report plots a few runs of
    it. `plotted` reads the points of those runs only, `points` all of them (the evidence bundle)."""

    store: Any
    run_ids: Optional[frozenset] = None  # None: every run's; else only these runs'

    def only(self, run_ids: set) -> "StoredTimeline":
        kept = frozenset(run_ids) if self.run_ids is None else self.run_ids & frozenset(run_ids)
        return StoredTimeline(self.store, kept)

    def points(self):
        df = self.store.timeline_frame()
        return df if self.run_ids is None else df[df["run_id"].isin(self.run_ids)]

    def plotted(self, max_runs: int):
        """The points of the first `max_runs` runs (in store order) with a timeline on each device."""
        pairs = self.store.timeline_runs()
        if self.run_ids is not None:
            pairs = pairs[pairs["run_id"].isin(self.run_ids)]
        first = pairs.groupby("device", sort=False).head(max_runs)
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
        try:
            from eitp_bench.store import Store
        except ImportError as err:  # pragma: no cover - until the store lands
            raise UserError(f"the results store is not available ({err})", fix="install eitp-bench completely") from None
        # read-only: never created (a typo is not a new store), never written, works on a read-only file
        store = Store.open(str(store) if store is not None else None, read_only=True)
    provenance = store.provenance_frame() if hasattr(store, "provenance_frame") else None
    timeline = StoredTimeline(store) if hasattr(store, "timeline_runs") else store.timeline_frame()
    return _finite_metrics(Frames(
        store.runs_frame(), store.metrics_frame(), store.energy_frame(), timeline,
        provenance=provenance, source=str(getattr(store, "path", store_or_frames or "default store")),
        configs=store.configs() if hasattr(store, "configs") else None))


def for_suite(frames: Frames, suite: Optional[str]) -> Frames:
    if frames.runs is None or len(frames.runs) == 0:
        raise UserError(f"no runs in {frames.source}: nothing to report",
                        fix="run a suite first (eitp-bench run SUITE) or point --store at a results store")
    if suite is None:
        return frames
    if suite not in set(frames.runs["suite"]):
        known = ", ".join(sorted(set(frames.runs["suite"]))[:10])
        raise UserError(f"no runs of suite {suite!r} in {frames.source}", fix=f"use one of: {known}")
    return only_runs(frames, set(frames.runs.loc[frames.runs["suite"] == suite, "run_id"]))


def only_runs(frames: Frames, run_ids: set) -> Frames:
    """The frames restricted to these runs."""

    def keep(df):
        if isinstance(df, StoredTimeline):
            return df.only(run_ids)
        return df if df is None or len(df) == 0 else df[df["run_id"].isin(run_ids)]

    return Frames(keep(frames.runs), keep(frames.metrics), keep(frames.energy), keep(frames.timeline),
                  keep(frames.provenance), frames.source, frames.configs, keep(frames.not_finite))

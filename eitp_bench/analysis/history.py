"""The nightly history: every regress series as points over time, with its change points and noise band.

Series and change points are regress's own (analysis/regress.py: same keys, same PELT + Mann–Whitney +
Benjamini–Hochberg), so the site and `eitp-bench regress` never disagree. A page groups the series of
one (suite, task, arm, metric) across hardware profiles (and energy states, boards), drawn side by side.
The noise band of a segment (between confirmed changes) is its median ± 2 robust standard deviations
(1.4826 × MAD): where a stable night usually lands, not a confidence interval.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Optional

from eitp_bench.analysis.regress import Change, _keyed, find_changes, series_keys

PAGE_KEYS = ["suite", "task", "arm", "name"]  # one page each; the remaining series keys are its panels
BAND_SDS = 2.0


@dataclass
class Point:
    run_id: str
    started_at: str
    value: float
    git_commit: str = ""


@dataclass
class Segment:
    start: int  # first point index (inclusive)
    stop: int  # last point index (exclusive)
    median: float
    low: float
    high: float


@dataclass
class Panel:
    """One regress series: a hardware profile (+ energy state, board) of a page's metric."""
    label: str
    hardware_profile_id: Optional[str]
    points: list[Point]
    changes: list[Change]  # every candidate change point; `confirmed` marks the ones regress reports
    segments: list[Segment] = field(default_factory=list)


@dataclass
class SeriesPage:
    suite: str
    task: str
    arm: str
    metric: str
    unit: str
    panels: list[Panel]

    @property
    def title(self) -> str:
        return f"{self.suite}/{self.task}/{self.arm}/{self.metric}"

    @property
    def slug(self) -> str:
        """A file name that is safe on every file system and stable across rebuilds."""
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.title)[:80].strip("-.")
        digest = hashlib.sha1(self.title.encode()).hexdigest()[:8]
        return f"{readable}-{digest}"

    @property
    def n_points(self) -> int:
        return sum(len(p.points) for p in self.panels)

    def fingerprint(self) -> dict:
        """What the page shows changes only when one of these does (the manifest compares them)."""
        changes = sorted((c.run_id, c.kind, c.confirmed, round(c.relative, 6)) for p in self.panels for c in p.changes)
        return {"count": self.n_points,
                "last_run_id": max((pt.started_at, pt.run_id) for p in self.panels for pt in p.points)[1],
                "changes": hashlib.sha1(json.dumps(changes).encode()).hexdigest()[:16]}

    def regressions(self) -> list[Change]:
        return [c for p in self.panels for c in p.changes if c.confirmed and c.kind == "regression"]


@dataclass
class History:
    pages: list[SeriesPage]
    changes: list[Change]  # all candidates, as regress finds them
    window: int
    threshold: float

    def confirmed_first(self) -> list[tuple[Change, SeriesPage]]:
        """Confirmed regressions, then other confirmed changes; each newest first, then the largest."""
        found = [(c, page) for page in self.pages for p in page.panels for c in p.changes if c.confirmed]
        return sorted(found, key=lambda cp: (cp[0].kind != "regression", _neg_time(cp[0].started_at),
                                             -abs(cp[0].relative)))


def _neg_time(started_at: str) -> float:
    import pandas as pd

    return -pd.Timestamp(started_at).timestamp()


def build_history(frames, *, window: int = 8, threshold: float = 0.05) -> History:
    """Every series of the store's ok runs, grouped into pages, with regress's change points."""
    import pandas as pd

    metrics = frames.metrics
    changes = find_changes(metrics, window=window, threshold=threshold, provenance=frames.provenance)
    df = _keyed(metrics, frames.provenance)
    if len(df) == 0:
        return History([], changes, window, threshold)
    commits = _commits(frames.provenance)
    df = df.assign(_t=pd.to_datetime(df["started_at"], utc=True, format="ISO8601")).sort_values("_t", kind="stable")
    keys = series_keys(df)
    by_series: dict[tuple, list[Change]] = {}
    for c in changes:
        by_series.setdefault(_change_key(c, keys), []).append(c)
    pages: list[SeriesPage] = []
    for page_key, page_df in df.groupby(PAGE_KEYS, sort=True, dropna=False):
        panels = []
        rest = [k for k in keys if k not in PAGE_KEYS]
        for panel_key, s in page_df.groupby(rest, sort=True, dropna=False):
            named = dict(zip(keys, (*page_key, *panel_key)))
            points = [Point(str(r), str(t), float(v), commits.get(str(r), ""))
                      for r, t, v in zip(s["run_id"], s["started_at"], s["value"])]
            panel_changes = sorted(by_series.get(tuple(_plain(named[k]) for k in keys), []), key=lambda c: c.index)
            panels.append(Panel(_panel_label(named), _plain(named["hardware_profile_id"]), points, panel_changes,
                                noise_segments([p.value for p in points], panel_changes)))
        unit = page_df["unit"].dropna().iloc[-1] if "unit" in page_df and page_df["unit"].notna().any() else ""
        pages.append(SeriesPage(*(str(_plain(v)) for v in page_key), unit=str(unit), panels=panels))
    return History(pages, changes, window, threshold)


def noise_segments(values: list[float], changes: list[Change]) -> list[Segment]:
    """Median ± BAND_SDS robust sd per stretch between confirmed change points."""
    import numpy as np

    cuts = sorted({c.index for c in changes if c.confirmed and 0 < c.index < len(values)})
    bounds = [0, *cuts, len(values)]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        seg = np.asarray(values[a:b], dtype=float)
        med = float(np.median(seg))
        sd = 1.4826 * float(np.median(np.abs(seg - med)))
        out.append(Segment(a, b, med, med - BAND_SDS * sd, med + BAND_SDS * sd))
    return out


def _change_key(c: Change, keys: list[str]) -> tuple:
    values = {"suite": c.suite, "task": c.task, "arm": c.arm, "name": c.metric,
              "hardware_profile_id": c.hardware_profile_id, "energy_state": c.energy_state or None,
              "board": c.board}
    return tuple(_plain(values[k]) for k in keys)


def _panel_label(named: dict) -> str:
    label = str(_plain(named.get("hardware_profile_id")) or "unknown hardware")
    if _plain(named.get("board")):
        label += f" #{named['board']}"
    if _plain(named.get("energy_state")):
        label += f" [{named['energy_state']}]"
    return label


def _plain(v):
    if v is None or (isinstance(v, float) and v != v) or v == "":
        return None
    return v


def _commits(provenance) -> dict[str, str]:
    if provenance is None or len(provenance) == 0 or "git_commit" not in provenance:
        return {}
    return {str(r): str(c) for r, c in zip(provenance["run_id"], provenance["git_commit"]) if isinstance(c, str)}

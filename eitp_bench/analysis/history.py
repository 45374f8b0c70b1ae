"""The nightly history: every regress series as points over time, with its change points and noise band.

Series and change points are regress's own (analysis/regress.py: same keys, same PELT + Mann–Whitney +
Benjamini–Hochberg), so the site and `eitp-bench regress` never disagree. A page groups the series of
one (suite, task, arm, metric) across hardware profiles (and energy states, boards), drawn side by side.
The noise band of a segment (between confirmed changes) is its median ± 2 robust standard deviations
(1.4826 × MAD): where a stable night usually lands, not a confidence interval.

Two ways in, one result: `build_history(frames)` from frames in memory, and `store_history(store)` from a
SQL store one page at a time, as `regress` reads it (regress.store_changes): its first pass keeps, per
page, only a small summary (what the index and the manifest need); after Benjamini–Hochberg,
`StoreHistory.pages(store, slugs)` reads again only the names of the pages to be drawn, a page at a time.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Iterator, Optional

from eitp_bench.analysis.regress import Change, _keyed, find_changes, missing, series_keys

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
    # each point's start in seconds since the epoch, as parsed once for the whole metric (the figure's x);
    # derived from the points, so not part of what makes two panels equal
    seconds: list[float] = field(default_factory=list, compare=False, repr=False)


class _PageId:
    """A page's title and file name, from its (suite, task, arm, metric); its confirmed regressions, from
    its `changes`."""
    suite: str
    task: str
    arm: str
    metric: str
    changes: list[Change]

    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.confirmed and c.kind == "regression"]

    @property
    def title(self) -> str:
        return f"{self.suite}/{self.task}/{self.arm}/{self.metric}"

    @property
    def slug(self) -> str:
        """A file name that is safe on every file system and stable across rebuilds."""
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.title)[:80].strip("-.")
        digest = hashlib.sha1(self.title.encode()).hexdigest()[:8]
        return f"{readable}-{digest}"


@dataclass
class SeriesPage(_PageId):
    suite: str
    task: str
    arm: str
    metric: str
    unit: str
    panels: list[Panel]

    @property
    def n_points(self) -> int:
        return sum(len(p.points) for p in self.panels)

    @property
    def changes(self) -> list[Change]:
        """Every panel's candidates, as a PageSummary holds them."""
        return [c for p in self.panels for c in p.changes]

    def fingerprint(self) -> dict:
        """What the page shows changes only when one of these does (the manifest compares them)."""
        return _fingerprint(self.n_points, max((pt.started_at, pt.run_id) for p in self.panels for pt in p.points)[1],
                            self.changes)


def _fingerprint(count: int, last_run_id: str, changes: list[Change]) -> dict:
    listed = sorted((c.run_id, c.kind, c.confirmed, round(c.relative, 6)) for c in changes)
    return {"count": count, "last_run_id": last_run_id,
            "changes": hashlib.sha1(json.dumps(listed).encode()).hexdigest()[:16]}


@dataclass
class PageSummary(_PageId):
    """What the index and the manifest need of a series page, without its points."""
    suite: str
    task: str
    arm: str
    metric: str
    unit: str
    labels: list[str]  # its panels', in page order
    n_points: int
    last_run_id: str  # the newest point's run (by start time, then run id)
    last_started_at: str
    last_value: float
    changes: list[Change] = field(default_factory=list)

    def fingerprint(self) -> dict:
        return _fingerprint(self.n_points, self.last_run_id, self.changes)


def summary_of(page: SeriesPage) -> PageSummary:
    """A drawn page's summary (what store_history keeps of it without drawing it)."""
    last = max((pt.started_at, pt.run_id, pt.value) for p in page.panels for pt in p.points)
    return PageSummary(page.suite, page.task, page.arm, page.metric, page.unit, [p.label for p in page.panels],
                       page.n_points, last[1], last[0], last[2], page.changes)


def confirmed_first(pages) -> list[tuple[Change, object]]:
    """Confirmed regressions, then other confirmed changes; each newest first, then the largest."""
    found = [(c, page) for page in pages for c in page.changes if c.confirmed]
    return sorted(found, key=lambda cp: (cp[0].kind != "regression", _neg_time(cp[0].started_at),
                                         -abs(cp[0].relative)))


@dataclass
class History:
    pages: list[SeriesPage]
    changes: list[Change]  # all candidates, as regress finds them
    window: int
    threshold: float

    def confirmed_first(self) -> list[tuple[Change, SeriesPage]]:
        return confirmed_first(self.pages)


def _neg_time(started_at: str) -> float:
    import pandas as pd

    return -pd.Timestamp(started_at).timestamp()


def build_history(frames, *, window: int = 8, threshold: float = 0.05) -> History:
    """Every series of the store's ok runs, grouped into pages, with regress's change points."""
    metrics = frames.metrics
    changes = find_changes(metrics, window=window, threshold=threshold, provenance=frames.provenance)
    df = _keyed(metrics, frames.provenance)
    if len(df) == 0:
        return History([], changes, window, threshold)
    keys = series_keys(df)
    commits = _commits(frames.provenance)
    df = df.assign(git_commit=[commits.get(str(r)) for r in df["run_id"]])
    return History(list(_pages(df, keys, _by_series(changes, keys))), changes, window, threshold)


@dataclass
class StoreHistory:
    """store_history's result: every page's summary and every candidate change; the pages themselves
    are drawn, one page at a time, by `pages`."""
    summaries: list[PageSummary]
    changes: list[Change]
    window: int
    threshold: float
    keys: list[str]  # the series keys, decided once for the whole store (regress.store_changes)
    states: object  # hwstate.StateLabels: the energy state and board of each row's series, by state id
    spilled: object = None  # the first pass's rows, a file per page (_Spill), read back by `pages`

    def confirmed_first(self) -> list[tuple[Change, PageSummary]]:
        return confirmed_first(self.summaries)

    def pages(self, store, slugs: set[str], commits) -> Iterator[SeriesPage]:
        """The SeriesPages whose slug is in `slugs` (equal to build_history's), one page's rows at a time,
        only the names of those pages; each point's commit from `commits` (history_commits.CommitIndex)."""
        from eitp_bench.store.queries import series_pages

        by_series = _by_series(self.changes, self.keys)
        for name in sorted({s.metric for s in self.summaries if s.slug in slugs}):
            read = self.spilled.load(name) if self.spilled is not None else None
            if read is None:
                read = (_keyed(page, self.states) for page in series_pages(store, [name], extra=SECOND_READ))
            for df in read:
                df = df.assign(git_commit=commits.of(df["seq"]) if len(df) else [])
                yield from _pages(df, self.keys, by_series, wanted=slugs)
                del df


# series_metrics' extra columns the pages need (seq: the commit, history_commits; the state id: the series)
SECOND_READ = ("unit", "seq", "energy_state_id")


class _Spill:
    """Each page's keyed rows as the first pass read them, pickled into a folder: drawing the pages
    after Benjamini–Hochberg reads them back (a pickle of Arrow columns loads in a fraction of the SQL
    join's time) instead of querying the store again. The folder (a new temporary one, or `folder`,
    emptied first: what a killed build left there goes) is removed when the history is dropped."""

    def __init__(self, folder=None):
        import shutil
        import tempfile
        import weakref
        from pathlib import Path

        if folder is None:
            folder = tempfile.mkdtemp(prefix="eitp-history-")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            Path(folder).mkdir(parents=True)
        self.folder = Path(folder)
        self._paths: dict[str, list[Path]] = {}
        self._count = 0
        weakref.finalize(self, shutil.rmtree, str(folder), True)

    def save(self, name: str, df) -> None:
        """One more page of metric `name`."""
        path = self.folder / f"{self._count}.pkl"
        self._count += 1
        df.to_pickle(path)
        self._paths.setdefault(name, []).append(path)

    def load(self, name: str):
        """Metric `name`'s pages, read back one at a time (None: none saved)."""
        import pandas as pd

        paths = self._paths.get(name)
        return None if paths is None else (pd.read_pickle(path) for path in paths)


def store_history(store, *, window: int = 8, threshold: float = 0.05, spill: bool = True,
                  spill_dir=None) -> StoreHistory:
    """build_history of a SQL store, read one page at a time (regress.store_changes): the same
    change points as regress, and per page a summary (count, newest run, unit) instead of its points.
    `spill`: keep each page's rows in a file for `pages` (else `pages` queries the store again), in
    `spill_dir` (emptied first) or a new temporary folder."""
    from eitp_bench.analysis.regress import check_window, store_changes

    check_window(window)
    summaries: list[PageSummary] = []

    spilled = _Spill(spill_dir) if spill else None

    def summarise(name, keyed, keys):
        keyed = _in_time_order(keyed)  # once: the summaries, and the pages drawn from the spilled rows
        summaries.extend(_summaries(keyed, keys))
        if spilled is not None:
            spilled.save(name, keyed)

    found = store_changes(store, window=window, threshold=threshold, extra=SECOND_READ, on_page=summarise)
    keys = found.keys
    by_page: dict[tuple, list[Change]] = {}
    for c in found.changes:
        by_page.setdefault((c.suite, c.task, c.arm, c.metric), []).append(c)
    for s in summaries:
        s.changes = by_page.get((s.suite, s.task, s.arm, s.metric), [])
    summaries.sort(key=lambda s: _page_order((s.suite, s.task, s.arm, s.metric)))
    return StoreHistory(summaries, found.changes, window, threshold, keys, found.states, spilled)


def _page_order(key: tuple) -> tuple:
    return tuple((v is None, "" if v is None else v) for v in key)


def _by_series(changes: list[Change], keys: list[str]) -> dict[tuple, list[Change]]:
    by_series: dict[tuple, list[Change]] = {}
    for c in changes:
        by_series.setdefault(_change_key(c, keys), []).append(c)
    return by_series


def _in_time_order(df):
    """The rows in time order, their parsed start in `_t`; rows already in that order (with `_t`: the
    spilled ones) as they are."""
    import pandas as pd

    if "_t" in df.columns:
        return df
    return df.assign(_t=pd.to_datetime(df["started_at"], utc=True, format="ISO8601")).sort_values("_t", kind="stable")


def _epoch_seconds(times) -> list[float]:
    """Seconds since the epoch of a UTC datetime column, whatever unit pandas parsed it in."""
    import pandas as pd

    return ((times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).tolist()


def _pages(df, keys: list[str], by_series: dict, wanted: Optional[set] = None) -> Iterator[SeriesPage]:
    """The pages of keyed rows (with `git_commit`, `unit`), in page order; only slugs in `wanted` if given."""
    if len(df) == 0:
        return
    df = _in_time_order(df)
    # plain lists first: pandas' per-group objects and Arrow string iteration dominate on a large store
    run_ids, times, values, commits = (df[c].tolist() for c in ("run_id", "started_at", "value", "git_commit"))
    units = df["unit"].tolist() if "unit" in df else None
    seconds = _epoch_seconds(df["_t"])
    for page_key, panels in _groups(df, keys):
        page = SeriesPage(*(str(_plain(v)) for v in page_key), unit=_unit_at(units, panels), panels=[])
        if wanted is not None and page.slug not in wanted:
            continue
        for panel_key, rows in panels:
            named = dict(zip(keys, panel_key))
            points = [Point(str(run_ids[i]), str(times[i]), float(values[i]),
                            commits[i] if isinstance(commits[i], str) else "") for i in rows]
            panel_changes = sorted(by_series.get(tuple(_plain(named[k]) for k in keys), []), key=lambda c: c.index)
            page.panels.append(Panel(_panel_label(named), _plain(named["hardware_profile_id"]), points,
                                     panel_changes, noise_segments([p.value for p in points], panel_changes),
                                     [seconds[i] for i in rows]))
        yield page


def _summaries(df, keys: list[str]) -> list[PageSummary]:
    """The PageSummary of every page of keyed rows (as summary_of(page) for _pages')."""
    if len(df) == 0:
        return []
    df = _in_time_order(df)
    run_ids, times, values = (df[c].tolist() for c in ("run_id", "started_at", "value"))
    units = df["unit"].tolist() if "unit" in df else None
    out = []
    for page_key, panels in _groups(df, keys):
        rows = [i for _, panel_rows in panels for i in panel_rows]
        last = max((str(times[i]), str(run_ids[i]), float(values[i])) for i in rows)
        out.append(PageSummary(*(str(_plain(v)) for v in page_key), unit=_unit_at(units, panels),
                               labels=[_panel_label(dict(zip(keys, k))) for k, _ in panels], n_points=len(rows),
                               last_run_id=last[1], last_started_at=last[0], last_value=last[2]))
    return out


def _groups(df, keys: list[str]) -> list[tuple[tuple, list[tuple[tuple, list[int]]]]]:
    """[(page key, [(series key, row positions in df order)])] in the order of df.groupby(PAGE_KEYS) and
    then of each page's groupby over the rest of `keys` (sorted, missing values last): numbered once by
    pandas (ngroup), split with numpy, so no per-group frame is made."""
    import numpy as np

    if keys[:len(PAGE_KEYS)] != PAGE_KEYS:  # a page's series must be contiguous in the whole key's order
        raise ValueError(f"series keys {keys} do not start with the page keys {PAGE_KEYS}")
    number = df.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
    order = np.argsort(number, kind="stable")  # within a series: df's order (time)
    starts = np.flatnonzero(np.r_[True, np.diff(number[order]) != 0])
    columns = [df[k].tolist() for k in keys]
    out: list = []
    for a, b in zip(starts, [*starts[1:], len(order)]):
        rows = order[a:b].tolist()
        key = tuple(column[rows[0]] for column in columns)
        page_key = key[:len(PAGE_KEYS)]
        if not out or not _same_key(out[-1][0], page_key):
            out.append((page_key, []))
        out[-1][1].append((key, rows))
    return out


def _same_key(a: tuple, b: tuple) -> bool:
    return all(x == y or (missing(x) and missing(y)) for x, y in zip(a, b))


def _unit_at(units, panels) -> str:
    """The page's unit: its last stated one in time order (as _unit of its rows)."""
    if units is None:
        return ""
    stated = [i for _, rows in panels for i in rows if not missing(units[i])]
    return str(units[max(stated)]) if stated else ""


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
    return None if missing(v) or v == "" else v


def _commits(provenance) -> dict[str, str]:
    if provenance is None or len(provenance) == 0 or "git_commit" not in provenance:
        return {}
    return {str(r): str(c) for r, c in zip(provenance["run_id"], provenance["git_commit"]) if isinstance(c, str)}

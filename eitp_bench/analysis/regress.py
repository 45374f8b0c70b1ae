"""Nightly regression detection over every stored series.

A series is (suite, task, arm, metric, hardware profile, energy state) ordered by start time, one
point per ok run; where a profile's runs came from several boards, each board is a series of its own
(analysis/hwstate.py: a power-limit change or a board swap is not a regression of the code).
Candidate change points come from PELT (stats.change_points); each is confirmed by a two-sided
Mann–Whitney test of the N points before against the N after, a minimum relative effect, and
Benjamini–Hochberg across all candidates.
The metric's direction turns a confirmed change into a regression or an improvement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from eitp_bench import names
from eitp_bench.errors import UserError

SERIES_KEYS = ["suite", "task", "arm", "name", "hardware_profile_id"]


def series_keys(df) -> list[str]:
    """SERIES_KEYS + energy_state, + board where any hardware profile's runs came from several boards."""
    keys = [*SERIES_KEYS, "energy_state"]
    if "board" in df.columns and len(df) and (df.dropna(subset=["board"]).groupby("hardware_profile_id")["board"]
                                              .nunique() > 1).any():
        keys.append("board")
    return keys


def _keyed(metrics_df, provenance):
    from eitp_bench.analysis.rounds import energy_state_key

    df = metrics_df
    if len(df) and "status" in df.columns:
        ok = df["status"] == "ok"
        if not ok.all():  # a SQL store's series are of ok runs already: no copy of every row
            df = df[ok]
    return energy_state_key(df, provenance)

def metric_direction(name: str) -> Optional[str]:
    """Which way is better: the metric's declaration in eitp_bench.names (or its naming convention)."""
    return names.direction(name)


def parse_threshold(text: str) -> float:
    """'5%' → 0.05, '0.05' → 0.05; anything else is a UserError."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise UserError(f"--threshold {text!r} is not a number or a percentage",
                        fix="give a relative change such as 5% or 0.05") from None
    if not 0 < value < 10:
        raise UserError(f"--threshold {text!r} must be a positive relative change below 1000 %",
                        fix="give a relative change such as 5% or 0.05")
    return value


@dataclass
class Change:
    suite: str
    task: str
    arm: str
    metric: str
    hardware_profile_id: Optional[str]
    index: int  # position in the series of the first point after the change
    run_id: str  # the first run after the change
    started_at: str
    before: float  # median of the window before
    after: float  # median of the window after
    relative: float  # after ÷ before − 1
    p_value: float
    q_value: float = 1.0
    kind: str = "change"  # regression, improvement or change (unknown direction)
    confirmed: bool = False
    energy_state: str = ""  # the series' hardware state (hwstate.state_label)
    board: Optional[str] = None  # the board, where the fleet has several per profile

    @property
    def series(self) -> str:
        board = f"#{self.board}" if self.board else ""
        state = f" [{self.energy_state}]" if self.energy_state else ""
        return f"{self.suite}/{self.task}/{self.arm}/{self.metric}@{self.hardware_profile_id}{board}{state}"


def testable_series(metrics_df, *, min_size: int = 3, provenance=None, keys=None) -> tuple[int, int]:
    """(series with enough points for a change point, all series): regress says how many it could test.
    `keys`: the series keys decided for the whole store (store_changes); None: series_keys(metrics_df)."""
    if len(metrics_df) == 0:
        return 0, 0
    return _testable(_keyed(metrics_df, provenance), min_size, keys)


def _testable(df, min_size: int, keys=None) -> tuple[int, int]:
    sizes = df.groupby(keys or series_keys(df), sort=False, dropna=False).size()
    return int((sizes >= 2 * min_size).sum()), len(sizes)


def check_window(window: int) -> None:
    if window < 2:
        raise UserError(f"--window {window} is too small", fix="use at least 2 points per side (8 is typical)")


def find_changes(metrics_df, *, window: int = 8, threshold: float = 0.05, alpha: float = 0.05,
                 min_size: int = 3, provenance=None) -> list[Change]:
    """Every candidate change point, with q-values; `confirmed` marks the ones that pass all three tests."""
    check_window(window)
    return _judged(_candidates(metrics_df, window, min_size, provenance), alpha=alpha, threshold=threshold)


def _candidates(metrics_df, window: int, min_size: int, provenance, keys=None) -> list[Change]:
    """The candidate change points of every series of `metrics_df`, in the order of its series' keys."""
    return _candidates_of(_keyed(metrics_df, provenance), window, min_size, keys)


def _candidates_of(df, window: int, min_size: int, keys=None) -> list[Change]:
    """_candidates of rows already keyed by energy state and board (_keyed)."""
    import numpy as np
    from scipy.stats import mannwhitneyu

    from eitp_bench.analysis.stats import change_points

    if len(df) == 0:
        return []
    keys = keys or series_keys(df)
    values, run_ids, started = df["value"].to_numpy(dtype=float), df["run_id"], df["started_at"]
    candidates: list[Change] = []
    for named, at in _series_positions(df, keys):
        series = values[at]
        if len(series) < 2 * min_size:
            continue
        for k in change_points(series, min_size=min_size):
            before, after = series[max(0, k - window):k], series[k:k + window]
            b, a = float(np.median(before)), float(np.median(after))
            if b == 0 or (np.ptp(np.r_[before, after]) == 0):
                continue
            p = float(mannwhitneyu(before, after, alternative="two-sided").pvalue)
            candidates.append(Change(named["suite"], named["task"], named["arm"], named["name"],
                                     named["hardware_profile_id"], index=int(k), run_id=str(run_ids.iat[at[k]]),
                                     started_at=str(started.iat[at[k]]), before=b, after=a,
                                     relative=a / b - 1, p_value=p, energy_state=named["energy_state"] or "",
                                     board=named.get("board")))
    return candidates


def _series_positions(df, keys):
    """(the series' key values by name, its rows' positions in time order) per series of `df`, in the
    order of groupby(keys, sort=True, dropna=False): what iterating the frame sorted by started_at
    (stable) and grouped gives, without a sorted copy of the frame or a frame per series (a metric name's
    272 727 rows at 1 000 000 records took 140 MiB more that way)."""
    import numpy as np

    started = df["started_at"].reset_index(drop=True)
    rank = np.empty(len(df), dtype=np.int64)
    rank[started.sort_values(kind="stable").index.to_numpy()] = np.arange(len(df))
    series = df.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
    order = np.lexsort((rank, series))  # by series, then by start time: ranks are distinct
    bounds = np.flatnonzero(np.diff(series[order])) + 1
    # each series' key values from its first row: a column made Python objects whole (from Arrow text, a
    # str per row) cost more than the rows' read
    firsts = order[np.r_[0, bounds]]
    named = zip(*(df[k].take(firsts).to_numpy(dtype=object) for k in keys))
    for at, values in zip(np.split(order, bounds), named):
        yield {k: _plain(v) for k, v in zip(keys, values)}, at


def _judged(candidates: list[Change], *, alpha: float, threshold: float) -> list[Change]:
    """q-values by Benjamini–Hochberg across all candidates; confirmed and kind set."""
    from eitp_bench.analysis.stats import benjamini_hochberg

    if not candidates:
        return []
    q = benjamini_hochberg([c.p_value for c in candidates])
    for c, qv in zip(candidates, q):
        c.q_value = float(qv)
        c.confirmed = c.q_value <= alpha and abs(c.relative) >= threshold
        direction = metric_direction(c.metric)
        if direction:
            better = c.relative > 0 if direction == "higher_is_better" else c.relative < 0
            c.kind = "improvement" if better else "regression"
    return candidates


@dataclass
class StoreChanges:
    tested: int  # series with enough points for a change point
    total: int  # all series
    changes: list  # find_changes' result over every series ([] when the window is invalid: check_window)
    rows_read: list  # the rows read per page (store_queries.series_pages), in reading order: what was held at once
    keys: list = None  # the series keys decided for the whole store (series_keys)
    states: object = None  # hwstate.StateLabels: each stored state's label and board, by its id


def store_changes(store, *, window: int = 8, threshold: float = 0.05, alpha: float = 0.05,
                  min_size: int = 3, extra: tuple = (), on_page=None) -> StoreChanges:
    """testable_series and find_changes over every series of a SQL store, reading ONE PAGE's rows at a time
    (a metric name × suite × task × arm, store_queries.series_pages: a series never spans two), so memory
    grows with the largest page, not the store or a metric name (272 727 rows at 1 000 000 records).
    The result is that of one read of every series: the keys (board or not) are decided once for the whole
    store, the candidates are put in the order of a whole read's series, and Benjamini–Hochberg runs over
    all of them at the end.
    `extra` columns (store_queries.SERIES_EXTRA) are read beside a series' own, and `on_page(name, keyed,
    keys)` sees each page's keyed rows (ok runs, energy state and board) before they are dropped: the
    history site summarises its pages from them in the same pass (analysis/history.py).
    Each row's energy state and board come from its run's energy_state_id, read beside it, and the few
    distinct states (hwstate.StateLabels): nothing is held per run between the pages."""
    from eitp_bench.analysis.hwstate import state_labels
    from eitp_bench.analysis.rounds import energy_state_key
    from eitp_bench.store import queries as store_queries

    labels = state_labels(store_queries.state_values(store))  # once: every page's rows are labelled from them
    keys = series_keys(energy_state_key(store_queries.profile_states(store), labels))
    if "energy_state_id" not in extra:  # what `labels` label each row by
        extra = (*extra, "energy_state_id")
    tested = total = 0
    candidates: list[tuple[tuple, int, Change]] = []
    rows_read: list[int] = []
    for name in store_queries.series_names(store):
        for page in store_queries.series_pages(store, [name], extra=extra):
            rows_read.append(len(page))
            keyed = _keyed(page, labels)
            del page
            t, n = _testable(keyed, min_size, keys)
            tested, total = tested + t, total + n
            if on_page is not None:
                on_page(name, keyed, keys)
            found = _candidates_of(keyed, window, min_size, keys) if window >= 2 else []
            del keyed
            candidates += [(_series_order(c, keys), len(candidates) + i, c) for i, c in enumerate(found)]
    # a whole read groups by (suite, task, arm, name, …), sorted, missing values last; within a series the
    # candidates keep their order (the running index)
    changes = [c for _, _, c in sorted(candidates, key=lambda t: t[:2])]
    return StoreChanges(tested, total, _judged(changes, alpha=alpha, threshold=threshold), rows_read, keys,
                        labels)


def _series_order(change: Change, keys: list[str]) -> tuple:
    field = {"name": "metric"}
    values = [getattr(change, field.get(k, k)) for k in keys]
    return tuple((v is None, "" if v is None else v) for v in values)


def missing(v) -> bool:
    """A key or label value that is not there: None, or NaN (pandas' None once in a float column)."""
    return v is None or (isinstance(v, float) and v != v)


def _plain(v):
    return None if missing(v) else v


def confirmed(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.confirmed]

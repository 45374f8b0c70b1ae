"""Cross-hardware comparison: workloads × hardware profiles, normalised to a reference.

Only runs with the same suite_config_hash are comparable (same model, data, steps),
so there is one table per hash. Cells are medians with a distribution-free 95 % CI;
the normalised figure is "× reference, higher is better" (inverted for
lower-is-better metrics), summarised by a geometric-mean row.

Runs whose boards ran in a different energy-moving state (power limit, locked clocks, power profile,
driver major: analysis/hwstate.py) get tables of their own, each saying NOT COMPARABLE with the other.
A profile whose runs came from several boards shows the per-board medians and their spread, and its
interval is widened by the between-board component (analysis/boards.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from eitp_bench.analysis.boards import BoardSpread, board_spread, widened
from eitp_bench.errors import UserError

# (metric in the store, label, higher is better): the workloads' names first, then older aliases.
# tokens_per_j is derived per run as 1 / (J/token).
COMPARED = [
    ("step_s", "s/step", False),
    ("train_step_s", "s/step", False),
    ("tokens_per_s", "tokens/s", True),
    ("joules_per_token", "J/token", False),
    ("gen_joules_per_token", "J/token", False),
    ("tokens_per_j", "tokens/J", True),
]
JOULES_PER_TOKEN = ("joules_per_token", "gen_joules_per_token")
COMPARED_NAMES = [name for name, _, _ in COMPARED]
_LABELS = {name: (label, hib) for name, label, hib in COMPARED}
_ORDER = {name: i for i, name in enumerate(COMPARED_NAMES)}  # a table's rows: in COMPARED's order
# what compare_store reads of each run beside its metric: a table's keys (its configuration is the read's,
# every run read is ok); the configuration hash was 64 characters of text on every row
COMPARE_RUN_COLUMNS = ("suite", "task", "arm", "hardware_profile_id")


@dataclass
class Cell:
    median: float
    ci_low: float
    ci_high: float
    n: int
    normalised: Optional[float] = None  # × reference, > 1 better
    boards: Optional["BoardSpread"] = None  # several boards: their medians, spread and between-board sd
    runs_ci: Optional[tuple[float, float]] = None  # the runs-only interval, before the board component


@dataclass
class Row:
    task: str
    arm: str
    metric: str
    label: str
    higher_is_better: bool
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class CompareTable:
    config_hash: str
    suites: list[str]
    profiles: list[str]
    reference: Optional[str]
    rows: list[Row]
    geomean: dict[str, Optional[float]]
    note: str = ""
    energy_state: str = ""  # hwstate.state_label shared by the table's runs ('' = none recorded)


def compare_hardware(metrics_df, *, reference: Optional[str] = None, provenance=None) -> list[CompareTable]:
    """One table per suite_config_hash × energy state; `reference` defaults to the profile with the most runs.
    `provenance` (the provenance frame) gives each run's hardware state and board."""
    df = _comparable(metrics_df, provenance)
    if df.empty:
        raise UserError("no comparable metrics in the store (s/step, tokens/s, J/token)",
                        fix="run a suite with training or generation tasks first")
    _check_reference(reference, set(df["hardware_profile_id"]))
    return _tables(df, reference)


def compare_store(store, *, reference: Optional[str] = None) -> list[CompareTable]:
    """compare_hardware of a SQL store's compared metrics, read one configuration at a time and, within it,
    one task × arm at a time (store_queries.series_pages): a table's row is one task × arm × metric, so each
    page gives whole rows, and what a table needs across pages (its profiles, suites, and each profile's
    runs, for the reference) is gathered beside them. The tables are those of one read of every
    configuration; the memory grows with the largest task × arm of a configuration, not the store. Only the
    reference's check spans them."""
    from eitp_bench.analysis.hwstate import state_labels
    from eitp_bench.store import queries as store_queries

    tables, profiles = [], set()
    for config_hash in store_queries.config_hashes(store):  # sorted, as the tables are
        states = state_labels(store_queries.state_values(store, config_hash=config_hash))
        parts = _TableParts()
        for page in store_queries.series_pages(store, COMPARED_NAMES, by=("task", "arm"), config_hash=config_hash,
                                               run_columns=COMPARE_RUN_COLUMNS, extra=("seq", "energy_state_id")):
            parts.add(_comparable(page, states))
        profiles |= parts.profiles()
        tables += parts.tables(config_hash, reference)
    if not tables:
        raise UserError("no comparable metrics in the store (s/step, tokens/s, J/token)",
                        fix="run a suite with training or generation tasks first")
    _check_reference(reference, profiles)
    return tables


def _comparable(metrics_df, provenance):
    """The ok runs' compared metrics, tokens/J derived from each positive J/token, with each run's energy
    state and board, and a missing hardware profile as 'unknown'."""
    import pandas as pd

    from eitp_bench.analysis.rounds import energy_state_key, keyed

    df = energy_state_key(metrics_df, provenance)
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    df = df[df["name"].isin(COMPARED_NAMES)]
    per_token = df[df["name"].isin(JOULES_PER_TOKEN)]
    per_token = per_token[per_token["value"] > 0]
    df = pd.concat([df, per_token.assign(name="tokens_per_j", value=1.0 / per_token["value"])], ignore_index=True)
    return keyed(df)  # a missing profile is its own machine: 'unknown'


def _check_reference(reference: Optional[str], profiles: set) -> None:
    if reference is not None and reference not in profiles:
        raise UserError(f"--reference {reference!r} is not a hardware profile in the store",
                        fix=f"use one of: {', '.join(sorted(profiles))}")


def _tables(df, reference: Optional[str]) -> list[CompareTable]:
    """The tables of `df` (_comparable), one per configuration hash × energy state, in that order."""
    tables = []
    for config_hash, rows in df.groupby("suite_config_hash", sort=True):
        parts = _TableParts()
        parts.add(rows)
        tables += parts.tables(config_hash, reference)
    return tables


class _TableParts:
    """One configuration's tables, gathered from its _comparable rows a part at a time: every row of a task
    × arm must come in one part (a table's row is a task × arm × metric); what spans parts (each energy
    state's suites, profiles and each profile's runs) is kept as sets."""

    def __init__(self):
        self.states: dict[str, dict] = {}  # energy state → {"suites", "runs": {profile: run ids}, "rows"}

    def add(self, df) -> None:
        runs = "seq" if "seq" in df.columns else "run_id"  # seq: an int per run, where the store gave it
        for state, group in df.groupby("energy_state", sort=True):
            entry = self.states.setdefault(state, {"suites": set(), "runs": {}, "rows": []})
            entry["suites"] |= set(map(str, group["suite"].unique()))
            for profile, ids in group.groupby("hardware_profile_id")[runs]:
                entry["runs"].setdefault(profile, set()).update(ids.unique().tolist())
            for (task, arm, name), sel in group.groupby(["task", "arm", "name"]):
                entry["rows"].append(_row(task, arm, name, sel))

    def profiles(self) -> set:
        return {p for entry in self.states.values() for p in entry["runs"]}

    def tables(self, config_hash, reference: Optional[str]) -> list[CompareTable]:
        tables = []
        for state in sorted(self.states):
            entry = self.states[state]
            profiles = sorted(entry["runs"])
            # the profile with the most runs; the first in profile order where several have as many (max)
            ref = reference or max(profiles, key=lambda p: len(entry["runs"][p]))
            note = "" if ref in profiles else f"reference {ref} has no runs with this config hash: not normalised"
            rows = sorted(entry["rows"], key=lambda r: (r.task, r.arm, _ORDER[r.metric]))
            for row in rows:
                _normalise(row, ref)
            geomean = {}
            for p in profiles:
                logs = [math.log(r.cells[p].normalised) for r in rows if p in r.cells and r.cells[p].normalised]
                geomean[p] = math.exp(sum(logs) / len(logs)) if logs else None
            if len(self.states) > 1:
                apart = (f"NOT COMPARABLE with this configuration's runs under another hardware state "
                         f"(here: {state or 'none recorded'}): kept in their own table.")
                note = " ".join(filter(None, [note, apart]))
            tables.append(CompareTable(str(config_hash), sorted(entry["suites"]), profiles,
                                       ref if ref in profiles else None, rows, geomean, note, str(state)))
        return tables


def _row(task, arm, name, sel) -> Row:
    """One task × arm × metric's cells, a profile each (not normalised yet: _normalise)."""
    from eitp_bench.analysis.stats import median_ci

    label, hib = _LABELS[name]
    row = Row(str(task), str(arm), name, label, hib)
    for profile, runs in sel.groupby("hardware_profile_id"):
        med, lo, hi = median_ci(runs["value"].to_numpy())
        cell = Cell(med, lo, hi, len(runs))
        by_board = {str(b): v.tolist() for b, v in runs.dropna(subset=["board"]).groupby("board")["value"]}
        cell.boards = board_spread(by_board)
        if cell.boards is not None:  # a new board of this SKU may sit anywhere in the boards' spread
            cell.runs_ci = (lo, hi)
            cell.ci_low, cell.ci_high = widened(med, lo, hi, cell.boards.tau)
        row.cells[profile] = cell
    return row


def _normalise(row: Row, ref: str) -> None:
    ref_cell = row.cells.get(ref)
    for cell in row.cells.values():
        if ref_cell and ref_cell.median > 0 and cell.median > 0:
            ratio = cell.median / ref_cell.median
            cell.normalised = ratio if row.higher_is_better else 1 / ratio


def hash_note(tables: list[CompareTable]) -> str:
    if len(tables) <= 1:
        return "All runs share one suite config hash."
    return (f"{len(tables)} different suite config hashes: runs are compared only within the same hash, "
            "one table each.")

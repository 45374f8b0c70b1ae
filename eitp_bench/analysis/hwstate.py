"""The hardware state that moves energy, read from provenance: what keeps runs apart, and which board.

Runs whose boards ran under a different enforced power limit, with clocks locked or not, under another
workload power profile or another driver major version draw different joules for the same work: they
are never pooled (resultset.py keys groups on `energy_state`; compare and regress split on it). Each
run's boards are identified by GPU UUID (serial where NVML gives one): compare reports the spread
between boards of one hardware profile, regress keys a series by board where a fleet has several.

The state comes from `provenance.hardware["state"]` (runner/worker.py: hardware/state.run_state).
Runs without it (older records, CPU-only runs) have the empty state: comparable with each other only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from eitp_bench.analysis.per_object import object_codes, once_per_object
from eitp_bench.store.column_read import all_distinct, positions_in

# field -> how it reads in a NOT COMPARABLE note
ENERGY_FIELDS = {
    "power_limit_w": "power limit",
    "clocks_locked": "locked clocks",
    "power_profile": "power profile",
    "driver_major": "driver major version",
}


def energy_state(state: Any) -> dict[str, Any]:
    """The energy-moving fields of one run's `hardware.state` (per GPU lists where there are several)."""
    if not isinstance(state, dict):
        return {}
    gpus = [g for g in state.get("gpus") or [] if isinstance(g, dict)]
    out: dict[str, Any] = {}
    if gpus:
        for field in ("power_limit_w", "clocks_locked", "power_profile"):
            values = [g.get(field) for g in gpus]
            out[field] = values[0] if len(set(map(json.dumps, values))) == 1 else values
    driver = state.get("driver_version")
    if driver:
        out["driver_major"] = str(driver).split(".")[0]
    return out


def state_label(state: dict[str, Any]) -> str:
    """'power limit 700 W · locked clocks no · driver major version 550' (empty state: '')."""
    parts = []
    for field, words in ENERGY_FIELDS.items():
        if field not in state or state[field] is None:
            continue
        v = state[field]
        if field == "power_limit_w":
            v = "/".join(f"{x:g} W" if isinstance(x, (int, float)) else "?" for x in (v if isinstance(v, list) else [v]))
        elif field == "clocks_locked":
            v = {True: "yes", False: "no"}.get(v, str(v))
        parts.append(f"{words} {v}")
    return " · ".join(parts)


def boards(state: Any) -> Optional[str]:
    """The run's boards: GPU UUIDs (or serials), '+'-joined; None without GPU state."""
    if not isinstance(state, dict):
        return None
    ids = [g.get("uuid") or g.get("serial") for g in state.get("gpus") or [] if isinstance(g, dict)]
    ids = [str(i) for i in ids if i]
    return "+".join(ids) if ids else None


def run_states(provenance) -> dict[str, tuple[dict, Optional[str]]]:
    """run_id → (energy state, board) from a provenance frame (`hardware.state` column)."""
    if provenance is None or len(provenance) == 0 or "hardware.state" not in provenance.columns:
        return {}
    read = once_per_object(provenance["hardware.state"].tolist(), lambda s: (energy_state(s), boards(s)))
    return dict(zip(map(str, provenance["run_id"].tolist()), read))


@dataclass(frozen=True)
class RunLabels:
    """Each run's energy-state label ('' where none was recorded) and board (None), by run_id: what
    with_state adds to a frame. `regress` labels every metric name's rows by one of these, made once from
    the store's states (per name, a million runs' states took 1.5 s each). Rows find their run through a
    hashed index of the run ids, not a dict lookup per row: those took 5 s over the 5 million metric rows
    of a 1 000 000-record store."""

    run_ids: Any  # pandas Index of the runs with a state, each once
    labels: Any  # numpy object array: each run's label, then '' for a run not in run_ids
    boards: Any  # numpy object array: each run's board, then None for a run not in run_ids


def run_labels(provenance) -> RunLabels:
    import numpy as np
    import pandas as pd

    states = run_states(provenance)  # a run stored twice: its last row
    labels, boards = np.empty(len(states) + 1, dtype=object), np.empty(len(states) + 1, dtype=object)
    labels[:] = [*once_per_object([s for s, _ in states.values()], state_label), ""]
    boards[:] = [*(b or None for _, b in states.values()), None]
    return RunLabels(pd.Index(list(states), dtype=object), labels, boards)


@dataclass(frozen=True)
class StateLabels:
    """Each stored hardware state's label and board, by its id in the store (runs.energy_state_id): rows
    read with that id beside them (store_queries.series_metrics, extra "energy_state_id") are labelled
    with no row per run anywhere. regress and compare held each ok run's id and parsed state for this
    before: at 1 000 000 records, 1 000 000 runs' ids were 400 MiB of the process at regress' peak."""

    ids: Any  # pandas Index of the state ids
    labels: Any  # numpy object array: each id's label, then '' for a run without a state
    boards: Any  # numpy object array: each id's board, then None for a run without a state

    def codes(self, state_ids) -> "RunStateCodes":
        """The RunStateCodes of a column of state ids (null: no state recorded)."""
        import numpy as np

        at = self.ids.get_indexer(state_ids)  # -1: no state, or an id not read (never: state_values reads all)
        return RunStateCodes(np.where(at >= 0, at, len(self.ids)), self.labels, self.boards)


def state_labels(states: dict) -> StateLabels:
    """StateLabels of store_queries.state_values' {state id: parsed state}."""
    import numpy as np
    import pandas as pd

    ids = sorted(states)
    labels, board_of = np.empty(len(ids) + 1, dtype=object), np.empty(len(ids) + 1, dtype=object)
    labels[:] = [*(state_label(energy_state(states[i])) for i in ids), ""]
    board_of[:] = [*(boards(states[i]) for i in ids), None]
    return StateLabels(pd.Index(ids, dtype="int64"), labels, board_of)


def with_state(df, provenance):
    """`df` plus `energy_state` (a label; '' where none was recorded) and `board` (None) per run_id.
    `provenance`: a provenance frame, or its run_labels, or StateLabels for rows with an `energy_state_id`
    column (the id is then replaced by the label and board)."""
    import numpy as np
    import pandas as pd

    if df is None or len(df) == 0:
        return df
    if isinstance(provenance, StateLabels):
        states = provenance.codes(df["energy_state_id"])
        df = df.drop(columns="energy_state_id")
    else:
        states = run_state_codes(df["run_id"], provenance)
    # object columns of the few shared label and board objects (8 bytes a row): as str columns each row held
    # its own copy of the text (45 000 energy entries at 1 000 000 records: 6.6 MiB)
    boards = states.boards[states.codes]
    return df.assign(energy_state=pd.Series(states.labels[states.codes], index=df.index, dtype=object),
                     board=pd.Series(boards, index=df.index, dtype=object) if any(b is not None for b in boards)
                     else np.nan)


@dataclass(frozen=True)
class RunStateCodes:
    """Per entry of a run_id column: a code for its run's recorded state, and per code the state's label
    ('' where none was recorded) and board (None). Entries may share a code."""

    codes: Any  # numpy int array, one per entry
    labels: Any  # numpy object array, one per code
    boards: Any  # numpy object array, one per code

    def label_codes(self):
        """Per entry, a code equal where the labels are (the comparability key's third part)."""
        import pandas as pd

        return pd.factorize(self.labels)[0][self.codes]


def run_state_codes(run_ids, provenance) -> RunStateCodes:
    """Each entry's state, found by position and per state object (the runs of one machine share one) from a
    provenance frame: no dict or string per run. For the 125 000 runs a report reads at 1 000 000 records,
    a label string per run was 18 MiB of Arrow text and dicts of their ids 20 MiB more. `provenance` may
    also be RunLabels (regress) or a frame with a run twice (made into RunLabels: the last row wins)."""
    import numpy as np

    if isinstance(provenance, RunLabels) or not _unique_runs(provenance):
        known = provenance if isinstance(provenance, RunLabels) else run_labels(provenance)
        at = known.run_ids.get_indexer(run_ids.astype(str).astype(object))  # -1: a run without a state
        return RunStateCodes(np.where(at >= 0, at, len(known.run_ids)), known.labels, known.boards)
    at = positions_in(provenance["run_id"], run_ids)  # -1: no provenance
    column = provenance["hardware.state"]
    codes, firsts = object_codes(column)  # no list of every run's state where the column is SharedObjects
    states = {i: column.iloc[i] for i in firsts}
    none = len(firsts)  # the code of a run without provenance
    labels = np.array([state_label(energy_state(states[i])) for i in firsts] + [""], dtype=object)
    board_of = np.empty(none + 1, dtype=object)
    board_of[:none] = [boards(states[i]) for i in firsts]
    return RunStateCodes(np.where(at >= 0, codes[at], none), labels, board_of)


def _unique_runs(provenance) -> bool:
    return provenance is not None and len(provenance) > 0 and "hardware.state" in provenance.columns and \
        all_distinct(provenance["run_id"])


def not_comparable_note(label: str, others: list[str], parsed: dict[str, dict]) -> Optional[str]:
    """'NOT COMPARABLE with runs at …: power limit differs (700 W vs 350 W)' for a group whose
    configuration and profile also ran under other states; None when it is the only one."""
    if not others:
        return None
    notes = []
    for other in others:
        fields = [ENERGY_FIELDS[f] + f" ({_value(parsed[label], f)} vs {_value(parsed[other], f)})"
                  for f in ENERGY_FIELDS if parsed[label].get(f) != parsed[other].get(f)]
        notes.append(f"{other or 'no recorded state'}: {', '.join(fields)} differ")
    return "NOT COMPARABLE with this configuration's other runs, kept apart: " + "; ".join(notes)


def _value(state: dict, field: str) -> str:
    text = state_label({field: state.get(field)})
    return text[len(ENERGY_FIELDS[field]) + 1:] if text else "unknown"


def cpu_label(state: Any) -> str:
    """'governor performance · boost off · SMT on' from a run's `hardware.state.cpu` ('' when unread)."""
    cpu = state.get("cpu") if isinstance(state, dict) else None
    if not isinstance(cpu, dict):
        return ""
    parts = []
    if cpu.get("governors"):
        parts.append("governor " + "/".join(cpu["governors"]))
    if cpu.get("boost") is not None:
        parts.append("boost " + ("on" if cpu["boost"] else "off"))
    if cpu.get("smt"):
        parts.append(f"SMT {cpu['smt']}")
    return " · ".join(parts)


def arm_states(metrics, energy, provenance) -> dict[str, dict]:
    """Per arm: the recorded state of its runs (power limit, clocks locked, boards), the hottest window,
    and how many GPU windows ran throttled: the report's per-arm hardware row."""
    from eitp_bench.flags import THROTTLE_CODES

    if metrics is None or len(metrics) == 0:
        return {}
    if provenance is not None and len(provenance):  # only these runs' states are read, not every run's
        provenance = provenance[provenance["run_id"].astype(str).isin(set(map(str, metrics["run_id"])))]
    states = run_states(provenance)
    cpus = ({str(r): cpu_label(s) for r, s in zip(provenance["run_id"], provenance["hardware.state"])}
            if provenance is not None and len(provenance) and "hardware.state" in provenance.columns else {})
    out: dict[str, dict] = {}
    for arm, runs in metrics.groupby("arm", sort=True)["run_id"]:
        ids = set(map(str, runs))
        labels = sorted({state_label(states[r][0]) for r in ids if r in states} - {""})
        board_ids = sorted({states[r][1] for r in ids if r in states and states[r][1]})
        row = {"state": labels, "boards": len(board_ids), "cpu": sorted({cpus[r] for r in ids if r in cpus} - {""}),
               "throttled_windows": 0, "windows": 0, "max_temperature_c": None}
        if energy is not None and len(energy) and "hw_state" in energy.columns:
            e = energy[energy["run_id"].astype(str).isin(ids) & energy["hw_state"].notna()]
            row["windows"] = int(len(e))
            row["throttled_windows"] = int(e["flags"].map(lambda c: bool(set(c) & THROTTLE_CODES)).sum())
            temps = [s.get("temperature_c", {}).get("max") for s in e["hw_state"] if isinstance(s, dict)]
            temps = [t for t in temps if t is not None]
            row["max_temperature_c"] = max(temps) if temps else None
        out[str(arm)] = row
    return out


def profile_per_state(df):
    """Energy tables and frontiers key on the hardware profile: where one profile ran under several
    energy states, each state becomes its own 'profile (state)', so no table pools them."""
    if df is None or len(df) == 0 or "energy_state" not in df.columns:
        return df
    several = df.groupby("hardware_profile_id")["energy_state"].transform("nunique") > 1
    if not several.any():
        return df
    profiles = df["hardware_profile_id"].astype(str)  # text, not the store's categories: new names are made
    label = profiles + " (" + df["energy_state"].replace("", "no state recorded") + ")"
    return df.assign(hardware_profile_id=profiles.where(~several, label))

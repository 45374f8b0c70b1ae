"""The comparability groups of a store, newest first, found from SQL aggregates without reading runs.

`ResultSet.groups()` keys groups on (configuration hash, hardware profile, energy state) and orders them by
their newest run, newest first. `verdict_groups` gives the same list from `store.queries.group_rows`: one
row per recorded state JSON, merged here on the state's label (hwstate.state_label; several states may
read the same label), ordered exactly as ResultSet orders them (pandas' sort on the groups in the order
pandas meets them: their first stored run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class StoredGroup:
    """One comparability group as `ResultSet.groups()` would find it."""

    config_hash: str
    hardware_profile_id: str  # 'unknown' where the run stored none (resultset._keyed)
    energy_state: str  # hwstate.state_label of its runs' recorded state ('' = none)
    suite: str  # the suite of its first stored run (the name the group is shown under)
    latest: str  # its newest run's started_at
    first_seq: int  # store order of its first run: the order pandas meets the groups in

    @property
    def label(self) -> str:
        """How an omitted group is listed (findings._verdict_groups)."""
        return f"{self.suite} ({self.config_hash[:8]}) · {self.hardware_profile_id}"


def verdict_groups(store, *, suite: Optional[str] = None) -> list[StoredGroup]:
    """Every group of the ok runs with finite metrics (of `suite`), newest first."""
    import pandas as pd

    from eitp_bench.analysis.hwstate import energy_state, state_label
    from eitp_bench.store.queries import group_rows, parsed_state

    merged: dict[tuple, list] = {}
    for config_hash, profile, state, latest, first, first_suite in group_rows(store, suite=suite):
        key = (config_hash, profile, state_label(energy_state(parsed_state(state))))
        seen = merged.setdefault(key, [latest, first, first_suite])
        if latest > seen[0]:
            seen[0] = latest
        if first < seen[1]:
            seen[1], seen[2] = first, first_suite
    keys = sorted(merged, key=lambda k: merged[k][1])  # first-seen order, as pandas groups them
    # the same sort as ResultSet.groups (sort_values, descending) on the same first-seen order
    order = pd.Series([merged[k][0] for k in keys]).sort_values(ascending=False).index
    return [StoredGroup(*keys[i], suite=merged[keys[i]][2], latest=merged[keys[i]][0], first_seq=merged[keys[i]][1])
            for i in order]

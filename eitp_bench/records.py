"""The result record: the one contract between runner, store, analysis and reports.

One repetition is one fresh process running one arm through the suite's tasks; it
writes one `RunRecord` per task (same repetition number and seed).
Every energy entry says how it was obtained (`method`); estimated joules are kept
in their own entries and never added to measured ones.

The schema is declared here once: meters, the monitor and workloads build these models, and the
store derives its columns, inserts and frames from their fields. Records written under an older
`schema_version` are brought up to date by `upgrade_record` (applied by `RunRecord` validation, so
the store, `import` and the runner's per-record JSON all read old records alike).
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from eitp_bench.flags import Flag, flag, legacy_flag

# 6: GPU energy entries carry the window's hardware state (hw_state: limit, clocks, throttling, temperature)
# 5: energy entries carry the cross-check (sampled_joules, crosscheck_tolerance_j)
SCHEMA_VERSION = 6  # 4: metric value may be null (not finite), metric flags; 3: ranks (world_size, nnodes; rank and host per energy entry); 2: coded flags; 1: string flags

Method = Literal["counter", "sampled", "estimated"]
MEASURED_METHODS = frozenset({"counter", "sampled"})
Status = Literal["ok", "failed", "interrupted"]


RUN_ID_FORMAT = r"^[0-9a-f]{32}$"  # what new_run_id writes; never empty, never a path


def new_run_id() -> str:
    return uuid.uuid4().hex


def _iso_time(value: Any, field: str) -> Any:
    """An ISO 8601 time (what utc_now writes), or ValueError naming the field."""
    if value is None:
        return value
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be an ISO 8601 time such as 2026-01-05T10:00:00+00:00, got {str(value)[:40]!r}") from None
    return value


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _non_finite_to_null(data: Any, fields: tuple[str, ...]) -> Any:
    """NaN and ±inf are not measurements: the field becomes None and a `not_finite` flag says what it was.

    Done on the model, so the runner's JSON, the store (SQLite turns NaN into NULL behind a NOT NULL,
    which aborted the whole run) and every reader agree; analysis skips a None, never reads it as 0.
    """
    if not isinstance(data, dict):
        return data
    bad = {f: data[f] for f in fields if isinstance(data.get(f), float) and not math.isfinite(data[f])}
    if not bad:
        return data
    notes = [flag("not_finite", f"{f} was {v!r}: stored as null") for f, v in bad.items()]
    return {**data, **{f: None for f in bad}, "flags": [*(data.get("flags") or []), *notes]}


class Metric(_Model):
    name: str  # tokens_per_s, step_s, val_ppl, retrieval_acc@512, model_bytes …
    value: Optional[float]  # None only when the task produced NaN or an infinity (flag not_finite)
    unit: str
    window: Optional[str] = None  # the monitor window it belongs to, if any
    flags: list[Flag] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, data: Any) -> Any:
        return _non_finite_to_null(data, ("value",))


class EnergyEntry(_Model):
    """Energy of one device × domain over one window. `joules is None` means invalid: see flags.

    Meters build these without a window (they only know two marks); the monitor names it.
    """

    window: Optional[str] = None  # None only while a meter computes it; every stored entry has one
    device: str  # gpu:0, cpu:0
    domain: str  # gpu, package, core, uncore, dram, psys
    joules: Optional[float]  # None when the domain is flagged invalid: never a silent 0
    method: Method
    meter: str  # rapl, nvml, estimate, pyrapl
    duration_s: float = Field(ge=0)
    samples: int = 0
    max_gap_s: Optional[float] = None
    wraps: int = 0
    flags: list[Flag] = Field(default_factory=list)  # coded reasons (eitp_bench/flags.py)
    idle_watts: Optional[float] = None
    # Multi-rank repetitions (torchrun): which rank's process read this sensor and on which host. A GPU
    # entry belongs to the rank that owns that GPU; CPU/DRAM entries to local rank 0 of each node, so
    # summing a record's entries counts every sensor once. None for a single-process repetition.
    rank: Optional[int] = None
    host: Optional[str] = None
    # Where a counter gave `joules` and power was sampled too (NVML): the samples' integral over the same
    # window, a cross-check only (never the figure), and how far apart the two may be (J) given the
    # window's edges (energy/crosscheck.py). Merged phases carry the sums and are checked on them.
    sampled_joules: Optional[float] = None
    crosscheck_tolerance_j: Optional[float] = None
    # GPU entries: the board's state over the window (energy/gpu_state.window_state): power limit, SM and
    # memory clocks at both edges, temperature start/end/max, clock-event reasons, and the share of the
    # window spent power- or thermal-capped (NVML violation counters). None where it was not read.
    hw_state: Optional[dict[str, Any]] = None

    @model_validator(mode="before")
    @classmethod
    def _drop_derived(cls, data: Any) -> Any:
        # net_joules is derived from the fields above; dumps carry it, reading recomputes it.
        if isinstance(data, dict) and "net_joules" in data:
            data = {k: v for k, v in data.items() if k != "net_joules"}
        data = _non_finite_to_null(data, ("joules", "idle_watts", "max_gap_s", "sampled_joules",
                                          "crosscheck_tolerance_j"))
        joules = data.get("joules") if isinstance(data, dict) else None
        if isinstance(joules, (int, float)) and not isinstance(joules, bool) and joules < 0:  # never a measurement
            data = {**data, "joules": None,
                    "flags": [*(data.get("flags") or []), flag("negative", f"joules was {joules!r}: stored as null")]}
        return data

    @property
    def valid(self) -> bool:
        return self.joules is not None

    @property
    def watts(self) -> Optional[float]:
        if self.joules is None or self.duration_s <= 0:
            return None
        return self.joules / self.duration_s

    @property
    def sample_rate_hz(self) -> Optional[float]:
        return self.samples / self.duration_s if self.duration_s > 0 and self.samples else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def net_joules(self) -> Optional[float]:
        """joules − idle_watts × duration_s (None without both)."""
        if self.joules is None or self.idle_watts is None:
            return None
        return self.joules - self.idle_watts * self.duration_s

    def as_dict(self) -> dict[str, Any]:
        """The JSON form plus the derived rates (what `measure --json` prints)."""
        return {**self.model_dump(mode="json"), "watts": self.watts, "sample_rate_hz": self.sample_rate_hz}


class TimelinePoint(_Model):
    window: str
    device: str
    domain: str
    t: float  # seconds since the record's first window opened
    watts: float


class Provenance(_Model):
    eitp_bench_version: str
    git_commit: Optional[str] = None
    python: str
    torch: Optional[str] = None
    transformers: Optional[str] = None
    cuda: Optional[str] = None
    driver: Optional[str] = None
    platform: str
    hardware_profile_id: Optional[str] = None
    hardware: dict[str, Any] = Field(default_factory=dict)  # detected names: gpu, cpu, power limit …


class RunRecord(_Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str = Field(default_factory=new_run_id, pattern=RUN_ID_FORMAT)
    suite: str
    suite_config_hash: str
    arm: str  # baseline, eitp-paper, eitp-coded, eitp-compressed, baseline-int8 …
    task: str  # lm, retrieval, generate, train, compress, derivation …
    size: str  # tiny, small, medium, or a path
    seed: int = Field(ge=-(2**63), le=2**63 - 1)  # a store column is a 64-bit integer
    repetition: int = Field(ge=0, le=2**63 - 1)
    device: str = "cpu"  # torch device the workload ran on
    world_size: int = Field(1, ge=1)  # ranks in this repetition (torchrun), 1 for one process
    nnodes: int = Field(1, ge=1)  # machines those ranks ran on
    status: Status = "ok"
    error: Optional[str] = None
    started_at: str = Field(default_factory=utc_now)
    finished_at: Optional[str] = None
    config: dict[str, Any] = Field(default_factory=dict)  # the exact resolved config of this repetition
    provenance: Provenance
    metrics: list[Metric] = Field(default_factory=list)
    energy: list[EnergyEntry] = Field(default_factory=list)
    timeline: list[TimelinePoint] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        return upgrade_record(data) if isinstance(data, dict) else data

    @field_validator("seed", "repetition", "world_size", "nnodes", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        if isinstance(value, (str, bool)):  # "0" is text, True is not a count: never turned into a number
            raise ValueError(f"must be an integer, got {type(value).__name__} {str(value)[:40]!r}")
        return value

    @field_validator("started_at", "finished_at")
    @classmethod
    def _times(cls, value: Any, info) -> Any:
        return _iso_time(value, info.field_name)

    @model_validator(mode="after")
    def _windows_named(self) -> "RunRecord":
        if any(e.window is None for e in self.energy):
            raise ValueError("every energy entry of a record needs its window")
        return self

    def metric(self, name: str) -> Optional[float]:
        for m in self.metrics:
            if m.name == name:
                return m.value
        return None


# --- upgrades: one step per schema version, applied in order ---------------------------------


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """v2: a flag is {code, message}; v1 flags were plain strings (the message; code inferred)."""
    energy = [
        {**e, "flags": [legacy_flag(f).model_dump() if isinstance(f, str) else f for f in e.get("flags") or []]}
        if isinstance(e, dict) else e  # an EnergyEntry already built is current
        for e in data.get("energy") or []
    ]
    return {**data, "energy": energy, "schema_version": 2}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    """v3: multi-rank fields; every earlier record ran as one process on one machine."""
    return {**data, "world_size": data.get("world_size", 1), "nnodes": data.get("nnodes", 1), "schema_version": 3}


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    """v4: a metric may carry flags and a null value (it was NaN or infinite); every v3 metric was finite."""
    return {**data, "schema_version": 4}


def _v4_to_v5(data: dict[str, Any]) -> dict[str, Any]:
    """v5: energy entries may carry the cross-check's figures; a v4 entry's were not kept (None)."""
    return {**data, "schema_version": 5}


def _v5_to_v6(data: dict[str, Any]) -> dict[str, Any]:
    """v6: GPU energy entries may carry the window's hardware state; a v5 entry's was not read (None)."""
    return {**data, "schema_version": 6}


UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5, 5: _v5_to_v6,
}  # version n -> n + 1


def upgrade_record(data: dict[str, Any], to: int = SCHEMA_VERSION) -> dict[str, Any]:
    """A record dict (JSON form) brought from its `schema_version` to `to`; the input is not changed.

    A dict without `schema_version` is taken as current. ValueError for a record from a newer eitp-bench.
    """
    version = data.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"schema_version must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"record schema v{version} was written by a newer eitp-bench (this one reads up to v{SCHEMA_VERSION}); "
            "upgrade eitp-bench to read it"
        )
    while version < to:
        data = UPGRADES[version](data)
        version += 1
    return data

"""The result record: the one contract between runner, store, analysis and reports.

One repetition is one fresh process running one arm through the suite's tasks; it
writes one `RunRecord` per task (same repetition number and seed).
Every energy entry says how it was obtained (`method`); estimated joules are kept
in their own entries and never added to measured ones.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

Method = Literal["counter", "sampled", "estimated"]
MEASURED_METHODS = frozenset({"counter", "sampled"})
Status = Literal["ok", "failed", "interrupted"]


def new_run_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metric(_Model):
    name: str  # tokens_per_s, step_s, val_ppl, retrieval_acc@512, model_bytes …
    value: float
    unit: str
    window: Optional[str] = None  # the monitor window it belongs to, if any


class EnergyEntry(_Model):
    window: str
    device: str  # gpu:0, cpu:0
    domain: str  # gpu, package, core, uncore, dram, psys
    joules: Optional[float]  # None when the domain is flagged invalid: never a silent 0
    method: Method
    meter: str  # rapl, nvml, estimate, pyrapl
    duration_s: float
    samples: int = 0
    max_gap_s: Optional[float] = None
    wraps: int = 0
    flags: list[str] = Field(default_factory=list)  # reasons, human readable
    idle_watts: Optional[float] = None
    net_joules: Optional[float] = None  # joules − idle_watts × duration_s


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
    run_id: str = Field(default_factory=new_run_id)
    suite: str
    suite_config_hash: str
    arm: str  # baseline, eitp-paper, eitp-coded, eitp-compressed, baseline-int8 …
    task: str  # lm, retrieval, generate, train, compress, derivation …
    size: str  # tiny, small, medium, or a path
    seed: int
    repetition: int
    device: str = "cpu"  # torch device the workload ran on
    started_at: str = Field(default_factory=utc_now)
    finished_at: Optional[str] = None
    status: Status = "ok"
    error: Optional[str] = None
    config: dict[str, Any] = Field(default_factory=dict)  # the exact resolved config of this repetition
    provenance: Provenance
    metrics: list[Metric] = Field(default_factory=list)
    energy: list[EnergyEntry] = Field(default_factory=list)
    timeline: list[TimelinePoint] = Field(default_factory=list)

    def metric(self, name: str) -> Optional[float]:
        for m in self.metrics:
            if m.name == name:
                return m.value
        return None

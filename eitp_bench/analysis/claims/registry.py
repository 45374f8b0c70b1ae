"""The claims registry: a paper's claims as YAML data (eitp_bench/claims/*.yaml), read into `Claim` models.

A claim names a metric, a task, a candidate and a baseline arm, a direction and a threshold (a ratio of
medians), or — for bounds like Theorem 3 — a measured metric that must stay within `epsilon` of a bound
metric; it may carry a quality gate and a learned-task gate. `load_claims(name_or_path)` refuses a bad
file with one clear message.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eitp_bench.errors import UserError


Direction = Literal["higher_is_better", "lower_is_better"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QualityGate(_Model):
    """Either an absolute cap on a metric (`max_value`) or a maximum relative loss against the baseline."""

    metric: str
    task: Optional[str] = None  # default: the claim's task
    arm: Optional[str] = None  # for max_value: whose metric (default: the candidate)
    direction: Optional[Direction] = None  # for max_relative_loss: which way is better
    max_relative_loss: Optional[float] = Field(default=None, ge=0)
    max_value: Optional[float] = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.max_relative_loss is None) == (self.max_value is None):
            raise ValueError("give exactly one of max_relative_loss or max_value")
        if self.max_relative_loss is not None and self.direction is None:
            raise ValueError("max_relative_loss needs a direction (higher_is_better or lower_is_better)")
        return self


class LearnedGate(_Model):
    """The baseline must have learned the task: pooled accuracy at the longest distance above chance."""

    metric: str  # e.g. retrieval_acc@* (the longest distance is used)
    count_prefix: str  # e.g. retrieval_n@: queries per distance, to pool accuracies as counts
    chance_metric: str  # e.g. retrieval_chance


class Claim(_Model):
    id: str
    quote: str  # the paper's wording
    paper_figure: str
    metric: str  # may end in "@*": the largest numeric suffix present is used
    task: Optional[str] = None
    candidate: str
    baseline: Optional[str] = None
    kind: Literal["ratio", "bound"] = "ratio"
    direction: Optional[Direction] = None
    threshold: Optional[float] = Field(default=None, gt=0)
    bound_metric: Optional[str] = None  # kind: bound
    epsilon: Optional[float] = Field(default=None, ge=0)  # kind: bound, absolute units of `metric`
    quality_gate: Optional[QualityGate] = None
    energy: bool = False
    to_target: bool = False  # the metric exists only for repetitions that reached the quality target
    learned: Optional[LearnedGate] = None
    count_metric: Optional[str] = None  # queries behind an accuracy: judged as counts (k = value × n)
    group: Literal["headline", "ablation"] = "headline"
    component: Optional[str] = None  # ablation: the EIT-P term the arm keeps
    aspect: Optional[str] = None  # ablation: speed, energy or accuracy
    note: Optional[str] = None  # shown with the verdict (e.g. where each arm ran)

    @model_validator(mode="after")
    def _complete(self):
        if self.kind == "ratio":
            missing = [f for f in ("baseline", "direction", "threshold") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a ratio claim needs {', '.join(missing)}")
        else:
            missing = [f for f in ("bound_metric", "epsilon") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a bound claim needs {', '.join(missing)}")
        return self

    @property
    def claimed(self) -> str:
        if self.kind == "bound":
            return f"{self.metric} − {self.bound_metric} ≤ {self.epsilon:g}"
        op = "≥" if self.direction == "higher_is_better" else "≤"
        return f"{op} {self.threshold:g}×"


class ClaimSet(_Model):
    paper: str
    claims: list[Claim]

    @model_validator(mode="after")
    def _unique_ids(self):
        ids = [c.id for c in self.claims]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate claim ids: {', '.join(dupes)}")
        return self


def load_claims(path_or_name: str | Path = "eitp") -> ClaimSet:
    """Load a claims file by path, or by name from the package's claims/ folder ("eitp")."""
    path = Path(path_or_name)
    if path.is_file():
        text, where = path.read_text(), str(path)
    else:
        resource = resources.files("eitp_bench") / "claims" / f"{path_or_name}.yaml"
        if not resource.is_file():
            known = sorted(p.name[:-5] for p in (resources.files("eitp_bench") / "claims").iterdir()
                           if p.name.endswith(".yaml"))
            raise UserError(
                f"claims file {path_or_name!r} not found (neither a file nor a built-in name)",
                fix=f"give a path to a claims YAML or one of: {', '.join(known) or 'none'}",
            )
        text, where = resource.read_text(), f"eitp_bench/claims/{path_or_name}.yaml"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"{where}: not valid YAML ({err})", fix="fix the YAML syntax at the line shown") from None
    try:
        return ClaimSet.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in err.errors()
        )
        raise UserError(f"{where}: invalid claims file: {problems}",
                        fix="see the schema at the top of eitp_bench/claims/eitp.yaml") from None

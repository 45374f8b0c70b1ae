"""Training objectives, one per arm: what a step backpropagates and what it logs.

Labels follow Hugging Face's convention (the same ids as the input, -100 to ignore): the
model shifts them itself, so every arm's task loss is the model's own LM loss.
"""

from __future__ import annotations

from typing import Optional, Protocol

from torch import Tensor

from eitp_bench.errors import UserError

ARMS = ("baseline", "eitp-paper", "eitp-coded")


class Objective(Protocol):
    name: str  # one of ARMS
    default_lr: Optional[float]  # None: use the suite's lr
    forward_passes_per_step: int  # full model forward passes per step
    max_grad_norm: Optional[float]  # None: no clipping of its own

    def loss(
        self, model, input_ids: Tensor, labels: Tensor, *, step: int, epoch: int
    ) -> tuple[Tensor, dict[str, float]]:
        """The total loss to backpropagate, and every component as a float."""


class BaselineObjective:
    """Plain cross-entropy: the model's own LM loss, one forward pass."""

    name = "baseline"
    default_lr = None
    forward_passes_per_step = 1
    max_grad_norm = None

    def __init__(self, config: dict | None = None):
        self.config = dict(config or {})

    def loss(self, model, input_ids: Tensor, labels: Tensor, *, step: int, epoch: int):
        task = model(input_ids, labels=labels).loss
        value = float(task.detach())
        return task, {"task": value, "total": value}


def make_objective(arm: str, config: dict | None = None) -> Objective:
    """The objective of an arm; `config` overrides its coefficients (unknown keys are an error)."""
    if arm == "baseline":
        if config:
            _check_keys(arm, config, {})
        return BaselineObjective(config)
    if arm == "eitp-paper":
        from eitp_bench.workloads import eitp_paper

        _check_keys(arm, config, eitp_paper.DEFAULTS)
        return eitp_paper.PaperObjective(config)
    if arm == "eitp-coded":
        from eitp_bench.workloads import eitp_coded

        _check_keys(arm, config, eitp_coded.DEFAULTS)
        return eitp_coded.CodedObjective(config)
    raise UserError(f"unknown arm {arm!r}", fix=f"use one of {', '.join(ARMS)}")


def _check_keys(arm: str, config: dict | None, known: dict) -> None:
    unknown = sorted(set(config or {}) - set(known))
    if unknown:
        raise UserError(
            f"arm {arm!r} has no setting(s) {', '.join(unknown)}",
            fix=f"its settings are: {', '.join(sorted(known)) or '(none)'}",
        )

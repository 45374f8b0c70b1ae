"""Training objectives, one per arm: what a step backpropagates and what it logs.

Labels follow Hugging Face's convention (the same ids as the input, -100 to ignore): the
model shifts them itself, so every arm's task loss is the model's own LM loss.

An objective is a loss and nothing more: learning rate, schedule, clipping, precision and batch
are the suite's `train` settings, the same for every arm (a fair experiment varies one thing).
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from eitp_bench.errors import UserError

from eitp_bench.suite.arms import ABLATION_TERMS

ARMS = ("baseline", "eitp-paper", "eitp-coded", *ABLATION_TERMS)


class Objective(Protocol):
    name: str  # one of ARMS
    forward_passes_per_step: int  # full model forward passes per step

    def loss(
        self, model, input_ids: Tensor, labels: Tensor, *, step: int, epoch: int
    ) -> tuple[Tensor, dict[str, float]]:
        """The total loss to backpropagate, and every component as a float."""


class BaselineObjective:
    """Plain cross-entropy: the model's own LM loss, one forward pass."""

    name = "baseline"
    forward_passes_per_step = 1

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
    if arm in ABLATION_TERMS:
        from eitp_bench.workloads import eitp_paper

        _check_keys(arm, config, eitp_paper.DEFAULTS)
        return eitp_paper.PaperObjective(config, only=ABLATION_TERMS[arm], name=arm)
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

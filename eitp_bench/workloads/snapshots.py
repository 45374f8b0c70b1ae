"""Weight snapshots taken during training and evaluated after it (workloads/train.py).

Training is one energy window; the validation loss at every `train.eval_every` step is read afterwards,
from a copy of the weights taken at that step. A snapshot is a detached clone of every parameter and
buffer (tied parameters once, as `Module.parameters()` lists them). Where it is kept:

- on the training device (a plain clone: for a CPU run, that is host memory) when all the copies
  training keeps (the snapshots and, while they are evaluated, one copy of the final weights) fit in
  `DEVICE_BUDGET_FRACTION` of the CUDA device's free memory, read by `torch.cuda.mem_get_info` before
  the first step (the optimizer's states are not allocated yet: the fraction leaves them room);
- else in host memory, pinned, copied after a CUDA synchronisation (the copy then waits for it).

Host memory must hold what goes there: more than `HOST_BUDGET_FRACTION` of the memory available is
refused before training starts, with the fix (fewer evaluations). The decision is made once per run
and recorded (`eval_snapshots_on_host`); the copies are made inside the training window, at the same
steps and of the same model for every arm, so their cost is small and equal.
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import torch

DEVICE_BUDGET_FRACTION = 0.25  # of the CUDA device's free memory before the first step
HOST_BUDGET_FRACTION = 0.5  # of the host memory available


def _tensors(model) -> list[torch.Tensor]:
    """The tensors a snapshot copies and a restore writes back, in a fixed order."""
    return [*model.parameters(), *model.buffers()]


def state_bytes(model) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors(model))


def host_available_bytes() -> Optional[int]:
    """Host memory available now (Linux sysconf), None where unknown."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def choose_store(device, copies: int, nbytes: int, *, budget_bytes: Optional[int] = None) -> bool:
    """True: keep `copies` copies of `nbytes` on the host; False: on the training device.

    `budget_bytes` replaces the device budget (tests force the host path with a small one)."""
    if copies <= 0:
        return False
    on_cuda = torch.device(device).type == "cuda"
    if budget_bytes is None:
        if not on_cuda:  # the model lives in host memory already: a plain clone
            return False
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        budget_bytes = int(DEVICE_BUDGET_FRACTION * free)
    return copies * nbytes > budget_bytes


def check_host_memory(copies: int, nbytes: int, *, available: Optional[int] = None) -> None:
    """Refuse, before training, snapshots the host cannot hold."""
    from eitp_bench.errors import UserError

    available = host_available_bytes() if available is None else available
    need = copies * nbytes
    if available is not None and need > HOST_BUDGET_FRACTION * available:
        raise UserError(
            f"{copies} weight copies for the evaluations during training need {need / 2**20:.0f} MiB of host "
            f"memory, more than {HOST_BUDGET_FRACTION:.0%} of the {available / 2**20:.0f} MiB available",
            fix="raise train.eval_every (fewer evaluations) or free host memory")


class Snapshots:
    """The model's weights at chosen steps, then each evaluated with the final weights put back."""

    def __init__(self, model, device, count: int, *, budget_bytes: Optional[int] = None):
        self.model = model
        self.device = device
        nbytes = state_bytes(model)
        copies = count + 1 if count else 0  # the final weights are kept aside while snapshots are evaluated
        self.on_host = choose_store(device, copies, nbytes, budget_bytes=budget_bytes)
        if self.on_host or torch.device(device).type == "cpu":
            check_host_memory(copies, nbytes)
        self.taken: list[tuple[int, list[torch.Tensor]]] = []

    def _copy(self) -> list[torch.Tensor]:
        tensors = _tensors(self.model)
        if not self.on_host:
            return [t.detach().clone() for t in tensors]
        if torch.device(self.device).type == "cuda":
            torch.cuda.synchronize()  # the step's work is done before its weights are read
        pin = torch.cuda.is_available()  # pinned pages: a direct DMA copy (needs CUDA)
        return [torch.empty(t.shape, dtype=t.dtype, pin_memory=pin).copy_(t.detach()) for t in tensors]

    def take(self, step: int) -> None:
        """Copy the weights now (inside the training window, for every arm alike)."""
        self.taken.append((step, self._copy()))

    def _load(self, copy: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for t, c in zip(_tensors(self.model), copy):
                t.copy_(c)

    def evaluate_each(self, evaluate: Callable[[object], float]) -> dict[int, float]:
        """{step: evaluate(model with that step's weights)}, then the final weights restored bit for bit
        (later tasks use the trained model). The snapshots are released."""
        if not self.taken:
            return {}
        final = self._copy()
        out: dict[int, float] = {}
        try:
            for step, copy in self.taken:
                self._load(copy)
                out[step] = evaluate(self.model)
        finally:
            self._load(final)
            self.taken = []
        return out

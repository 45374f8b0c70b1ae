"""The planted effect: real extra compute added to the baseline's model, timed where it runs.

The `baseline-planted` arm is the baseline with a forward hook on its model: after every forward pass
(one per training step, one per generated token) the hook multiplies a (rows × d) block by a (d × d)
matrix `repeats` times on the model's device, where rows = the tokens of that pass and d = the
model's width. `repeats` is sized from the model's parameter count so that the products are
`fraction` of the pass's arithmetic (training: of the step's, about 3 forward passes' worth), but
nothing downstream trusts that figure: every call's duration is measured (CUDA events on a GPU, the
wall clock on a CPU) and `seconds_within(windows)` sums the calls that ran inside the energy windows,
so the cost the planted arm carries is known from the run itself. The products' results are thrown
away and draw no random numbers: the arm learns and generates exactly as the baseline does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

TRAIN_STEP_FORWARDS = 3.0  # a training step's arithmetic ≈ 3 forward passes (forward + backward)


def planted_repeats(n_params: int, width: int, fraction: float, *, training: bool) -> int:
    """Products of (rows × d)·(d × d) (2·rows·d² FLOPs each) that make `fraction` of a forward pass
    (2·N·rows FLOPs) — of a training step's (≈ 3 passes) when `training` — at least one."""
    passes = TRAIN_STEP_FORWARDS if training else 1.0
    return max(1, round(fraction * passes * n_params / width**2))


@dataclass
class PlantedWork:
    """The hook's state: the planted work per call and the log of calls (monotonic start, duration)."""

    width: int
    train_repeats: int
    eval_repeats: int
    device: Any = None
    calls: list = field(default_factory=list)  # (time.monotonic() at the call, seconds or a CUDA event pair)
    _weight: Any = None
    _blocks: dict = field(default_factory=dict)  # (rows, device) → (in, out) buffers
    _handle: Any = None

    @classmethod
    def attach(cls, model, fraction: float) -> "PlantedWork":
        """Hook planted work onto `model` (a transformers causal LM); it follows the model's device."""
        width = int(model.config.n_embd)
        n_params = sum(p.numel() for p in model.parameters())
        work = cls(width, planted_repeats(n_params, width, fraction, training=True),
                   planted_repeats(n_params, width, fraction, training=False))
        work._handle = model.register_forward_hook(work._hook)
        return work

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _hook(self, module, inputs, output) -> None:
        logits = output[0] if isinstance(output, tuple) else output.logits
        rows = int(logits.shape[0] * logits.shape[1])
        self.run(rows, logits.device, training=torch.is_grad_enabled())

    def run(self, rows: int, device, *, training: bool) -> None:
        """The planted products for a pass over `rows` tokens; their duration is logged."""
        cuda = torch.device(device).type == "cuda"
        t_call = time.monotonic()
        if cuda:  # GPU time of the planted kernels (the stream runs them in order between the events)
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
        else:
            t0 = time.perf_counter()
        a, b, weight = self._buffers(rows, device)
        with torch.no_grad(), torch.autocast(torch.device(device).type, enabled=False):
            for _ in range(self.train_repeats if training else self.eval_repeats):
                torch.mm(a, weight, out=b)  # into a kept buffer: no allocation, no new Python object
                a, b = b, a
        if cuda:
            end.record()
            self.calls.append((t_call, (begin, end)))
        else:
            self.calls.append((t_call, time.perf_counter() - t0))

    def _buffers(self, rows: int, device) -> tuple:
        """(rows × d) in and out blocks and the (d × d) matrix, made once per shape and device: fixed
        values, no random draw (1/d keeps a row of ones at ones: nothing grows, vanishes or denormalises)."""
        key = (rows, str(device))
        if key not in self._blocks:
            if self._weight is None or self._weight.device != torch.device(device):
                self._weight = torch.full((self.width, self.width), 1.0 / self.width, device=device)
            self._blocks[key] = (torch.ones(rows, self.width, device=device),
                                 torch.empty(rows, self.width, device=device))
        return (*self._blocks[key], self._weight)

    def seconds_within(self, windows) -> float:
        """Seconds of planted work in calls that started inside any of `windows` (WindowResults with
        monotonic `start`/`end`); CUDA events are read after a synchronise."""
        spans = [(w.start, w.end) for w in windows if w is not None]
        inside = [d for t, d in self.calls if any(a <= t <= b for a, b in spans)]
        if any(not isinstance(d, float) for d in inside):
            torch.cuda.synchronize()
        return float(sum(d if isinstance(d, float) else d[0].elapsed_time(d[1]) / 1000.0 for d in inside))

    def info(self) -> dict:
        return {"width": self.width, "train_repeats": self.train_repeats, "eval_repeats": self.eval_repeats}

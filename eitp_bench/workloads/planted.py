"""The planted effect: real extra compute added to the baseline's model, its whole cost measured.

The `baseline-planted` arm is the baseline with a forward hook on its model: after every forward pass
(one per training step, one per generated token) the hook multiplies a (rows × d) block by a (d × d)
matrix `repeats` times on the model's device, where rows = the tokens of that pass and d = the
model's width. `repeats` is sized from the model's parameter count so that the products are
`fraction` of the pass's arithmetic (training: of the step's, about 3 forward passes' worth), but
nothing downstream trusts that figure. The products' results are thrown away and draw no random
numbers: the arm learns and generates exactly as the baseline does.

What the planted work costs is measured in two ways, and the second is the one the self-check uses:

- the products' own seconds (`seconds_within`: CUDA events around the planted kernels on a GPU, the
  wall clock around the whole hook on a CPU), summed over the calls inside the energy windows;
- its whole cost, by a paired A/B in the planted arm's own process, outside every window
  (`paired_ratio`, `train_step_ratio`, `generation_ratio`): the same unit of work (one training step,
  one generate() call) timed with the hook on and off, alternating, the median ratio over the pairs.

They differ because the products are not additive: they leave the machine slower for a while after
they end, and that time lands in the model's own code, outside any timer around the products. On
this project's CPU (Xeon, AVX-512) a dense burst of matrix products drops the core's clock (the
"frequency licence" of wide vector units) and the clock stays down ~3.5 ms after the burst: pure
Python that follows a 0.45 ms burst runs ~5.5 % slower for ~3.5 ms (benchmarks/planted_additivity.py
--probe). With a forward pass every ~1 ms (generation) the whole run stays at the lower clock, and
tokens/s dropped 4-6 % more than the products' own seconds said; in the suite's training the
products' own seconds implied +271-323 % where the judge detected +379-399 % (planted_fraction 20,
docs/self-checks.md). A GPU has its own versions (power-driven clock changes, the products evicting
the model's weights from L2). No timer around the products can see these; timing the same unit with and without
them sees all of them, whatever the mechanism, so the planted cost the check expects IS the cost the
arm carries. Each timed unit follows an untimed unit in the same state (on after on, off after off),
as every unit in a run follows one like it, so an after-effect lands where it lands in the windows.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from eitp_bench.suite.arms import PLANTED_AB_LONG_CALL_S, PLANTED_AB_PAIRS, PLANTED_AB_TIMED

TRAIN_STEP_FORWARDS = 3.0  # a training step's arithmetic ≈ 3 forward passes (forward + backward)
# on/off pairs of the A/B: the median of 5 paired ratios shrugs off one or two disturbed pairs; timed runs
# per unit, after its lead-in: the unit's time is their fastest (declared with the arm: the cost model prices them)
AB_PAIRS, AB_TIMED = PLANTED_AB_PAIRS, PLANTED_AB_TIMED


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
    enabled: bool = True  # off: the hook does nothing (the "without" half of the A/B)
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
        if not self.enabled:
            return
        logits = output[0] if isinstance(output, tuple) else output.logits
        rows = int(logits.shape[0] * logits.shape[1])
        self.run(rows, logits.device, training=torch.is_grad_enabled())

    def run(self, rows: int, device, *, training: bool) -> None:
        """The planted products for a pass over `rows` tokens; their duration is logged."""
        t0 = time.perf_counter()  # first: on a CPU all of the call's own work is inside the timer
        t_call = time.monotonic()
        cuda = torch.device(device).type == "cuda"
        if cuda:  # GPU time of the planted kernels (the stream runs them in order between the events)
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
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


def paired_ratio(work: PlantedWork, unit: Callable[[], float], pairs: int = AB_PAIRS) -> float:
    """The planted work's whole cost as a ratio: median over `pairs` of unit() seconds with the hook on
    ÷ off, adjacent in time (a load spike moves both halves of a pair), the order alternating
    (on-off, off-on) so a drift favours neither. `unit` runs one unit of work and returns the
    seconds of its timed part, after an untimed lead-in in the same state: the fastest of AB_TIMED
    runs, because on a shared machine other processes only ever add time (a run the scheduler
    interrupted is slower, never faster), and a contended CPU interrupts most runs of ~30 ms."""
    ratios = []
    was = work.enabled
    try:
        for i in range(pairs):
            seconds = {}
            for on in ((True, False) if i % 2 == 0 else (False, True)):
                work.enabled = on
                seconds[on] = unit()
            ratios.append(seconds[True] / seconds[False])
    finally:
        work.enabled = was
    return float(statistics.median(ratios))


def train_step_ratio(work: PlantedWork, model, objective, batch: tuple, *, settings, device,
                     pairs: int = AB_PAIRS) -> float:
    """Training step time with ÷ without the planted work: each unit is a run of 1 + AB_TIMED steps of
    the arm's own `train` (a fresh throwaway optimizer; the first step is the lead-in, the fastest of
    the others is the unit's time) on `batch`; every step is undone afterwards (weights, gradients,
    RNG states), outside any window."""
    from eitp_bench.workloads.train import train, undone

    def unit() -> float:
        steps = 1 + AB_TIMED
        result = train(model, copy.deepcopy(objective), iter([batch] * steps), steps=steps, settings=settings,
                       device=device, evaluate=lambda m: math.nan, eval_every=steps, tokens_per_step=1,
                       steps_per_epoch=1.0)
        return min(result.step_times[1:])

    with undone(model, device):
        return paired_ratio(work, unit, pairs)


def generation_ratio(work: PlantedWork, model, batch, setting, *, device, precision: str,
                     pairs: int = AB_PAIRS) -> float:
    """generate() call time with ÷ without the planted work, on the timed setting's own prompts: each
    unit is a lead-in call and AB_TIMED timed ones (the fastest counts), synchronised as the timed
    runs are. A call of PLANTED_AB_LONG_CALL_S or more (GPT-2 small on a GPU: ~0.6 s) is the whole unit:
    its first of many forward passes puts the machine in the unit's state (an after-effect lasts
    milliseconds) and an interruption of a few milliseconds is a small share of it, so a lead-in and
    repeats would only add time (30 calls a repetition in `standard`)."""
    from eitp_bench.workloads.generate import generate_once
    from eitp_bench.workloads.precision import autocast
    from eitp_bench.workloads.train import cuda_sync

    def call() -> None:
        with autocast(device, precision):
            generate_once(model, batch, setting)
        cuda_sync(device)

    def timed() -> float:
        t0 = time.perf_counter()
        call()
        return time.perf_counter() - t0

    def unit() -> float:
        first = timed()
        if first >= PLANTED_AB_LONG_CALL_S:
            return first
        return min(timed() for _ in range(AB_TIMED))

    return paired_ratio(work, unit, pairs)

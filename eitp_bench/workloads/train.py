"""The training loop every arm shares: AdamW, fixed steps, seeded, measured.

The arm changes only the objective (its loss). Optimizer settings (lr, schedule, warm-up, weight
decay, clipping, precision) come from the suite and are the same for every arm. Training is one
monitor window from the first step to the last. At every `eval_every` step, inside that window, the
weights are copied (workloads/snapshots.py) and the window's energy so far is read (`Window.so_far`);
the copies are evaluated after the window closes, so train energy and time never include evaluation,
and evaluations can be dense without cutting training into short windows. One evaluation before the
first step brackets a crossing before the first evaluation step.

To-target figures are read where the crossing happens, not at the next evaluation: the crossing step is
interpolated between the last evaluation above the target and the first at or below it (along the
monotone cubic through the evaluations), and time and joules to target are the cumulative figures at the
lower evaluation plus that fraction of the difference to the upper one (pro-rated by steps). Each figure
records its window: the one training window (`<figure>_segments` = 1: its start edge and the read at the
upper evaluation) and its duration up to that read (`<figure>_window_s`); joules to target carry
`not_steady` when that span is shorter than the steady-state minimum (energy/steady.py).
See docs/replication-and-targets.md.
"""

from __future__ import annotations

import copy
import itertools
import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import torch

from eitp_bench import names
from eitp_bench.energy.monitor import merge_windows
from eitp_bench.energy.steady import required_s
from eitp_bench.flags import Flag, flag
from eitp_bench.records import MEASURED_METHODS, EnergyEntry, Metric


def cuda_sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def lm_quality(model, blocks, *, batch_size: int, device, precision: str = "fp32",
               seen: Optional[dict] = None, phase: str = "eval") -> tuple[float, float]:
    """(mean cross-entropy in nats per predicted token, top-1 next-token accuracy) over blocks (n, T), the
    forward passes under the suite's precision (workloads/precision.py); logits dtypes go to seen[phase]."""
    from eitp_bench.workloads.precision import autocast, observe

    was_training = model.training
    model.eval()
    total, correct, count = 0.0, 0, 0
    for start in range(0, len(blocks), batch_size):
        ids = torch.as_tensor(blocks[start : start + batch_size], dtype=torch.long, device=device)
        with autocast(device, precision), observe(model, seen, phase):
            out = model(input_ids=ids)
        logits = out.logits[:, :-1].float()
        targets = ids[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum")
        total += float(loss)
        correct += int((logits.argmax(-1) == targets).sum())
        count += targets.numel()
    model.train(was_training)
    return total / count, correct / count


def evaluate_lm(model, blocks, *, batch_size: int, device, precision: str = "fp32", seen: Optional[dict] = None) -> float:
    """Mean cross-entropy (nats per predicted token) over validation blocks."""
    return lm_quality(model, blocks, batch_size=batch_size, device=device, precision=precision, seen=seen)[0]


def _unsteady_span(read, step: int, min_window_s: Optional[float]) -> list[Flag]:
    """[not_steady] when a measured entry of the training window, read at the evaluation of `step` that a
    to-target figure rests on, spans less than the steady-state minimum (energy/steady.py)."""
    short = [e for e in read.energy
             if e.method in MEASURED_METHODS and e.joules is not None and e.duration_s < required_s(e.meter, min_window_s)]
    if not short:
        return []
    e = min(short, key=lambda x: x.duration_s)
    return [flag("not_steady", f"the training window up to the evaluation at step {step}, which the figure "
                 f"rests on, is shorter than the steady-state minimum ({e.meter} {e.device}/{e.domain} "
                 f"{e.duration_s:.3g} s < {required_s(e.meter, min_window_s):g} s): a figure, not a verdict")]


def _sum_joules(results: list, attr: str) -> Optional[float]:
    values = [getattr(r, attr) for r in results]
    return None if not values or any(v is None for v in values) else float(sum(values))


@dataclass(frozen=True)
class OptimSettings:
    """The optimizer settings of a training run: the same for every arm of a suite."""

    lr: float
    schedule: str = "constant"  # constant | linear (decay to 0) | cosine (to 0)
    warmup_steps: int = 0
    weight_decay: float = 0.01
    grad_clip: Optional[float] = None
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)

    @classmethod
    def from_train_config(cls, t, lr: Optional[float] = None) -> "OptimSettings":
        return cls(lr if lr is not None else t.lr, t.lr_schedule, t.warmup_steps, t.weight_decay, t.grad_clip, t.precision)

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Multiplier of lr at `step` (0-based): linear warm-up, then the schedule down to 0."""
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return 1.0
        span = max(1, total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        if self.schedule == "linear":
            return 1.0 - progress
        if self.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        raise ValueError(f"unknown lr schedule {self.schedule!r}")



@dataclass
class EvalPoint:
    step: int
    train_s: float  # cumulative step time up to this evaluation
    val_loss: float
    measured_j: Optional[float]  # cumulative train joules (measured) up to here: the window's so-far read
    estimated_j: Optional[float]
    window_s: Optional[float] = None  # the training window's duration up to this step's read (0 before it)
    read: Any = field(default=None, repr=False, compare=False)  # that read (a WindowResult), None without a monitor


@dataclass(frozen=True)
class Crossing:
    """Where the validation loss crossed the target: interpolated between two evaluations."""

    step: float  # interpolated between `lo` and `hi` (interpolate_crossing)
    lo: EvalPoint  # the last evaluation above the target (step 0: before training)
    hi: EvalPoint  # the first evaluation at or below it
    segments: int  # training windows the figures sum: 0 (met before training) or 1 (the one window)
    train_s: float  # step time to the crossing (the bracket pro-rated by steps)
    measured_j: Optional[float]  # measured joules to the crossing, pro-rated alike
    estimated_j: Optional[float]

    @property
    def fraction(self) -> float:
        return (self.step - self.lo.step) / (self.hi.step - self.lo.step) if self.hi.step > self.lo.step else 1.0


def interpolate_crossing(evals: list[EvalPoint], target: float, method: str = "pchip") -> Optional[Crossing]:
    """The crossing of `target` by a sequence of evaluations (the first is before training), or None.

    The crossing lies between the bracketing evaluations: `lo`, the last above the target, and `hi`, the first
    at or below it. Where in the bracket: "pchip" follows the monotone piecewise-cubic (Fritsch–Carlson)
    curve through every evaluation, which bends as the loss curve does; "linear" draws the chord between
    `lo` and `hi` only, frac = (L_lo − target) / (L_lo − L_hi). A decelerating loss curve lies below its
    chord, so the chord crosses late, by a few % of the step at 50-of-200 spacing, differently for
    each arm (benchmarks/to_target_lattice.py measures the effect on verdicts). On the bracket the pchip curve
    is monotone (L_lo > target ≥ L_hi), so the crossing is unique and inside it. Time and joules of the
    bracket are pro-rated by the crossing's fraction of its steps (power and step time taken as constant
    within it). A target met before any step gives step 0.
    The figures sum one window (training is one window, read at every evaluation): `segments` is 1, or 0
    when the target was met before training.
    """
    for i, hi in enumerate(evals):
        if not hi.val_loss <= target:
            continue
        if i == 0:
            return Crossing(float(hi.step), hi, hi, 0, 0.0, hi.measured_j, hi.estimated_j)
        lo = evals[i - 1]
        frac = _bracket_fraction(evals, i, target, method)

        def between(a, b):
            return None if a is None or b is None else a + frac * (b - a)

        return Crossing(lo.step + frac * (hi.step - lo.step), lo, hi, 1, between(lo.train_s, hi.train_s),
                        between(lo.measured_j, hi.measured_j), between(lo.estimated_j, hi.estimated_j))
    return None


def _bracket_fraction(evals: list[EvalPoint], i: int, target: float, method: str) -> float:
    """Where in the bracket (evals[i-1], evals[i]) the loss reaches `target`, as a fraction of its steps."""
    lo, hi = evals[i - 1], evals[i]
    drop = lo.val_loss - hi.val_loss
    if drop <= 0 or hi.step <= lo.step:  # cannot happen for a bracket; a guard, not a figure
        return 1.0
    if method == "linear" or len(evals) < 3 or not all(math.isfinite(e.val_loss) for e in evals):
        return min(1.0, max(0.0, (lo.val_loss - target) / drop))  # a curve needs finite points: the chord
    if method != "pchip":
        raise ValueError(f"unknown interpolation {method!r} (pchip | linear)")
    from scipy.interpolate import PchipInterpolator
    from scipy.optimize import brentq

    curve = PchipInterpolator([e.step for e in evals], [e.val_loss for e in evals])
    step = brentq(lambda s: float(curve(s)) - target, lo.step, hi.step)
    return min(1.0, max(0.0, (step - lo.step) / (hi.step - lo.step)))


@dataclass
class TrainResult:
    steps: int
    tokens_per_step: int
    step_times: list[float]
    evals: list[EvalPoint]
    components: dict[str, float]
    windows: list[Any] = field(default_factory=list)  # the monitor's WindowResult of training (one window)
    warmup_untimed_steps: int = 0  # steps run and undone before the first window (untimed_warm_up)
    warmup_untimed_s: float = 0.0
    target_val_loss: Optional[float] = None
    forward_passes_per_step: Optional[float] = None
    lr: float = 0.0
    min_window_s: Optional[float] = None  # the suite's meters.min_window_s (steady-state rule)
    snapshots: int = 0  # weight copies taken during training for the evaluations (workloads/snapshots.py)
    snapshots_on_host: bool = False  # ... kept in host memory (the device budget did not hold them)

    @property
    def final_val_loss(self) -> float:
        return self.evals[-1].val_loss

    @property
    def reached(self) -> Optional[Crossing]:
        if self.target_val_loss is None:
            return None
        return interpolate_crossing(self.evals, self.target_val_loss)

    def _to_target_metrics(self, hit: Crossing) -> list[Metric]:
        """Steps, time and joules to the interpolated crossing, each with its bracket and window."""
        out = [
            Metric(name="steps_to_target", value=hit.step, unit="steps"),
            Metric(name="target_bracket_lo_step", value=hit.lo.step, unit="steps"),
            Metric(name="target_bracket_hi_step", value=hit.hi.step, unit="steps"),
            Metric(name="target_bracket_lo_loss", value=hit.lo.val_loss, unit="nats/token"),
            Metric(name="target_bracket_hi_loss", value=hit.hi.val_loss, unit="nats/token"),
        ]
        if hit.segments == 0:  # met before training: nothing was spent, no ratio can be formed
            return out
        figures = [("time_to_target_s", hit.train_s, "s", [])]
        if hit.measured_j is not None:
            # the steady-state rule on the span the figure rests on (window start to the upper bracket's read)
            unsteady = _unsteady_span(hit.hi.read, hit.hi.step, self.min_window_s) if hit.hi.read is not None else []
            figures.append(("joules_to_target", hit.measured_j, "J", unsteady))
        if hit.estimated_j is not None:
            figures.append((names.estimated("joules_to_target"), hit.estimated_j, "J", []))
        for name, value, unit, flags in figures:
            out.append(Metric(name=name, value=value, unit=unit, window="train", flags=flags))
            if not names.is_estimated(name) and hit.hi.window_s is not None:
                out.append(Metric(name=names.window_seconds(name), value=hit.hi.window_s, unit="s", window="train"))
                out.append(Metric(name=names.window_segments(name), value=hit.segments, unit="1", window="train"))
        return out

    def energy_entries(self, window: str = "train") -> list[EnergyEntry]:
        return merge_windows(self.windows, window) if self.windows else []

    def metrics(self) -> list[Metric]:
        step_s = statistics.median(self.step_times)
        train_s = sum(self.step_times)
        out = [
            Metric(name="steps", value=self.steps, unit="steps"),
            Metric(name="lr", value=self.lr, unit="1"),
            Metric(name="warmup_untimed_steps", value=self.warmup_untimed_steps, unit="steps"),
            Metric(name="warmup_untimed_s", value=self.warmup_untimed_s, unit="s"),
            Metric(name="step_s", value=step_s, unit="s", window="train"),
            Metric(name="step_s_mean", value=train_s / self.steps, unit="s", window="train"),
            Metric(name="train_s", value=train_s, unit="s", window="train"),
            Metric(name="train_tokens_per_s", value=self.tokens_per_step / step_s, unit="tokens/s", window="train"),
            Metric(name="final_val_loss", value=self.final_val_loss, unit="nats/token"),
            Metric(name="final_val_ppl", value=math.exp(self.final_val_loss), unit="1"),
        ]
        if self.forward_passes_per_step is not None:
            out.append(Metric(name="forward_passes_per_step", value=self.forward_passes_per_step, unit="1"))
        out.append(Metric(name="eval_snapshots", value=self.snapshots, unit="1"))
        out.append(Metric(name="eval_snapshots_on_host", value=float(self.snapshots_on_host), unit="bool"))
        # Joules: measured and estimated are separate metrics; estimates never pose as measurements.
        for name, attr in ((lambda n: n, "measured_joules"), (names.estimated, "estimated_joules")):
            total = _sum_joules(self.windows, attr)
            if total is not None:
                out.append(Metric(name=name("train_joules"), value=total, unit="J", window="train"))
                out.append(Metric(name=name("train_joules_per_step"), value=total / self.steps, unit="J", window="train"))
        if self.target_val_loss is not None:
            hit = self.reached
            out.append(Metric(name="target_val_loss", value=self.target_val_loss, unit="nats/token"))
            out.append(Metric(name="target_reached", value=float(hit is not None), unit="bool"))
            if hit is not None:
                out += self._to_target_metrics(hit)
        for name, value in sorted(self.components.items()):
            out.append(Metric(name=f"loss_component:{name}", value=float(value), unit="1"))
        out += self.curve_metrics()
        return out

    def curve_metrics(self) -> list[Metric]:
        """The validation curve, one point per evaluation (names.CURVE_*@step): the report's loss-against-
        step and loss-against-joules pictures. Measured and estimated joules stay apart here too."""
        out = []
        for e in self.evals:
            out.append(Metric(name=names.at(names.CURVE_VAL_LOSS, e.step), value=e.val_loss, unit="nats/token"))
            out.append(Metric(name=names.at(names.CURVE_TRAIN_S, e.step), value=e.train_s, unit="s", window="train"))
            if e.measured_j is not None:
                out.append(Metric(name=names.at(names.CURVE_JOULES, e.step), value=e.measured_j, unit="J", window="train"))
            if e.estimated_j is not None:
                out.append(Metric(name=names.at(names.estimated(names.CURVE_JOULES), e.step), value=e.estimated_j,
                                  unit="J", window="train"))
        return out


def train(
    model,
    objective,
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
    *,
    steps: int,
    settings: OptimSettings,
    device,
    evaluate: Callable[[Any], float],
    eval_every: int,
    tokens_per_step: int,
    steps_per_epoch: float,
    warmup_untimed_steps: int = 0,
    monitor=None,
    target_val_loss: Optional[float] = None,
    window: str = "train",
    min_window_s: Optional[float] = None,
    seen: Optional[dict] = None,
    snapshot_budget_bytes: Optional[int] = None,
) -> TrainResult:
    """Train `model` for `steps` AdamW steps with `objective`; evaluate every `eval_every` steps.

    `settings` are the suite's, identical for every arm; only `objective` differs between arms.
    The caller seeds torch before building the model; batches are already deterministic.
    `warmup_untimed_steps` steps run first and are undone (untimed_warm_up): what is timed, measured and
    learned is the same as without them. `seen`: logits dtypes observed during the timed steps go to
    seen["train"] (workloads/precision.py).

    The steps run in one window of `monitor`. At each evaluation step before the last, inside it, the
    weights are copied and the window read so far (`Window.so_far`; on several ranks every rank reads at
    the same step, as the barrier and gather at each read need); after `end()` each copy is evaluated,
    outside every window, and the final weights are put back bit for bit. The last evaluation is the
    trained model's, read at the window's end. `snapshot_budget_bytes` replaces the device memory budget
    of the copies (workloads/snapshots.py; tests force the host path with it).
    """
    from eitp_bench.workloads.precision import autocast, observe
    from eitp_bench.workloads.snapshots import Snapshots

    batches, warmed, warmup_s = untimed_warm_up(
        model, objective, batches, steps=warmup_untimed_steps, settings=settings, device=device,
        tokens_per_step=tokens_per_step, steps_per_epoch=steps_per_epoch)
    model.to(device).train()
    copy_at = set(range(eval_every, steps, eval_every))  # evaluation steps before the last (the trained model)
    snapshots = Snapshots(model, device, len(copy_at), budget_bytes=snapshot_budget_bytes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: settings.lr_factor(s, steps))
    device_type = torch.device(device).type
    scaler = torch.amp.GradScaler(device_type) if settings.precision == "fp16" else None
    step_times: list[float] = []
    evals: list[EvalPoint] = []
    components: dict[str, float] = {}
    if target_val_loss is not None:  # the lower bracket of a crossing before the first evaluation step
        start = 0.0 if monitor is not None else None
        evals.append(EvalPoint(step=0, train_s=0.0, val_loss=evaluate(model), measured_j=start, estimated_j=start,
                               window_s=0.0))
    reads: list[tuple[int, float, Any, float]] = []  # (step, step time so far, window read, window seconds)
    win = monitor.begin(window) if monitor is not None else None
    t_begin = time.monotonic()
    for step in range(steps):
        input_ids, labels = next(batches)
        cuda_sync(device)
        t0 = time.perf_counter()
        with autocast(device, settings.precision), observe(model, seen, "train"):
            loss, components = objective.loss(model, input_ids, labels, step=step, epoch=step / steps_per_epoch)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        cuda_sync(device)
        step_times.append(time.perf_counter() - t0)
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"training loss is {float(loss)} at step {step + 1}")
        if step + 1 in copy_at:  # inside the window, the same for every arm
            snapshots.take(step + 1)
            read = win.so_far() if win is not None else None
            reads.append((step + 1, sum(step_times), read, _span(read, t_begin)))
    final = win.end() if win is not None else None
    reads.append((steps, sum(step_times), final, _span(final, t_begin)))
    # Evaluations, outside every window, in step order: each copy, then the trained model (its weights put back).
    losses = snapshots.evaluate_each(evaluate)
    losses[steps] = evaluate(model)
    for at, train_s, read, window_s in reads:
        evals.append(EvalPoint(step=at, train_s=train_s, val_loss=losses[at],
                               measured_j=read.measured_joules if read is not None else None,
                               estimated_j=read.estimated_joules if read is not None else None,
                               window_s=window_s, read=read))
    return TrainResult(
        steps=steps,
        tokens_per_step=tokens_per_step,
        step_times=step_times,
        evals=evals,
        components={k: float(v) for k, v in components.items()},
        windows=[final] if final is not None else [],
        warmup_untimed_steps=warmed,
        warmup_untimed_s=warmup_s,
        target_val_loss=target_val_loss,
        forward_passes_per_step=getattr(objective, "forward_passes_per_step", None),
        lr=settings.lr,
        min_window_s=min_window_s,
        snapshots=len(copy_at),
        snapshots_on_host=snapshots.on_host,
    )


def _span(read, t_begin: float) -> float:
    """The training window's duration up to `read`; without a monitor, the wall time since the first step."""
    return read.duration_s if read is not None else time.monotonic() - t_begin


def untimed_warm_up(model, objective, batches: Iterator, *, steps: int, settings: OptimSettings, device,
                    tokens_per_step: int, steps_per_epoch: float) -> tuple[Iterator, int, float]:
    """Run `steps` training steps outside any window, then undo them: (the same batches, steps run, seconds).

    The first steps of a process pay one-time costs (CUDA kernels loaded, cuBLAS handles, allocator
    blocks, DDP buckets and NCCL communicators) that are no part of an arm's training cost. They run here
    through `train` itself (so every arm warms up exactly as it trains), on the real model (multi-rank:
    the DDP wrapper, so the collectives warm up too) with a throwaway optimizer and a copy of the
    objective (it may hold state, e.g. a generator); afterwards the parameters and buffers, the RNG
    states and the batches are put back, so the timed run starts from exactly where it would have.
    """
    drawn = list(itertools.islice(batches, max(0, steps)))
    if not drawn:
        return batches, 0, 0.0
    with undone(model, device):
        started = time.perf_counter()
        train(model, copy.deepcopy(objective), iter(drawn), steps=len(drawn), settings=settings, device=device,
              evaluate=lambda m: math.nan,  # the throwaway run is never evaluated
              eval_every=max(1, len(drawn)), tokens_per_step=tokens_per_step, steps_per_epoch=steps_per_epoch)
    return itertools.chain(drawn, batches), len(drawn), time.perf_counter() - started


@contextmanager
def undone(model, device):
    """Steps run inside leave no trace: the parameters and buffers, the gradients and the RNG states
    are put back (the untimed warm-up; the planted arm's A/B, workloads/planted.py)."""
    model.to(device)  # first: on a GPU this starts CUDA, whose RNG state must be saved too
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rng = _rng_states(device)
    try:
        yield
    finally:
        with torch.no_grad():
            model.load_state_dict(saved)
        model.zero_grad(set_to_none=True)
        _set_rng_states(rng)
        cuda_sync(device)


def _rng_states(device) -> tuple:
    """The CPU generator's state and, on a GPU, that device's (only it: touching the others would open a
    CUDA context on each of them)."""
    device = torch.device(device)
    return device, torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def _set_rng_states(states: tuple) -> None:
    device, cpu, cuda = states
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)

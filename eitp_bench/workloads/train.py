"""The training loop every arm shares: AdamW, fixed steps, seeded, measured.

The arm changes only the objective (its loss). Optimizer settings (lr, schedule, warm-up, weight
decay, clipping, precision) come from the suite and are the same for every arm. Training runs in segments of
`eval_every` steps, each inside its own monitor window; evaluations run between windows, so
train energy and time never include evaluation. Energy-to-quality = the joules and step time
spent until the first evaluation at or below the target validation loss.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import torch

from eitp_bench import names
from eitp_bench.records import EnergyEntry, Metric


def cuda_sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def lm_quality(model, blocks, *, batch_size: int, device) -> tuple[float, float]:
    """(mean cross-entropy in nats per predicted token, top-1 next-token accuracy) over blocks (n, T)."""
    was_training = model.training
    model.eval()
    total, correct, count = 0.0, 0, 0
    for start in range(0, len(blocks), batch_size):
        ids = torch.as_tensor(blocks[start : start + batch_size], dtype=torch.long, device=device)
        logits = model(input_ids=ids).logits[:, :-1].float()
        targets = ids[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum")
        total += float(loss)
        correct += int((logits.argmax(-1) == targets).sum())
        count += targets.numel()
    model.train(was_training)
    return total / count, correct / count


def evaluate_lm(model, blocks, *, batch_size: int, device) -> float:
    """Mean cross-entropy (nats per predicted token) over validation blocks."""
    return lm_quality(model, blocks, batch_size=batch_size, device=device)[0]


def merge_windows(results: list, window: str) -> list[EnergyEntry]:
    """One entry per channel summing several window results (segments of one phase).

    A channel invalid in any segment is invalid in the sum (joules None, flags kept): a phase's
    total is never silently missing a piece.
    """
    merged: dict[tuple, EnergyEntry] = {}
    for result in results:
        for e in result.energy:
            key = (e.meter, e.device, e.domain, e.rank, e.host)  # ranks' sensors stay apart (summed later)
            m = merged.get(key)
            if m is None:
                merged[key] = e.model_copy(update={"window": window, "flags": list(e.flags)})
                continue
            m.joules = None if m.joules is None or e.joules is None else m.joules + e.joules
            m.duration_s += e.duration_s
            m.samples += e.samples
            gaps = [g for g in (m.max_gap_s, e.max_gap_s) if g is not None]
            m.max_gap_s = max(gaps) if gaps else None
            m.wraps += e.wraps
            m.flags.extend(f for f in e.flags if f not in m.flags)
    return list(merged.values())


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


_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class EvalPoint:
    step: int
    train_s: float  # cumulative step time up to this evaluation
    val_loss: float
    measured_j: Optional[float]  # cumulative train joules (measured) up to here
    estimated_j: Optional[float]


@dataclass
class TrainResult:
    steps: int
    tokens_per_step: int
    step_times: list[float]
    evals: list[EvalPoint]
    components: dict[str, float]
    windows: list[Any] = field(default_factory=list)  # monitor WindowResults, one per segment
    target_val_loss: Optional[float] = None
    forward_passes_per_step: Optional[float] = None
    lr: float = 0.0

    @property
    def final_val_loss(self) -> float:
        return self.evals[-1].val_loss

    @property
    def reached(self) -> Optional[EvalPoint]:
        if self.target_val_loss is None:
            return None
        return next((e for e in self.evals if e.val_loss <= self.target_val_loss), None)

    def energy_entries(self, window: str = "train") -> list[EnergyEntry]:
        return merge_windows(self.windows, window) if self.windows else []

    def metrics(self) -> list[Metric]:
        step_s = statistics.median(self.step_times)
        train_s = sum(self.step_times)
        out = [
            Metric(name="steps", value=self.steps, unit="steps"),
            Metric(name="lr", value=self.lr, unit="1"),
            Metric(name="step_s", value=step_s, unit="s", window="train"),
            Metric(name="step_s_mean", value=train_s / self.steps, unit="s", window="train"),
            Metric(name="train_s", value=train_s, unit="s", window="train"),
            Metric(name="train_tokens_per_s", value=self.tokens_per_step / step_s, unit="tokens/s", window="train"),
            Metric(name="final_val_loss", value=self.final_val_loss, unit="nats/token"),
            Metric(name="final_val_ppl", value=math.exp(self.final_val_loss), unit="1"),
        ]
        if self.forward_passes_per_step is not None:
            out.append(Metric(name="forward_passes_per_step", value=self.forward_passes_per_step, unit="1"))
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
                out.append(Metric(name="steps_to_target", value=hit.step, unit="steps"))
                out.append(Metric(name="time_to_target_s", value=hit.train_s, unit="s", window="train"))
                if hit.measured_j is not None:
                    out.append(Metric(name="joules_to_target", value=hit.measured_j, unit="J", window="train"))
                if hit.estimated_j is not None:
                    out.append(Metric(name=names.estimated("joules_to_target"), value=hit.estimated_j, unit="J",
                                      window="train"))
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
    monitor=None,
    target_val_loss: Optional[float] = None,
    window: str = "train",
) -> TrainResult:
    """Train `model` for `steps` AdamW steps with `objective`; evaluate every `eval_every` steps.

    `settings` are the suite's, identical for every arm; only `objective` differs between arms.
    The caller seeds torch before building the model; batches are already deterministic.
    """
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: settings.lr_factor(s, steps))
    device_type = torch.device(device).type
    dtype = _AUTOCAST_DTYPES.get(settings.precision)
    scaler = torch.amp.GradScaler(device_type) if settings.precision == "fp16" else None
    step_times: list[float] = []
    evals: list[EvalPoint] = []
    segments: list[Any] = []
    components: dict[str, float] = {}
    step = 0
    while step < steps:
        seg_steps = min(eval_every, steps - step)
        win = monitor.begin(window) if monitor is not None else None
        for _ in range(seg_steps):
            input_ids, labels = next(batches)
            cuda_sync(device)
            t0 = time.perf_counter()
            with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
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
            step += 1
            if not math.isfinite(float(loss.detach())):
                raise FloatingPointError(f"training loss is {float(loss)} at step {step}")
        if win is not None:
            segments.append(win.end())
        val_loss = evaluate(model)
        evals.append(
            EvalPoint(
                step=step,
                train_s=sum(step_times),
                val_loss=val_loss,
                measured_j=_sum_joules(segments, "measured_joules") if segments else None,
                estimated_j=_sum_joules(segments, "estimated_joules") if segments else None,
            )
        )
    return TrainResult(
        steps=steps,
        tokens_per_step=tokens_per_step,
        step_times=step_times,
        evals=evals,
        components={k: float(v) for k, v in components.items()},
        windows=segments,
        target_val_loss=target_val_loss,
        forward_passes_per_step=getattr(objective, "forward_passes_per_step", None),
        lr=settings.lr,
    )

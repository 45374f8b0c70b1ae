"""Quality targets set as MLPerf sets reference targets: from baseline pilot runs on this machine.

`calibrate(suite, pilots)` trains the baseline arm `pilots` times (seeds suite.seed + 0 … pilots − 1,
the baseline's first repetitions), each for the suite's whole step budget with its evaluation
schedule, and measures the step-0 (zero-shot) validation loss of each pilot's starting model.

The rule: a pilot's figure is the best validation loss it reached at any evaluation within the
budget (the first time it meets a target is what "to target" times); the target is the largest of
those figures, rounded up to 0.001 nats, so every pilot (not only 95 % of them) reaches it within
the budget. A target at or above the smallest zero-shot loss is refused: the untrained model would
already meet it. `write_calibrated(...)` writes a copy of the suite with `train.target_val_loss` and
`train.target_source` (method, pilots, rule, date, hardware profile, the losses) set.

No energy is metered: pilots measure quality only, in this process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

from eitp_bench.errors import UserError
from eitp_bench.suite import Suite

RULE = ("max over pilots of each pilot's best validation loss within train.steps (every pilot reaches it), "
        "rounded up to 0.001 nats; refused at or above the smallest zero-shot loss")


@dataclass
class Calibration:
    target: float
    pilots: int
    best_losses: list[float]  # per pilot: its best validation loss within the budget
    zero_shot_losses: list[float]  # per pilot: the step-0 validation loss of its starting model
    hardware_profile: Optional[str]
    date: str

    def target_source(self) -> dict:
        return {
            "method": "calibrated",
            "note": "measured by eitp-bench calibrate-target on this machine",
            "pilots": self.pilots,
            "rule": RULE,
            "date": self.date,
            "hardware_profile": self.hardware_profile,
            "zero_shot_loss": round(min(self.zero_shot_losses), 6),
            "pilot_best_losses": [round(x, 6) for x in self.best_losses],
        }


def target_from_pilots(best_losses: list[float], zero_shot_losses: list[float]) -> float:
    """The rule (module doc) on measured figures; a UserError when no valid target exists."""
    if not best_losses:
        raise UserError("no pilot runs to calibrate from", fix="give --pilots 1 or more")
    bad = [x for x in best_losses + zero_shot_losses if not math.isfinite(x)]
    if bad:
        raise UserError("a pilot's validation loss is not finite (training diverged)",
                        fix="lower train.lr or check the data; a target cannot be set from a diverged run")
    target = math.ceil(max(best_losses) * 1000) / 1000
    zero_shot = min(zero_shot_losses)
    if target >= zero_shot:
        raise UserError(
            f"the baseline does not get below its zero-shot validation loss {zero_shot:.4f} within train.steps: "
            f"the calibrated target would be {target:.3f}, which the untrained model already meets",
            fix="raise train.steps (or the learning rate) so that training improves on the starting model",
        )
    return target


def calibrate(suite: Suite, pilots: int, *, device: Optional[str] = None,
              progress: Callable[[str], None] = lambda line: None) -> Calibration:
    """Train the baseline `pilots` times and apply the rule (module doc)."""
    import torch

    from eitp_bench.workloads.tasks import TaskContext
    from eitp_bench.workloads.train import evaluate_lm

    if pilots < 1:
        raise UserError(f"--pilots {pilots}: at least one pilot run is needed", fix="give --pilots 1 or more (20 for a 95 % rule)")
    if suite.threads:
        torch.set_num_threads(suite.threads)
    device = device or ("cuda" if suite.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu")
    if suite.device == "cuda" and device != "cuda":
        raise UserError("the suite asks for device cuda but torch sees no CUDA GPU",
                        fix="calibrate on the machine that will run the suite (or --set device=cpu)")
    # Train to no target: the pilots measure where the baseline gets to, not whether it meets a guess.
    train_cfg = suite.train.model_copy(update={"target_val_loss": None, "target_excess_nats": None,
                                               "target_source": None})
    pilot_suite = suite.model_copy(update={"train": train_cfg})
    t = pilot_suite.train
    best, zero_shot, shared = [], [], {}
    for r in range(pilots):
        seed = suite.seed + r
        ctx = TaskContext(pilot_suite, "baseline", suite.sizes[0], seed, r, device)
        ctx.cache.update(shared)  # the data is the same for every pilot: tokenised once
        data = ctx.lm_data()
        shared["lm_data"] = data
        blocks = data.val_blocks(t.eval_batches * t.batch_size)
        start = ctx.build_model(data.vocab_size).to(device)  # the same seeded weights the pilot starts from
        zero_shot.append(evaluate_lm(start, blocks, batch_size=t.batch_size, device=device))
        del start
        _, result = ctx.trained_lm()
        best.append(min(e.val_loss for e in result.evals))
        progress(f"pilot {r + 1}/{pilots} (seed {seed}): zero-shot {zero_shot[-1]:.4f}, best {best[-1]:.4f} nats")
    profile = _profile_id()
    target = target_from_pilots(best, zero_shot)
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Calibration(target, pilots, best, zero_shot, profile, date)


def _profile_id() -> Optional[str]:
    try:
        from eitp_bench.hardware import describe

        return describe()["profile_id"]
    except Exception:  # the target is still valid without the machine's name
        return None


def write_calibrated(suite_arg: str, overrides: list[str], calibration: Calibration, out: Path) -> Path:
    """A copy of the suite file (with the --set overrides applied) whose target is the calibrated one."""
    import yaml

    from eitp_bench.suite.schema import _parse_yaml, _read_suite_text, apply_override, load_suite

    text, label = _read_suite_text(suite_arg)
    raw = _parse_yaml(text, label)
    for assignment in overrides:
        apply_override(raw, assignment)  # load_suite accepted them already
    raw.setdefault("name", Path(suite_arg).stem)
    train = raw.setdefault("train", {})
    train["target_val_loss"] = calibration.target
    train["target_source"] = calibration.target_source()
    if raw.get("data", {}).get("kind", "markov") == "markov":
        train["target_excess_nats"] = None  # the Markov corpus would use its optimum + margin instead
    header = (f"# {label}, with train.target_val_loss calibrated by `eitp-bench calibrate-target` "
              f"({calibration.pilots} baseline pilots, {calibration.date}).\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    load_suite(str(out))  # what was written is a valid suite
    return out

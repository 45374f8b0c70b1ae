"""`eitp-bench calibrate-target SUITE`: set the suite's quality target from baseline pilot runs here."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def calibrate_target(
    suite: str = typer.Argument(..., help="a bundled suite (standard, full) or a path to a suite YAML"),
    pilots: int = typer.Option(5, "--pilots", help="baseline pilot runs (MLPerf-style: 20 or more for a 95 % rule)"),
    out: Optional[Path] = typer.Option(None, "--out", help="where to write the calibrated copy (default ./<suite>-calibrated.yaml)"),
    set_: List[str] = typer.Option([], "--set", help="override a setting first: --set train.steps=50 (repeatable)"),
) -> int:
    """Train the baseline PILOTS times and write a copy of SUITE whose train.target_val_loss is the loss
    every pilot reached within the step budget (refused at or above the zero-shot loss)."""
    from eitp_bench.runner.calibrate import RULE, calibrate, write_calibrated
    from eitp_bench.errors import UserError
    from eitp_bench.runner.preflight import check_suite_before_work
    from eitp_bench.suite import suite_file_name

    cfg, _ = check_suite_before_work(suite, list(set_), probe_sensors=False)  # no energy is metered here
    if "train" not in cfg.tasks and "lm" not in cfg.tasks:
        raise UserError(f"suite {cfg.name!r} trains no language model (tasks: {', '.join(cfg.tasks)})",
                        fix="calibrate a suite whose tasks include train")
    target_path = out or Path(f"{suite_file_name(cfg.name)}-calibrated.yaml")
    print(f"calibrating {cfg.name}: {pilots} baseline pilot run(s) of {cfg.train.steps} steps; rule: {RULE}", flush=True)
    result = calibrate(cfg, pilots, progress=lambda line: print(line, flush=True))
    write_calibrated(suite, list(set_), result, target_path)
    print(f"target_val_loss {result.target:.3f} nats (zero-shot {min(result.zero_shot_losses):.4f}); "
          f"written to {target_path}")
    return 0


def register(app) -> None:
    app.command("calibrate-target")(calibrate_target)

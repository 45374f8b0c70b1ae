"""The plan: which repetitions a suite runs, in which order, and what each worker is told.

Pure and light (no torch): `run --dry-run`, `--resume` and the parent all read the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional

from eitp_bench.suite import Suite, suite_config_hash, suite_file_name


@dataclass
class RepetitionSpec:
    """Everything a worker process needs; written as JSON, so nothing else leaks in."""

    suite: dict
    suite_name: str
    config_hash: str
    arm: str
    size: str
    seed: int
    repetition: int
    tasks: list[str]
    staging: str = ""
    hardware_profile_id: Optional[str] = None
    position: int = 0  # place of this arm in its round's shuffled order
    cooldown_before_s: float = 0.0  # the thermal cooldown the runner waited just before this repetition
    qualification: Optional[dict] = None  # meters.qualify: the suite's sensor qualification (energy/qualify.py)
    # The round's idle baseline when an earlier repetition of this round measured it (the parent passes it on,
    # runner/parent.py); None: this repetition measures its own (idle_baseline() in worker.py says whose).
    idle: Optional[dict] = None
    estimate: Optional[dict] = None  # the cost model's estimate of the whole plan (analysis/cost_model.py), recorded
    runner_pid: Optional[int] = None  # the runner: its whole process tree is "ours" for the isolation check

    def plan_entry(self, suite: Suite) -> dict:
        """This repetition as the dry-run plan shows it: identity, tasks and every effective setting."""
        from eitp_bench.suite import effective_settings

        return {
            "arm": self.arm, "size": self.size, "seed": self.seed, "repetition": self.repetition,
            "position": self.position, "tasks": list(self.tasks), "settings": effective_settings(suite, self.arm),
        }

    @property
    def label(self) -> str:
        return f"{self.size}-r{self.repetition:03d}-{self.arm}"

    @property
    def key(self) -> tuple[str, str, int]:
        """What makes a repetition one of the plan's: `--resume` skips a key the store already holds."""
        return (self.arm, self.size, self.repetition)


def round_order(arms: list[str], seed: int, size: str) -> list[str]:
    """The arms of one round in a shuffled order, reproducible from the round's seed and size."""
    import random

    order = list(arms)
    random.Random(f"{seed}:{size}:arm-order").shuffle(order)
    return order


def plan(suite: Suite, hardware_profile_id: Optional[str] = None) -> list[RepetitionSpec]:
    """All repetitions in run order: per size, per round, every arm once, in a seeded random order."""
    from eitp_bench.suite.arms import tasks_for_arm  # light: no torch

    config, digest = suite.model_dump(mode="json"), suite_config_hash(suite)
    specs = []
    for size in suite.sizes:
        for rep in range(suite.repetitions):
            seed = suite.seed_for(rep)
            for position, arm in enumerate(round_order(list(suite.arms), seed, size)):
                tasks = tasks_for_arm(arm, list(suite.tasks))
                if tasks:
                    specs.append(
                        RepetitionSpec(config, suite.name, digest, arm, size, seed, rep, tasks,
                                       hardware_profile_id=hardware_profile_id, position=position)
                    )
    return specs


def default_out_dir(suite_name: str) -> Path:
    return Path("eitp-results") / f"{suite_file_name(suite_name)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"

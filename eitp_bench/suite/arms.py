"""What each arm is, declared once and free of torch: the plan, the report and the workloads read it.

- Trained arms: an objective (the loss) and nothing else of their own; every arm shares the
  suite's training settings.
- Ablation arms: the paper's task loss plus ONE of its three terms (thermo, chaos, coherence),
  as in the paper's ablation table.
- Compression arms: a transformation of a trained arm's model (they train as that arm).
- Control arms (the suite's self-checks, `self_check:`): the baseline under a second name (A/A) and the
  baseline plus a planted, measured amount of extra compute (workloads/planted.py). Both train exactly
  as the baseline (same objective, settings and seed); analysis/self_check.py judges them.
"""

from __future__ import annotations

TASK_ORDER = ("train", "lm", "retrieval", "generate", "compress", "theory", "derivation")
COMPRESSION_ARMS = {"eitp-compressed": "eitp-paper", "baseline-int8": "baseline"}  # arm → trained arm

COMPRESSION_TASKS = ("generate", "compress")  # what a compressed artefact can be asked to do

# ablation arm → the one EIT-P term it keeps (the λ of the other two is 0)
ABLATION_TERMS = {
    "eitp-paper-thermo": "thermo",
    "eitp-paper-chaos": "chaos",
    "eitp-paper-coherence": "coherence",
}


# The suite's self-checks: arm → the arm it copies exactly (objective, settings, seed, tasks).
BASELINE_ARM = "baseline"
AA_ARM = "baseline-aa"  # the baseline under a second name: two identical arms must come out identical
PLANTED_ARM = "baseline-planted"  # the baseline plus a known, measured extra cost: it must be seen
CONTROL_ARMS = {AA_ARM: BASELINE_ARM, PLANTED_ARM: BASELINE_ARM}
# The planted effect is read on training time and generation speed only: its other tasks would be cost alone.
PLANTED_TASKS = ("train", "generate")
# Its whole cost is measured by an A/B in its own process, outside every window (workloads/planted.py):
# PLANTED_AB_PAIRS on/off pairs, each unit a lead-in and PLANTED_AB_TIMED timed runs (the cost model prices them).
PLANTED_AB_PAIRS = 5
PLANTED_AB_TIMED = 3
PLANTED_AB_LONG_CALL_S = 0.1  # a generate() call this long is its own lead-in and is timed once


def objective_arm(arm: str) -> str:
    """The objective an arm trains with (a compression arm trains as its base arm, a control arm as the
    baseline)."""
    return CONTROL_ARMS.get(arm) or COMPRESSION_ARMS.get(arm, arm)


def tasks_for_arm(arm: str, tasks: list[str]) -> list[str]:
    """The suite's tasks this arm runs, in TASK_ORDER (compression arms: generate and compress; the
    planted-effect arm: train and generate)."""
    allowed = COMPRESSION_TASKS if arm in COMPRESSION_ARMS else PLANTED_TASKS if arm == PLANTED_ARM else TASK_ORDER
    return [t for t in TASK_ORDER if t in tasks and t in allowed]

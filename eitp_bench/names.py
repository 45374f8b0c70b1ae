"""Metric and window names, declared once: writers (workloads) and readers (analysis) import these.

A name that drifted between writer and reader once mixed greedy and batch-4 runs into a headline
figure (`generate@sample-b1` written, `sample-bs1` read). Names built here cannot drift: both sides
call the same function. Each metric also declares its unit and which direction is better, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional

Direction = Literal["higher_is_better", "lower_is_better"]

# ---- windows (monitor windows; energy entries carry them) ---------------------------------------

TRAIN_WINDOW = "train"
RETRIEVAL_TRAIN_WINDOW = "retrieval-train"
LM_EVAL_WINDOW = "lm-eval"
COMPRESS_WINDOW = "compress"
GENERATE_PREFIX = "generate@"

# EIT-P's own serving setting: sampling at batch 1. Its metrics also carry the plain names.
HEADLINE_GENERATE = ("sample", 1)
# The planted-effect arm's record of its planted cost (workloads/planted.py): `<name>_s` seconds of
# planted work inside the windows and `<name>_share` of the time the task's speed figure is made of.
PLANTED_TRAIN = "planted_train"  # training steps (train_s, step times)
PLANTED_GENERATE = "planted_generate"  # the headline generation setting (tokens_per_s)


def generate_tag(mode: str, batch_size: int) -> str:
    """`sample-b1`, `greedy-b8`: one generation setting."""
    return f"{mode}-b{int(batch_size)}"


def generate_window(mode: str, batch_size: int) -> str:
    return f"{GENERATE_PREFIX}{generate_tag(mode, batch_size)}"


def headline_generate_window() -> str:
    return generate_window(*HEADLINE_GENERATE)


def parse_generate_tag(tag: str) -> Optional[tuple[str, int]]:
    """(mode, batch) of a tag or window name, or None if it is not one."""
    tag = tag.removeprefix(GENERATE_PREFIX)
    mode, sep, batch = tag.rpartition("-b")
    return (mode, int(batch)) if sep and mode and batch.isdigit() else None


def at(metric: str, tag: object) -> str:
    """A metric per setting or distance: `tokens_per_s@sample-b1`, `retrieval_acc@128`."""
    return f"{metric}@{tag}"


def split_at(name: str) -> tuple[str, Optional[str]]:
    base, sep, tag = name.partition("@")
    return base, (tag if sep else None)


# ---- metrics ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    name: str  # the base name (before any @tag)
    unit: str
    direction: Optional[Direction]  # None: neither (a count, a setting)
    meaning: str


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("tokens_per_s", "tokens/s", "higher_is_better", "generated tokens per second of generate() calls"),
        MetricSpec("latency_p50_s", "s", "lower_is_better", "median seconds per generate() call"),
        MetricSpec("latency_p90_s", "s", "lower_is_better", "90th percentile seconds per generate() call"),
        MetricSpec("latency_p99_s", "s", "lower_is_better", "99th percentile seconds per generate() call"),
        MetricSpec("joules_per_token", "J/token", "lower_is_better", "measured joules of the timed runs per token"),
        MetricSpec("step_s", "s", "lower_is_better", "median seconds per training step"),
        MetricSpec("train_joules", "J", "lower_is_better", "measured joules of all training steps"),
        MetricSpec("train_joules_per_step", "J", "lower_is_better", "measured training joules per step"),
        MetricSpec("joules_to_target", "J", "lower_is_better", "measured joules until the quality target"),
        MetricSpec("time_to_target_s", "s", "lower_is_better", "training seconds until the quality target"),
        MetricSpec("target_reached", "bool", None, "1 if the run reached the quality target within its steps"),
        MetricSpec("final_val_loss", "nats/token", "lower_is_better", "validation loss after training"),
        MetricSpec("val_loss", "nats/token", "lower_is_better", "validation cross-entropy"),
        MetricSpec("val_ppl", "1", "lower_is_better", "validation perplexity"),
        MetricSpec("val_accuracy", "1", "higher_is_better", "top-1 next-token validation accuracy"),
        MetricSpec("optimal_ppl", "1", None, "the source's best achievable perplexity (Markov corpus)"),
        MetricSpec("retrieval_acc", "1", "higher_is_better", "key→value retrieval accuracy"),
        MetricSpec("retrieval_acc_long", "1", "higher_is_better", "retrieval accuracy over the second half of the context"),
        MetricSpec("retrieval_n", "queries", None, "retrieval queries scored per distance"),
        MetricSpec("retrieval_chance", "1", None, "chance accuracy of the retrieval task"),
        MetricSpec("model_bytes", "B", "lower_is_better", "bytes of the serialized model"),
        MetricSpec("accuracy_drop", "1", "lower_is_better", "relative accuracy lost by compression"),
        MetricSpec("lr", "1", None, "the learning rate the run trained at"),
        MetricSpec(f"{PLANTED_TRAIN}_s", "s", None, "planted-effect arm: seconds of planted work in the training steps"),
        MetricSpec(f"{PLANTED_TRAIN}_share", "1", None, "planted-effect arm: planted share of the training steps' time"),
        MetricSpec(f"{PLANTED_GENERATE}_s", "s", None, "planted-effect arm: seconds of planted work in the timed "
                   "generate() calls of the headline setting"),
        MetricSpec(f"{PLANTED_GENERATE}_share", "1", None, "planted-effect arm: planted share of those calls' time"),
        MetricSpec("ranks_parameters_identical", "bool", None,
                   "multi-rank: 1 if every rank held bit-identical parameters after training (DDP in step)"),
    )
}


# Undeclared metrics follow a naming convention (specific lower-is-better words first: accuracy_drop
# is not an accuracy; then higher-is-better words; then units). Declared metrics always win.
_LOWER_WORDS = re.compile(r"(drop|increase|loss|ppl|latency|joules|bytes|watts|steps_to)")
_HIGHER = re.compile(r"(per_s$|acc|throughput|ratio|reached|tokens_per_j)")
_LOWER_UNITS = re.compile(r"(_s$|_s_|_j$|_per_token$|_per_step$)")


def direction(name: str) -> Optional[Direction]:
    """Which way is better for a metric: its declaration, else the naming convention, else None."""
    declared = spec(name)
    if declared is not None:
        return declared.direction
    base = split_at(name)[0]
    if _LOWER_WORDS.search(base):
        return "lower_is_better"
    if _HIGHER.search(base):
        return "higher_is_better"
    if _LOWER_UNITS.search(base):
        return "lower_is_better"
    return None


# ---- measured or estimated: one encoding for metric names ----------------------------------------
# An energy figure's method is in its EnergyEntry (counter, sampled, estimated); a joules *metric* made
# from estimates carries this suffix, so no estimate can pose as a measurement under the plain name.
ESTIMATED_SUFFIX = "_estimated"


def estimated(name: str) -> str:
    """The name of a joules metric computed from estimated (not measured) energy."""
    return f"{name}{ESTIMATED_SUFFIX}"


def is_estimated(name: str) -> bool:
    return split_at(name)[0].endswith(ESTIMATED_SUFFIX)


def spec(name: str) -> Optional[MetricSpec]:
    """The declaration of a metric (by its base name), or None."""
    return METRICS.get(split_at(name)[0].removesuffix(ESTIMATED_SUFFIX))

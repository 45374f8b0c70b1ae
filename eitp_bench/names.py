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
# The planted-effect arm's record of its planted cost (workloads/planted.py): `<name>_s` seconds of the
# planted products inside the windows, `<name>_product_share` their share of the time the task's figure
# is made of, and `<name>_share` the planted work's whole share, from its A/B in the arm's own process.
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


def window_seconds(figure: str) -> str:
    """`joules_to_target_window_s`: the duration of the window span a to-target figure rests on."""
    return f"{figure}_window_s"


def window_segments(figure: str) -> str:
    """`joules_to_target_segments`: how many windows (2 edges each) a to-target figure sums."""
    return f"{figure}_segments"


def split_at(name: str) -> tuple[str, Optional[str]]:
    base, sep, tag = name.partition("@")
    return base, (tag if sep else None)


# ---- metrics ---------------------------------------------------------------------------------

# The validation curve of a training run, one value per evaluation: `curve_val_loss@200` is the loss
# after 200 steps, `curve_joules@200` the measured training joules up to then (estimated: suffixed).
CURVE_VAL_LOSS = "curve_val_loss"
CURVE_TRAIN_S = "curve_train_s"
CURVE_JOULES = "curve_joules"
_CURVES = (CURVE_VAL_LOSS, CURVE_TRAIN_S, CURVE_JOULES)

# Facts of the design, not measurements: the shuffled run order, the configured or chosen settings.
# Their spread between repetitions is by construction, never "high variance".
DESIGN_METRICS = frozenset({"round_position", "lr", "steps", "target_val_loss", "heat_sink_temperature_k",
                            "forward_passes_per_step"})


def is_design(name: str) -> bool:
    """Whether a metric is part of the design (or one point of a curve) rather than one measured figure."""
    base = split_at(name)[0]
    return base in DESIGN_METRICS or base.removesuffix(ESTIMATED_SUFFIX) in _CURVES


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
        MetricSpec("steps_to_target", "steps", "lower_is_better",
                   "training steps to the quality target, interpolated linearly between the bracketing evaluations"),
        MetricSpec("target_bracket_lo_step", "steps", None, "the last evaluation's step above the target (0: before training)"),
        MetricSpec("target_bracket_hi_step", "steps", None, "the first evaluation's step at or below the target"),
        MetricSpec("target_bracket_lo_loss", "nats/token", None, "validation loss at the lower bracketing evaluation"),
        MetricSpec("target_bracket_hi_loss", "nats/token", None, "validation loss at the upper bracketing evaluation"),
        MetricSpec("joules_to_target_window_s", "s", None,
                   "the training window's duration from its start to the read at the upper bracketing evaluation"),
        MetricSpec("joules_to_target_segments", "1", None,
                   "energy windows joules_to_target sums: 1, the training window (2 edges for the instrument error)"),
        MetricSpec("time_to_target_s_window_s", "s", None,
                   "the training window's duration from its start to the read at the upper bracketing evaluation"),
        MetricSpec("time_to_target_s_segments", "1", None, "training windows time_to_target_s sums: 1"),
        MetricSpec("eval_snapshots", "1", None,
                   "weight copies taken inside the training window for the evaluations read after it"),
        MetricSpec("eval_snapshots_on_host", "bool", None,
                   "1 if those copies were kept in host memory (the device budget did not hold them)"),
        MetricSpec("final_val_loss", "nats/token", "lower_is_better", "validation loss after training"),
        MetricSpec("zero_shot_val_loss", "nats/token", None, "validation loss of the model before training (step 0)"),
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
        MetricSpec(f"{PLANTED_TRAIN}_s", "s", None, "planted-effect arm: seconds of the planted products in the "
                   "training steps"),
        MetricSpec(f"{PLANTED_TRAIN}_product_share", "1", None, "planted-effect arm: the planted products' own "
                   "share of the training steps' time"),
        MetricSpec(f"{PLANTED_TRAIN}_share", "1", None, "planted-effect arm: planted share of the training steps' "
                   "time, whole (A/B of a step with and without the planted work)"),
        MetricSpec(f"{PLANTED_GENERATE}_s", "s", None, "planted-effect arm: seconds of the planted products in the "
                   "timed generate() calls of the headline setting"),
        MetricSpec(f"{PLANTED_GENERATE}_product_share", "1", None, "planted-effect arm: the planted products' "
                   "own share of those calls' time"),
        MetricSpec(f"{PLANTED_GENERATE}_share", "1", None, "planted-effect arm: planted share of those calls' "
                   "time, whole (A/B of a call with and without the planted work)"),
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

"""Suites: a validated description of what to run (arms, tasks, sizes, repetitions, data, meters).

`load_suite("smoke")` finds a bundled suite in eitp_bench/suites/; `load_suite("my.yaml")` reads a
file. Every problem (unknown key, bad value, YAML syntax, missing file) is one `UserError` that
names the file, the dotted field, the value and what was expected. Nothing runs on a bad suite.
"""

from __future__ import annotations

import hashlib
import json
import typing
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eitp_bench.errors import UserError

# The paper's ablation arms train with the task loss plus ONE of its three terms.
ABLATION_ARMS = ("eitp-paper-thermo", "eitp-paper-chaos", "eitp-paper-coherence")
ARMS = ("baseline", "eitp-paper", "eitp-coded", "eitp-compressed", "baseline-int8", *ABLATION_ARMS)
TASKS = ("train", "lm", "retrieval", "generate", "compress", "theory", "derivation")
SIZES = ("tiny", "small", "medium")
CLAIMS = ("inference_speedup", "training_energy", "model_size", "perplexity", "long_range", "theorem3")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetersConfig(_Section):
    interval: float = Field(0.1, gt=0, description="seconds between power samples")
    idle_s: float = Field(0.0, ge=0, description="idle baseline measured before each repetition's work")
    timeline: bool = False
    co2_country: Optional[str] = Field(None, description="ISO code: codecarbon's offline CO2 figure per repetition")
    cooldown_s: float = Field(0.0, ge=0, description="thermal cooldown: seconds the runner waits between "
                              "repetitions (recorded as provenance.hardware.cooldown_before_s)")


class ModelConfig(_Section):
    pretrained: Optional[str] = None  # a local checkpoint or a cached hub id (never downloaded)
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    dropout: float = Field(0.0, ge=0, lt=1)


class DataConfig(_Section):
    kind: Literal["markov", "text_file", "wikitext2"] = "markov"
    vocab_size: int = Field(64, ge=8, description="markov only; text uses its tokenizer's vocabulary")
    order: int = Field(1, ge=1, le=4)
    concentration: float = Field(0.1, gt=0)
    block_size: int = Field(64, ge=4)
    train_tokens: int = Field(200_000, ge=1)
    val_tokens: int = Field(20_000, ge=1)
    text_file: Optional[str] = None
    tokenizer: Literal["byte", "gpt2"] = "byte"
    val_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = 1234  # the data is the same for every arm and repetition

    @model_validator(mode="after")
    def _text_file_given(self):
        if self.kind == "text_file" and not self.text_file:
            raise ValueError("data.kind is text_file but data.text_file is not set")
        return self


# Settings every arm shares: an arm's objective may add loss terms, never its own optimizer settings.
OPTIMIZER_SETTINGS = (
    "lr", "lr_schedule", "warmup_steps", "weight_decay", "grad_clip", "batch_size", "steps", "precision",
)


class TrainConfig(_Section):
    steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(5e-5, gt=0, description="AdamW learning rate of every arm (lr_policy: equal)")
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0, description="linear warm-up from 0 to lr, then the schedule")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (torch's default 0.01)")
    grad_clip: Optional[float] = Field(None, gt=0, description="max global gradient norm; None = no clipping")
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    lr_policy: Literal["equal", "tuned"] = Field(
        "equal", description="equal: every arm at train.lr; tuned: every arm picks its lr from lr_grid alike"
    )
    lr_grid: list[float] = Field(default_factory=lambda: [1e-4, 3e-4, 1e-3], min_length=1)
    tune_steps: int = Field(50, ge=1, description="lr_policy tuned: steps per grid point (same for every arm)")
    tune_fraction: float = Field(
        0.1, gt=0, lt=1, description="lr_policy tuned: share of the training split held out to score the grid"
    )
    eval_every: int = Field(25, ge=1)
    eval_batches: int = Field(8, ge=1, description="validation blocks of batch_size for each evaluation")
    target_val_loss: Optional[float] = Field(None, gt=0, description="nats: the quality target on real text")
    target_excess_nats: Optional[float] = Field(
        0.5, gt=0, description="markov only: target = the source's entropy rate + this (the known optimum + a fixed excess)"
    )

    @model_validator(mode="after")
    def _grid_positive(self):
        if any(not (v > 0 and v < float("inf")) for v in self.lr_grid):
            raise ValueError(f"train.lr_grid must hold positive finite learning rates, got {self.lr_grid}")
        return self


class GenerateConfig(_Section):
    new_tokens: int = Field(100, ge=1)
    prompt_len: int = Field(16, ge=1)
    batch_sizes: list[int] = Field(default_factory=lambda: [1])
    modes: list[Literal["sample", "greedy"]] = Field(default_factory=lambda: ["sample", "greedy"])
    warmups: int = Field(2, ge=0)
    runs: int = Field(10, ge=1)
    temperature: float = Field(0.7, gt=0)  # EIT-P's serving settings
    top_p: float = Field(0.9, gt=0, le=1)


class RetrievalConfig(_Section):
    seq_len: int = Field(64, ge=8)
    distances: list[int] = Field(default_factory=lambda: [4, 16, 48])
    n_keys: int = Field(4, ge=1)
    vocab_size: int = Field(64, ge=16)
    steps: int = Field(200, ge=1)
    batch_size: int = Field(16, ge=1)
    eval_per_distance: int = Field(64, ge=1)


class CompressConfig(_Section):
    calib_batches: int = Field(4, ge=1)
    eval_blocks: int = Field(64, ge=1, description="validation blocks scored before and after (on CPU)")


class TheoryConfig(_Section):
    """Physical floors (theory and derivation tasks)."""

    temperature_k: float = Field(300.0, gt=0, description="heat-sink temperature in kelvin (Landauer)")
    seq_lens: Optional[list[int]] = None  # derivation prefix lengths; default 8..64 below n_positions
    repeats: int = Field(3, ge=1)
    # Each derivation window repeats its operation until it lasts max(min_window_s, 10 counter update
    # periods); windows under 1 s are reported "below meter resolution".
    min_window_s: float = Field(1.0, gt=0, description="shortest derivation measurement window, seconds")


class DebugConfig(_Section):
    """Test-only fault injection: makes the named arms' repetitions fail on purpose."""

    crash_arms: list[str] = Field(default_factory=list)
    crash_mode: Literal["exception", "exit"] = "exception"
    # the named arms' workers wait while `pause_file` exists (tests kill the parent mid-repetition)
    pause_arms: list[str] = Field(default_factory=list)
    pause_file: str = ""


class Suite(_Section):
    name: str
    description: str = ""
    # smoke: checks the pipeline; its report says its figures are not verdicts on EIT-P
    kind: Literal["smoke", "benchmark"] = "benchmark"
    arms: list[Literal[ARMS]] = Field(min_length=1)  # type: ignore[valid-type]
    tasks: list[Literal[TASKS]] = Field(min_length=1)  # type: ignore[valid-type]
    sizes: list[Literal[SIZES]] = Field(default_factory=lambda: ["tiny"])  # type: ignore[valid-type]
    repetitions: int = Field(5, ge=1)
    seed: int = 0  # repetition r uses seed + r, for every arm alike
    seeds: Optional[list[int]] = None  # or explicit seeds, one per repetition
    device: Literal["cpu", "cuda", "auto"] = "auto"
    timeout_s: float = Field(3600, gt=0, description="per repetition (one process)")
    threads: Optional[int] = Field(None, ge=1, description="torch CPU threads; None = torch's default")
    meters: MetersConfig = Field(default_factory=MetersConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    theory: TheoryConfig = Field(default_factory=TheoryConfig)
    objectives: dict[str, dict[str, Any]] = Field(default_factory=dict)  # arm → loss coefficient overrides
    # Per-arm training settings are refused (an unfair experiment) unless a user forces them; then
    # every verdict over those arms is marked NOT COMPARABLE.
    arm_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    allow_unequal_settings: bool = False
    claims: list[Literal[CLAIMS]] = Field(default_factory=list)  # type: ignore[valid-type]
    thresholds: dict[str, float] = Field(default_factory=dict)  # claim name → threshold override
    debug: DebugConfig = Field(default_factory=DebugConfig)

    @model_validator(mode="after")
    def _consistent(self):
        if self.seeds is not None and len(self.seeds) != self.repetitions:
            raise ValueError(f"seeds has {len(self.seeds)} entries but repetitions is {self.repetitions}")
        bad_arms = sorted(set(self.objectives) - set(ARMS))
        if bad_arms:
            raise ValueError(f"objectives names unknown arms {bad_arms}; known: {list(ARMS)}")
        unknown = sorted(set(self.thresholds) - set(CLAIMS))
        if unknown:
            raise ValueError(f"thresholds names unknown claims {unknown}; known: {list(CLAIMS)}")
        for arm, coefficients in self.objectives.items():
            optimizer = sorted(set(coefficients) & set(OPTIMIZER_SETTINGS + ("max_grad_norm",)))
            if optimizer:
                raise ValueError(
                    f"objectives.{arm}.{optimizer[0]} is an optimizer setting: every arm trains with the same "
                    f"train.{'grad_clip' if optimizer[0] == 'max_grad_norm' else optimizer[0]} "
                    "(use train.lr_policy: tuned to tune each arm's lr on the same grid)"
                )
        for arm, settings in self.arm_settings.items():
            if arm not in ARMS:
                raise ValueError(f"arm_settings names unknown arm {arm!r}; known: {list(ARMS)}")
            unknown = sorted(set(settings) - set(OPTIMIZER_SETTINGS))
            if unknown:
                raise ValueError(f"arm_settings.{arm}.{unknown[0]} is not a training setting; known: {list(OPTIMIZER_SETTINGS)}")
            if settings and not self.allow_unequal_settings:
                key = sorted(settings)[0]
                raise ValueError(
                    f"arm_settings.{arm}.{key} gives arm {arm!r} its own {key}: every arm must train with the same "
                    f"settings (train.{key}); set allow_unequal_settings: true to force it, and every verdict over "
                    "that arm will be marked NOT COMPARABLE"
                )
        return self

    def seed_for(self, repetition: int) -> int:
        return self.seeds[repetition] if self.seeds is not None else self.seed + repetition

    @property
    def pretrained(self) -> Optional[str]:
        """The checkpoint the arms start from. The synthetic regime (Markov data, made-up token ids)
        always trains fresh weights, so `--set data.kind=markov` on a pretrained suite needs nothing else."""
        return None if self.data.kind == "markov" else self.model.pretrained

    def train_settings(self, arm: str) -> "TrainConfig":
        """The training settings an arm really uses: train, plus forced arm_settings (if any)."""
        from eitp_bench.workloads.arms import objective_arm  # a compression arm trains as its base arm

        overrides = self.arm_settings.get(arm) or self.arm_settings.get(objective_arm(arm)) or {}
        return self.train.model_copy(update=overrides) if overrides else self.train


def effective_settings(suite: "Suite", arm: str) -> dict[str, Any]:
    """Every setting that shapes an arm's results, for the plan and the report's fairness table.

    Keys other than `objective` must be equal across the arms of a claim; the objective (the loss)
    is what the experiment varies. With lr_policy tuned, `lr` is "tuned" and the grid is shown:
    each repetition records the lr it chose (metric `lr`).
    """
    from eitp_bench.workloads.arms import objective_arm  # light: no torch

    t = suite.train_settings(arm)
    settings: dict[str, Any] = {
        "lr": "tuned" if t.lr_policy == "tuned" else t.lr,
        "lr_policy": t.lr_policy,
        "lr_schedule": t.lr_schedule,
        "warmup_steps": t.warmup_steps,
        "weight_decay": t.weight_decay,
        "grad_clip": t.grad_clip,
        "batch_size": t.batch_size,
        "steps": t.steps,
        "precision": t.precision,
        "optimizer": "AdamW",
        "model": suite.pretrained or "fresh weights (GPT2Config)",
        "data": suite.data.kind,
        "block_size": suite.data.block_size,
        "target": _target_text(suite, t),
        "objective": objective_arm(arm),
    }
    if t.lr_policy == "tuned":
        settings.update(lr_grid=list(t.lr_grid), tune_steps=t.tune_steps)
    coefficients = suite.objectives.get(objective_arm(arm))
    if coefficients:
        settings["objective"] += " " + json.dumps(coefficients, sort_keys=True)
    return settings


def _target_text(suite: "Suite", t: "TrainConfig") -> Optional[str]:
    """The quality target of energy- and time-to-target, as defined once for the suite."""
    if suite.data.kind == "markov" and t.target_excess_nats is not None:
        return f"entropy rate + {t.target_excess_nats:g} nats"
    if t.target_val_loss is not None:
        return f"val loss {t.target_val_loss:g} nats"
    return None


LOSS_KEYS = ("objective",)  # the one thing arms may differ in


def unequal_settings(settings_by_arm: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{setting: {arm: value}} for every setting other than the loss that differs between arms."""
    keys = sorted({k for s in settings_by_arm.values() for k in s} - set(LOSS_KEYS))
    out = {}
    for key in keys:
        values = {arm: s.get(key) for arm, s in settings_by_arm.items()}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            out[key] = values
    return out


# ----------------------------------------------------------------------------- loading

SUITES_PACKAGE_DIR = "suites"


def bundled_suites() -> list[str]:
    from importlib.resources import files

    folder = files("eitp_bench") / SUITES_PACKAGE_DIR
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _read_suite_text(name_or_path: str) -> tuple[str, str]:
    """(text, label for messages) of a suite file given by path or bundled name."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in name_or_path:
        if not path.is_file():
            raise UserError(
                f"suite file {name_or_path!r} does not exist",
                fix=f"give a path to a suite YAML file, or a bundled suite name: {', '.join(bundled_suites())}",
            )
        return path.read_text(encoding="utf-8"), str(path)
    from importlib.resources import files

    resource = files("eitp_bench") / SUITES_PACKAGE_DIR / f"{name_or_path}.yaml"
    if not resource.is_file():
        raise UserError(
            f"no suite named {name_or_path!r}",
            fix=f"use one of {', '.join(bundled_suites())}, or a path to a suite YAML file",
        )
    return resource.read_text(encoding="utf-8"), f"{name_or_path} ({resource})"


def _parse_yaml(text: str, label: str) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"suite {label}: YAML syntax error at{where}: {problem}", fix="correct the YAML at that line") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise UserError(f"suite {label}: expected a mapping of settings at the top, got {type(raw).__name__}", fix="write the suite as `key: value` lines")
    return raw


def _field_type(model: type[BaseModel], key: str):
    """The annotation of `key` in a pydantic model, or None if there is no such field."""
    field = model.model_fields.get(key)
    if field is None:
        return None
    ann = field.annotation
    if typing.get_origin(ann) is typing.Union:  # Optional[X] → X
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        ann = args[0] if len(args) == 1 else ann
    return ann


def apply_override(raw: dict[str, Any], assignment: str, label: str = "--set") -> None:
    """Apply one `dotted.key=value` (value parsed as a YAML scalar/list) to a raw suite dict."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"--set {assignment!r} is not KEY=VALUE", fix="write it like --set train.steps=50")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    parts = key.split(".")
    model: Any = Suite
    node = raw
    for i, part in enumerate(parts):
        dotted = ".".join(parts[: i + 1])
        last = i == len(parts) - 1
        if isinstance(model, type) and issubclass(model, BaseModel):
            ann = _field_type(model, part)
            if ann is None:
                known = ", ".join(sorted(model.model_fields))
                raise UserError(f"--set {key}: unknown setting {dotted!r}", fix=f"known settings here: {known}")
        elif typing.get_origin(model) is dict:
            ann = typing.get_args(model)[1]  # a free-form mapping (thresholds, arm_settings.<arm>): any key
        else:
            raise UserError(f"--set {key}: {'.'.join(parts[:i])!r} is not a section", fix="set that value directly")
        if last:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node, model = child, ann


def _format_validation_error(err: ValidationError, label: str) -> UserError:
    problems = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            problems.append(f"unknown key {field!r}")
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            problems.append(f"field {field!r} is required")
        elif e["loc"]:
            problems.append(f"field {field!r} has value {e.get('input')!r}: {msg}")
        else:
            problems.append(msg)
    more = f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else ""
    return UserError(f"suite {label}: {problems[0]}{more}", fix="correct the suite file or the --set value")


def load_suite(name_or_path: str, overrides: Optional[list[str]] = None) -> Suite:
    """A validated Suite from a bundled name or a path, with `--set` overrides applied."""
    text, label = _read_suite_text(name_or_path)
    raw = _parse_yaml(text, label)
    for assignment in overrides or []:
        apply_override(raw, assignment, label)
    raw.setdefault("name", Path(name_or_path).stem)
    try:
        return Suite.model_validate(raw)
    except ValidationError as err:
        raise _format_validation_error(err, label) from None


def suite_config_hash(suite: Suite) -> str:
    """sha256 of the canonical resolved config: identical for equal suites whatever the key order."""
    canonical = json.dumps(suite.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

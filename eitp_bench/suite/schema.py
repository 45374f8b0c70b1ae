"""Suites: a validated description of what to run (arms, tasks, sizes, repetitions, data, meters).

`load_suite("smoke")` finds a bundled suite in eitp_bench/suites/; `load_suite("my.yaml")` reads a
file. Every problem (unknown key, bad value, YAML syntax, missing file) is one `UserError` that
names the file, the dotted field, the value and what was expected. Nothing runs on a bad suite.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from eitp_bench.suite import rules as suite_rules
from eitp_bench.errors import UserError
from eitp_bench.suite.problems import Problem, SuiteInvalid, attribute_to_overrides
from eitp_bench.suite.rules import MAX_SEED, OPTIMIZER_SETTINGS  # noqa: F401  (suite.schema.OPTIMIZER_SETTINGS, as before)

# The paper's ablation arms train with the task loss plus ONE of its three terms.
ABLATION_ARMS = ("eitp-paper-thermo", "eitp-paper-chaos", "eitp-paper-coherence")
# The self-check arms (suite/arms.CONTROL_ARMS): added to `arms` by the `self_check` switches.
CONTROL_ARMS = ("baseline-aa", "baseline-planted")
ARMS = ("baseline", "eitp-paper", "eitp-coded", "eitp-compressed", "baseline-int8", *ABLATION_ARMS, *CONTROL_ARMS)
TASKS = ("train", "lm", "retrieval", "generate", "compress", "theory", "derivation")
SIZES = ("tiny", "small", "medium")
CLAIMS = ("inference_speedup", "training_energy", "model_size", "perplexity", "long_range", "theorem3")

# Limits that keep one bad or hostile suite from exhausting the machine before (or while) it runs:
# the plan holds every repetition in memory, and a worker allocates what these ask for.
MAX_REPETITIONS = 10_000
MAX_POSITIONS = 16_384  # a fresh model's context (GPT-2 has 1024)
MAX_BATCH = 65_536
MAX_TOKENS = 100_000_000  # per Markov split (8 bytes a token)
MAX_STEPS = 10_000_000
MAX_VOCAB = 1_000_000


def _printable(value: str) -> str:
    """Names and paths hold no control characters (no newline, escape sequence or NUL)."""
    bad = next((c for c in value if ord(c) < 32 or 127 <= ord(c) < 160), None)
    if bad is not None:
        raise ValueError(f"printable text is expected; it holds the control character U+{ord(bad):04X}")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]
PathText = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_printable)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
# A hub commit: pinned inputs are reproducible; a branch name ("main") moves, so it is refused.
def _quoted_hash(value: Any) -> Any:
    if isinstance(value, (int, float)):  # YAML reads an all-digit hash (or 12e34…) as a number
        raise ValueError("a commit hash that reads as a number must be quoted: revision: '<40 hex digits>'")
    return value


Revision = Annotated[str, BeforeValidator(_quoted_hash),
                     Field(pattern=r"^[0-9a-f]{40}$", description="a 40-hex hub commit hash")]


class RulesBroken(ValueError):
    """The cross-field problems of a suite (suite_rules), carried through pydantic's ValidationError."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.text for p in problems))
        self.problems = problems


class _Section(BaseModel):
    # strict: `true` is not 1 and "5" is not 5; no NaN or infinity in any float (`lr: .inf`)
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class MetersConfig(_Section):
    interval: float = Field(0.1, ge=0.001, le=60, description="seconds between power samples")
    idle_s: float = Field(0.0, ge=0, le=3600, description="idle baseline measured before each repetition's work")
    timeline: bool = False
    co2_country: Optional[str] = Field(None, pattern=r"^[A-Za-z]{3}$",
                                       description="3-letter ISO code: codecarbon's offline CO2 figure per repetition")
    cooldown_s: float = Field(0.0, ge=0, le=86_400, description="thermal cooldown: seconds the runner waits between "
                              "repetitions (recorded as provenance.hardware.cooldown_before_s)")
    qualify: bool = Field(False, description="qualify every sensor at the start of the suite (a few seconds of "
                          "an on/off load; stored as provenance.hardware.qualification): energy claims below "
                          "the measured instrument resolution are then INCONCLUSIVE")
    min_window_s: float = Field(5.0, ge=0, le=3600, description="tasks repeat work until an energy window lasts this "
                                "long; windows under 5 s (and 50 counter updates) are flagged not_steady "
                                "whatever this says, and the claims judge skips them")


class ModelConfig(_Section):
    pretrained: Optional[PathText] = None  # a local checkpoint or a cached hub id (never downloaded)
    revision: Optional[Revision] = Field(None, description="the hub commit of `pretrained` that prepare fetches "
                                         "and runs read; None: whatever the cache holds (each run records it)")
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    dropout: float = Field(0.0, ge=0, lt=1)


class DataConfig(_Section):
    kind: Literal["markov", "text_file", "wikitext2"] = "markov"
    vocab_size: int = Field(64, ge=8, le=MAX_VOCAB, description="markov only; text uses its tokenizer's vocabulary")
    order: int = Field(1, ge=1, le=4)
    concentration: float = Field(0.1, gt=0, le=1e6)
    block_size: int = Field(64, ge=4, le=MAX_POSITIONS)
    train_tokens: int = Field(200_000, ge=1, le=MAX_TOKENS)
    val_tokens: int = Field(20_000, ge=1, le=MAX_TOKENS)
    text_file: Optional[PathText] = None
    tokenizer: Literal["byte", "gpt2"] = "byte"
    val_fraction: float = Field(0.1, gt=0, lt=1)
    seed: int = Field(1234, ge=0, le=MAX_SEED - 2)  # (the Markov samples use seed + 1 and seed + 2) the data is the same for every arm and repetition
    revision: Optional[Revision] = Field(None, description="wikitext2: the hub commit of the data set that prepare "
                                         "fetches and runs read; None: whatever the cache holds (each run records it)")

    @model_validator(mode="after")
    def _text_file_given(self):
        if self.kind == "text_file" and not self.text_file:
            raise ValueError("data.kind is text_file but data.text_file is not set")
        return self


# Settings every arm shares (suite_rules.OPTIMIZER_SETTINGS): an arm's objective may add loss terms,
# never its own optimizer settings.


class TargetSource(_Section):
    """How train.target_val_loss was set (calibrate-target writes it; a hand-set target says so)."""

    method: Literal["calibrated", "published_estimate", "user"]
    note: str = Field("", max_length=2000)
    pilots: Optional[int] = Field(None, ge=1)
    rule: Optional[str] = Field(None, max_length=500)
    date: Optional[str] = Field(None, max_length=40)
    hardware_profile: Optional[str] = Field(None, max_length=200)
    zero_shot_loss: Optional[float] = Field(None, gt=0, description="the step-0 validation loss the pilots measured")
    pilot_best_losses: Optional[list[float]] = Field(None, max_length=10_000)


class TrainConfig(_Section):
    steps: int = Field(100, ge=1, le=MAX_STEPS)
    batch_size: int = Field(8, ge=1, le=MAX_BATCH)
    lr: float = Field(5e-5, gt=0, description="AdamW learning rate of every arm (lr_policy: equal)")
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS, description="linear warm-up from 0 to lr, then the schedule")
    warmup_untimed_steps: int = Field(
        3, ge=0, le=1000, description="steps run before the first training window and undone (kernels, allocator, "
        "communicators warm), the same for every arm; not the lr warm-up (warmup_steps)")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (torch's default 0.01)")
    grad_clip: Optional[float] = Field(None, gt=0, description="max global gradient norm; None = no clipping")
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    lr_policy: Literal["equal", "tuned"] = Field(
        "equal", description="equal: every arm at train.lr; tuned: every arm picks its lr from lr_grid alike"
    )
    lr_grid: list[Annotated[float, Field(gt=0)]] = Field(default_factory=lambda: [1e-4, 3e-4, 1e-3], min_length=1, max_length=100)
    tune_steps: int = Field(50, ge=1, le=MAX_STEPS, description="lr_policy tuned: steps per grid point (same for every arm)")
    tune_fraction: float = Field(
        0.1, gt=0, lt=1, description="lr_policy tuned: share of the training split held out to score the grid"
    )
    eval_every: int = Field(25, ge=1, le=MAX_STEPS)
    eval_batches: int = Field(8, ge=1, le=100_000, description="validation blocks of batch_size for each evaluation")
    target_val_loss: Optional[float] = Field(None, gt=0, description="nats: the quality target on real text")
    target_source: Optional[TargetSource] = Field(None, description="how target_val_loss was set (not hashed)")
    target_excess_nats: Optional[float] = Field(
        0.5, gt=0, description="markov only: target = the source's entropy rate + this (the known optimum + a fixed excess)"
    )

    @model_validator(mode="after")
    def _target_below_zero_shot(self):
        source = self.target_source
        if source is not None and source.zero_shot_loss is not None and self.target_val_loss is not None:
            if self.target_val_loss >= source.zero_shot_loss:
                raise ValueError(
                    f"target_val_loss {self.target_val_loss:g} is at or above the zero-shot validation loss "
                    f"{source.zero_shot_loss:g} measured in target_source: the untrained model already meets it; "
                    "set a lower target (eitp-bench calibrate-target SUITE measures one)")
        return self


class GenerateConfig(_Section):
    new_tokens: int = Field(100, ge=1, le=MAX_POSITIONS)
    prompt_len: int = Field(16, ge=1, le=MAX_POSITIONS)
    batch_sizes: list[Annotated[int, Field(ge=1, le=MAX_BATCH)]] = Field(
        default_factory=lambda: [1], min_length=1, max_length=64)
    modes: list[Literal["sample", "greedy"]] = Field(default_factory=lambda: ["sample", "greedy"], min_length=1)
    warmups: int = Field(2, ge=0, le=10_000)
    runs: int = Field(10, ge=1, le=10_000)
    temperature: float = Field(0.7, gt=0, le=100)  # EIT-P's serving settings
    top_p: float = Field(0.9, gt=0, le=1)


class RetrievalConfig(_Section):
    seq_len: int = Field(64, ge=8, le=MAX_POSITIONS)
    distances: list[int] = Field(default_factory=lambda: [4, 16, 48], min_length=1, max_length=1024)
    n_keys: int = Field(4, ge=1, le=10_000)
    vocab_size: int = Field(64, ge=16, le=MAX_VOCAB)
    steps: int = Field(200, ge=1, le=MAX_STEPS)
    batch_size: int = Field(16, ge=1, le=MAX_BATCH)
    eval_per_distance: int = Field(64, ge=1, le=100_000)


class CompressConfig(_Section):
    calib_batches: int = Field(4, ge=1, le=10_000)
    eval_blocks: int = Field(64, ge=1, le=1_000_000, description="validation blocks scored before and after (on CPU)")


class SelfCheckConfig(_Section):
    """The suite's own proof (docs/self-checks.md): an A/A control arm and a planted-effect arm, each
    run in the suite's rounds like any arm. A switch adds its arm to `arms` (listing it there does too)."""

    aa: bool = Field(False, description="add baseline-aa: the baseline under a second name")
    planted: bool = Field(False, description="add baseline-planted: the baseline plus planted extra compute")
    # Extra matrix products per forward pass, sized to this share of the pass's (training: the step's)
    # arithmetic. What it costs in time is measured in every run, never assumed from this figure.
    planted_fraction: float = Field(0.1, gt=0, le=100)


class TheoryConfig(_Section):
    """Physical floors (theory and derivation tasks)."""

    temperature_k: float = Field(300.0, gt=0, le=1e6, description="heat-sink temperature in kelvin (Landauer)")
    # derivation prefix lengths; default 8..64 below n_positions
    seq_lens: Optional[list[Annotated[int, Field(ge=1, le=MAX_POSITIONS)]]] = Field(None, min_length=1, max_length=256)
    repeats: int = Field(3, ge=1, le=1000)
    # Each derivation window repeats its operation until it lasts max(min_window_s, 10 counter update
    # periods); windows under 1 s are reported "below meter resolution".
    min_window_s: float = Field(1.0, gt=0, le=3600, description="shortest derivation measurement window, seconds")


class DebugConfig(_Section):
    """Test-only fault injection: makes the named arms' repetitions fail on purpose."""

    crash_arms: list[Literal[ARMS]] = Field(default_factory=list, max_length=len(ARMS))  # type: ignore[valid-type]
    crash_mode: Literal["exception", "exit"] = "exception"
    # the named arms' workers wait while `pause_file` exists (tests kill the parent mid-repetition)
    pause_arms: list[Literal[ARMS]] = Field(default_factory=list, max_length=len(ARMS))  # type: ignore[valid-type]
    pause_file: str = Field("", max_length=4096)
    crash_rank: Optional[int] = Field(None, ge=0, le=100_000, description="multi-rank: only this rank fails (default every rank)")


def _host_port(value: str) -> str:
    host, _, port = value.rpartition(":")
    if not host or any(c.isspace() for c in host) or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("HOST:PORT is expected, e.g. node001:29500 (the port 1 … 65535)")
    return value


Endpoint = Annotated[str, Field(max_length=300), AfterValidator(_printable), AfterValidator(_host_port)]


class LauncherConfig(_Section):
    """Multi-rank repetitions (torchrun): every repetition launches this many ranks afresh.

    world size = nproc_per_node × nnodes; train.batch_size is the *global* batch, split evenly over
    the ranks. node_rank and rdzv_endpoint say where this machine sits; they differ between the
    machines of one run and are left out of the configuration hash (eitp_bench/distributed/).
    Rules across fields (node_rank below nnodes, an endpoint for several machines, the batch split)
    are suite_rules._launcher's.
    """

    nproc_per_node: int = Field(1, ge=1, le=1024, description="ranks on each machine (usually one per GPU)")
    nnodes: int = Field(1, ge=1, le=100_000, description="machines taking part in every repetition")
    node_rank: int = Field(0, ge=0, le=100_000, description="this machine's place, 0 … nnodes-1; node 0 writes the records")
    rdzv_endpoint: Optional[Endpoint] = Field(None, description="HOST:PORT on node 0 where the machines meet "
                                         "(required with nnodes > 1; one machine picks a free local port)")
    join_timeout_s: float = Field(900, gt=0, le=86_400, description="how long a repetition waits for every machine to join")

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nnodes


# launcher fields that say where one machine sits, not what the experiment is: outside the config hash
LAUNCHER_PLACEMENT_FIELDS = ("node_rank", "rdzv_endpoint", "join_timeout_s")


class Suite(_Section):
    name: Name  # the display name; suite_file_name(name) where it names a file or folder
    description: str = Field("", max_length=10_000)
    # smoke: checks the pipeline; its report says its figures are not verdicts on EIT-P
    kind: Literal["smoke", "benchmark"] = "benchmark"
    arms: list[Literal[ARMS]] = Field(min_length=1, max_length=len(ARMS))  # type: ignore[valid-type]
    tasks: list[Literal[TASKS]] = Field(min_length=1, max_length=len(TASKS))  # type: ignore[valid-type]
    sizes: list[Literal[SIZES]] = Field(default_factory=lambda: ["tiny"], min_length=1, max_length=len(SIZES))  # type: ignore[valid-type]
    repetitions: int = Field(5, ge=1, le=MAX_REPETITIONS)
    seed: Seed = 0  # repetition r uses seed + r, for every arm alike
    seeds: Optional[list[Seed]] = Field(None, max_length=MAX_REPETITIONS)  # or explicit seeds, one per repetition
    device: Literal["cpu", "cuda", "auto"] = "auto"
    timeout_s: float = Field(3600, gt=0, le=7 * 86_400, description="per repetition (one process)")
    threads: Optional[int] = Field(None, ge=1, le=4096, description="torch CPU threads; None = torch's default")
    meters: MetersConfig = Field(default_factory=MetersConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    compress: CompressConfig = Field(default_factory=CompressConfig)
    theory: TheoryConfig = Field(default_factory=TheoryConfig)
    self_check: SelfCheckConfig = Field(default_factory=SelfCheckConfig)
    objectives: dict[str, dict[str, Any]] = Field(default_factory=dict)  # arm → loss coefficient overrides
    # Per-arm training settings are refused (an unfair experiment) unless a user forces them; then
    # every verdict over those arms is marked NOT COMPARABLE.
    arm_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    allow_unequal_settings: bool = False
    # Read by the report (analysis/selection.py): only the listed headline claims are judged (empty: all), and a
    # threshold here replaces the claims file's, said beside the verdict.
    claims: list[Literal[CLAIMS]] = Field(default_factory=list, max_length=len(CLAIMS))  # type: ignore[valid-type]
    thresholds: dict[str, float] = Field(default_factory=dict)  # claim name → threshold override
    debug: DebugConfig = Field(default_factory=DebugConfig)
    # Where it was read from, for messages: the file's label and the --set assignments by key.
    _source: str = PrivateAttr("")
    _overrides: dict = PrivateAttr(default_factory=dict)
    launcher: LauncherConfig = Field(default_factory=LauncherConfig)

    @model_validator(mode="after")
    def _consistent(self):
        for on, arm in ((self.self_check.aa, CONTROL_ARMS[0]), (self.self_check.planted, CONTROL_ARMS[1])):
            if on and arm not in self.arms:  # the switch adds the arm once; a suite.json already lists it
                self.arms.append(arm)
        found = suite_rules.problems(self, arms=ARMS, claims=CLAIMS) + self._arm_settings_problems()
        if found:
            raise RulesBroken(found)
        return self

    def _arm_settings_problems(self) -> list[Problem]:
        """Forced per-arm training settings hold valid values (train_settings() copies them unchecked)."""
        out = []
        for arm, settings in self.arm_settings.items():
            known = {k: v for k, v in settings.items() if k in OPTIMIZER_SETTINGS}
            try:
                TrainConfig.model_validate({**self.train.model_dump(), **known})
            except ValidationError as err:
                out += [Problem(f"arm_settings.{arm}." + ".".join(map(str, e["loc"])), e["msg"], e.get("input"))
                        for e in err.errors()]
        return out

    @property
    def context_length(self) -> int:
        """Positions the model is built with (suite_rules.context_length)."""
        return suite_rules.context_length(self)

    def seed_for(self, repetition: int) -> int:
        return self.seeds[repetition] if self.seeds is not None else self.seed + repetition

    @property
    def pretrained(self) -> Optional[str]:
        """The checkpoint the arms start from. The synthetic regime (Markov data, made-up token ids)
        always trains fresh weights, so `--set data.kind=markov` on a pretrained suite needs nothing else."""
        return None if self.data.kind == "markov" else self.model.pretrained

    def train_settings(self, arm: str) -> "TrainConfig":
        """The training settings an arm really uses: train, plus forced arm_settings (if any)."""
        from eitp_bench.suite.arms import objective_arm  # a compression arm trains as its base arm

        overrides = self.arm_settings.get(arm) or self.arm_settings.get(objective_arm(arm)) or {}
        return self.train.model_copy(update=overrides) if overrides else self.train


_UNSAFE_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FILE_NAME = 64


def suite_file_name(name: str) -> str:
    """A suite's name made safe to use in a path (the default results folder …): ASCII letters,
    digits, `.`, `_` and `-` only, so no slash, no `..`, no control character, no leading dot
    or dash; at most MAX_FILE_NAME characters. The name itself stays the display name."""
    safe = _UNSAFE_IN_FILE_NAMES.sub("_", name).lstrip("._-")[:MAX_FILE_NAME].rstrip("._-")
    return safe or "suite"


def effective_settings(suite: "Suite", arm: str) -> dict[str, Any]:
    """Every setting that shapes an arm's results, for the plan and the report's fairness table.

    Keys other than `objective` must be equal across the arms of a claim; the objective (the loss)
    is what the experiment varies. With lr_policy tuned, `lr` is "tuned" and the grid is shown:
    each repetition records the lr it chose (metric `lr`).
    """
    from eitp_bench.suite.arms import objective_arm  # light: no torch

    t = suite.train_settings(arm)
    settings: dict[str, Any] = {
        "lr": "tuned" if t.lr_policy == "tuned" else t.lr,
        "lr_policy": t.lr_policy,
        "lr_schedule": t.lr_schedule,
        "warmup_steps": t.warmup_steps,
        "warmup_untimed_steps": suite.train.warmup_untimed_steps,
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
    """(text, label for messages) of a suite file given by path or bundled name.

    Refuses (SuiteInvalid) a file over safe_yaml.MAX_FILE_BYTES without reading all of it, and one
    that is not UTF-8.
    """
    from eitp_bench.suite.safe_yaml import MAX_FILE_BYTES, YamlRefused, decode

    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in name_or_path:
        if not path.is_file():
            from eitp_bench.file_kinds import not_a_file

            raise UserError(
                f"suite file {name_or_path!r} {not_a_file(path) or 'is not a regular file'}",
                fix=f"give a path to a suite YAML file, or a bundled suite name: {', '.join(bundled_suites())}",
            )
        label = str(path)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as err:
            raise UserError(f"cannot read suite file {label}: {err.strerror}", fix="check the path and its permissions") from None
    else:
        from importlib.resources import files

        resource = files("eitp_bench") / SUITES_PACKAGE_DIR / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise UserError(
                f"no suite named {name_or_path!r}",
                fix=f"use one of {', '.join(bundled_suites())}, or a path to a suite YAML file",
            )
        label, data = f"{name_or_path} ({resource})", resource.read_bytes()
    try:
        return decode(data), label
    except YamlRefused as refused:
        raise SuiteInvalid(label, [refused.problem], fix="save the suite as a small UTF-8 YAML file") from None


def _parse_yaml(text: str, label: str) -> dict[str, Any]:
    from eitp_bench.suite.safe_yaml import YamlRefused, load_plain

    try:
        return load_plain(text)
    except YamlRefused as refused:
        raise SuiteInvalid(label, [refused.problem], fix="correct the YAML there") from None


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


def apply_override(raw: dict[str, Any], assignment: str) -> Optional[Problem]:
    """Apply one `dotted.key=value` (value read as YAML by the same safe reader as suite files) to a
    raw suite dict; a Problem (source: this --set) instead when it cannot be applied."""
    from eitp_bench.suite.safe_yaml import YamlRefused, load_plain

    source = f"--set {assignment}"
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        return Problem("", "is not KEY=VALUE; write it like --set train.steps=50", source=source)
    try:
        value = load_plain(text, top_level=False) if text.strip() else ""
    except YamlRefused as refused:
        inner = refused.problem
        if not inner.expected.startswith("YAML syntax error"):
            where = key if inner.field in ("", "(top level)") else f"{key}.{inner.field}"
            return Problem(where, inner.expected, source=source)
        value = text  # not YAML: the text itself (a description with a colon)
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
                return Problem(dotted, f"unknown setting {dotted!r}; known settings here: {known}", source=source)
        elif typing.get_origin(model) is dict:
            ann = typing.get_args(model)[1]  # a free-form mapping (thresholds, arm_settings.<arm>): any key
        else:
            return Problem(".".join(parts[:i]), "is not a section: set that value directly", source=source)
        if last:
            node[part] = value
        else:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node, model = child, ann
    return None


def _schema_problems(err: ValidationError) -> list[Problem]:
    """pydantic's errors, all of them, as Problems (cross-field ones unpacked from RulesBroken)."""
    problems = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"])
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, RulesBroken):
            problems += [Problem(p.field if not field else f"{field}.{p.field}", p.expected, p.value) for p in cause.problems]
            continue
        if e["type"] == "extra_forbidden":
            problems.append(Problem(field, f"unknown key {field!r}: no such setting here (a typo?)", e.get("input")))
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            problems.append(Problem(field, "is required"))
        else:
            problems.append(Problem(field or "(top level)", msg, e.get("input")))
    return problems


def load_suite(name_or_path: str, overrides: Optional[list[str]] = None) -> Suite:
    """A validated Suite from a bundled name or a path, with `--set` overrides applied.

    Every problem found (YAML, --set, schema, cross-field rules) is reported at once as one
    SuiteInvalid; the file and each --set are named as the source of their problems.
    """
    from eitp_bench.suite.safe_yaml import non_finite

    text, label = _read_suite_text(name_or_path)
    raw = _parse_yaml(text, label)
    problems, applied = [], {}
    for assignment in overrides or []:
        problem = apply_override(raw, assignment)
        if problem is not None:
            problems.append(problem)
        else:
            applied[assignment.partition("=")[0].strip()] = assignment
    raw.setdefault("name", Path(name_or_path).stem)
    problems += non_finite(raw)
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as err:
        known = {p.field for p in problems}
        problems += [p for p in _schema_problems(err) if p.field not in known]  # a NaN once, not twice
    if problems:
        attribute_to_overrides(problems, applied, label)
        raise SuiteInvalid(label, problems)
    suite._source, suite._overrides = label, applied
    return suite


def suite_config_hash(suite: Suite) -> str:
    """sha256 of the canonical resolved config: identical for equal suites whatever the key order."""
    config = suite.model_dump(mode="json")
    config["train"].pop("target_source", None)  # how the target was set is a note, not part of the experiment
    for section in ("model", "data"):  # an unpinned input hashes as before pins existed
        if config[section].get("revision") is None:
            config[section].pop("revision", None)
    launcher = config.pop("launcher")
    if suite.launcher.world_size > 1:  # a single process hashes as before the launcher existed
        config["launcher"] = {k: v for k, v in launcher.items() if k not in LAUNCHER_PLACEMENT_FIELDS}
    # self_check's switches show in `arms` (a switch and a listed arm are the same experiment); a suite
    # without the planted arm hashes as before self_check existed
    self_check = config.pop("self_check")
    if CONTROL_ARMS[1] in suite.arms:
        config["self_check"] = {"planted_fraction": self_check["planted_fraction"]}
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

"""The cost model: how long a suite's plan takes, per phase, before anything runs.

Pure arithmetic, no torch and no store: `estimate(suite, hardware, measured=None) -> Estimate`.
`run --dry-run` shows it; the runner records it with every repetition (provenance.hardware.cost_estimate)
so the report can set it against the actual times (analysis/runtime.py).

Two sources, said in `Estimate.source`:
- "profile": a roofline from the hardware's published figures (hardware_profiles/*.yaml: FLOP/s per
  precision, memory bandwidth, CPU cores) and the suite's settings (model shape, steps, batch, block
  size, tokens generated, evaluation batches, repetitions × arms), with efficiencies and per-call
  overheads that are our assumptions (the constants below). Uncertainty: a factor range.
- "measured": per-step and per-token times of earlier runs of this suite on this hardware, read from
  the store by analysis/runtime.py and handed in as `MeasuredRates`. Uncertainty: the spread (min–max)
  over the measured repetitions. A phase with no measurement falls back to the profile ("mixed").

Phases (`PHASES`): process start and idle (fork, CUDA context, meters, the idle baseline), train
(loading weights and data, LM fine-tuning with its evaluations, E_min's parameter entropy, the lm task),
retrieval, generate, compress (the artefact and its CPU quality evaluation), theory (theory + derivation).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Optional

from eitp_bench.suite import Suite
from eitp_bench import names
from eitp_bench.suite.arms import (COMPRESSION_ARMS, PLANTED_AB_LONG_CALL_S, PLANTED_AB_PAIRS, PLANTED_AB_TIMED,
                                   PLANTED_ARM, objective_arm, tasks_for_arm)
from eitp_bench.workloads.sizes import PUBLISHED_GPT2, SIZES, gpt2_parameters

PHASES = ("start_idle", "train", "retrieval", "generate", "compress", "theory")
PHASE_TASKS = {"train": ("train", "lm"), "retrieval": ("retrieval",), "generate": ("generate",),
               "compress": ("compress",), "theory": ("theory", "derivation")}

# ---- assumptions (ours, not published): efficiencies and overheads of a Hugging Face GPT-2 in eager PyTorch --
GPU_MATMUL_EFFICIENCY = 0.35  # share of peak FLOP/s a training/evaluation step reaches (MFU)
CPU_MATMUL_EFFICIENCY = 0.30
BANDWIDTH_EFFICIENCY = 0.6  # share of peak memory bandwidth a weight-streaming decode step reaches
CPU_BANDWIDTH_PER_THREAD = 12e9  # bytes/s one core streams; a process with few threads gets no more
ASSUMED_CPU_FLOPS_PER_CORE = 64e9  # fp32, when the CPU's profile has no figure (AVX2: 2 FMA × 8 lanes × 2 × 2 GHz)
# launch-bound floors per call (kernel launches, Python): per layer plus a fixed part
TRAIN_STEP_OVERHEAD = {"cuda": (3e-3, 5e-4), "cpu": (8e-3, 2e-3)}  # (fixed s, s per layer): fwd+bwd+AdamW
FORWARD_OVERHEAD = {"cuda": (1e-3, 2e-4), "cpu": (5e-4, 1e-4)}  # one evaluation batch
DECODE_OVERHEAD = {"cuda": (3e-3, 2.5e-4), "cpu": (2e-3, 2e-4)}  # one generated token (generate()'s loop)
HOST_SYNC_S = {"cuda": 2e-5, "cpu": 0.0}  # one device→host synchronisation
# EIT-P's paper objective beyond the task loss (workloads/eitp_paper.py): the soft-histogram entropy over every
# parameter tensor (THERMO_PASSES reads/writes of each parameter, forward and backward, plus THERMO_SYNCS host
# syncs per step as coded today) and a Jacobian–vector product through the blocks on one sequence (chaos).
THERMO_PASSES = 16
THERMO_SYNCS = 300
CHAOS_FORWARDS = 3  # one JVP ≈ forward + tangent, and its backward, on one sequence
PAPER_TERMS = {"eitp-paper": ("thermo", "chaos", "coherence"), "eitp-paper-thermo": ("thermo",),
               "eitp-paper-chaos": ("chaos",), "eitp-paper-coherence": ("coherence",)}
CODED_FORWARDS = 3  # eitp-coded: forward_passes_per_step (workloads/eitp_coded.py)
# process start: fork from the forkserver and exit, meters and isolation check, CUDA context
PROCESS_START_S = 1.0
CUDA_INIT_S = 3.0
WEIGHTS_LOAD_BYTES_PER_S = 1e9  # safetensors from the page cache, then to the device
MODEL_BUILD_S_PER_PARAM = 1e-8  # building the module (transformers' from_pretrained or a fresh init): 1.2 s for 124 M
TOKENIZE_TOKENS_PER_S_PER_CORE = 2.5e5  # GPT-2's fast tokenizer in batches (up to 16 cores)
WIKITEXT2_TOKENS = {"train": 2.4e6, "validation": 2.5e5}  # GPT-2 tokens: ≈1.15 per word of its 2.09 M / 0.22 M words
ENTROPY_S_PER_PARAM = 6e-8  # E_min: parameter-code histograms over bf16, int8 and fp32 codes (a unique-count)
SERIALIZE_BYTES_PER_S = 5e8  # packing and writing the artefact to measure its bytes
QUANTIZE_S_PER_PARAM = 1e-8
DISTILL_STEPS = 20  # compress.compress_eitp's default
THEORY_FIXED_S = 2.0  # transitions over a few validation blocks and the floors
COUNTER_PERIOD_S = 0.1  # derivation windows last ≥ 10 counter updates
SO_FAR_READ_S = 5e-3  # one read of the training window at an evaluation step (a sync and every meter's marks)
DEFAULT_DERIVATION_LENS = (8, 16, 32, 64)
PROFILE_FACTOR = (0.5, 2.0)  # a profile estimate's stated range: efficiencies and overheads are assumed
ASSUMED_FACTOR = (0.33, 3.0)  # wider when a throughput figure itself is assumed (no profile figure)


# ---------------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class DeviceRates:
    """One compute device's throughput: FLOP/s by precision, memory bandwidth, cores (CPU)."""

    name: str
    flops: dict  # precision → FLOP/s ("fp32", "bf16", …)
    bandwidth: float  # bytes/s
    cores: Optional[int] = None


@dataclass(frozen=True)
class Hardware:
    """What the plan runs on: a GPU (None on a CPU-only machine) and the host CPU."""

    label: str
    cpu: DeviceRates
    gpu: Optional[DeviceRates] = None
    assumed: tuple = ()  # figures that are our assumptions, not a profile's (widens the range)


@dataclass(frozen=True)
class ModelShape:
    n_layer: int
    n_embd: int
    vocab_size: int
    n_positions: int
    source: str

    @property
    def parameters(self) -> int:
        return gpt2_parameters(self.n_layer, self.n_embd, self.vocab_size, self.n_positions)

    def forward_flops_per_token(self, context: int) -> float:
        """2 FLOP per weight the token meets (blocks and the tied output head) plus attention over `context`
        (Kaplan et al. 2020, eq. 2.2): the input embedding is a lookup."""
        d, L = self.n_embd, self.n_layer
        return 2.0 * 12 * L * d * d + 2.0 * L * context * d + 2.0 * d * self.vocab_size


@dataclass
class MeasuredRates:
    """Per-step and per-token times from stored runs (analysis/runtime.py builds it): lists hold one value
    per measured repetition. Keys: arm; generation (arm, mode, batch)."""

    runs: int
    label: str  # which hardware and store they came from
    train_step_s: dict = field(default_factory=dict)  # arm → [median step_s]
    train_other_s: dict = field(default_factory=dict)  # arm → [train + lm wall − steps × step_s]
    retrieval_step_s: dict = field(default_factory=dict)  # arm → [retrieval wall ÷ retrieval steps]
    decode_step_s: dict = field(default_factory=dict)  # (arm, mode, batch) → [s per generated token step]
    compress_s: dict = field(default_factory=dict)  # arm → [compress wall (+ artefact built in generate)]
    theory_s: dict = field(default_factory=dict)  # arm → [theory + derivation wall]
    setup_s: list = field(default_factory=list)  # [process start to first task, idle included, when measured]
    setup_idle_s: list = field(default_factory=list)  # [the idle part of those, same order]


@dataclass
class Estimate:
    total_s: float
    low_s: float
    high_s: float
    phases: dict  # phase → seconds
    phase_range: dict  # phase → [low, high]
    phase_source: dict  # phase → "profile" | "measured"
    source: str  # "profile" | "measured" | "mixed"
    uncertainty: dict
    hardware: str
    repetitions: int
    idle_measurements: int
    per_repetition_s: dict  # arm → seconds of one repetition (start and idle included)
    assumptions: list
    warnings: list

    def as_dict(self) -> dict:
        r = lambda x: round(float(x), 1)  # noqa: E731
        return {
            "total_s": r(self.total_s), "low_s": r(self.low_s), "high_s": r(self.high_s),
            "phases": {k: r(v) for k, v in self.phases.items()},
            "phase_range": {k: [r(a), r(b)] for k, (a, b) in self.phase_range.items()},
            "phase_source": dict(self.phase_source), "source": self.source, "uncertainty": self.uncertainty,
            "hardware": self.hardware, "repetitions": self.repetitions, "idle_measurements": self.idle_measurements,
            "per_repetition_s": {k: r(v) for k, v in self.per_repetition_s.items()},
            "assumptions": list(self.assumptions), "warnings": list(self.warnings),
        }


def shape_from_config(config: dict, source: str) -> ModelShape:
    """A GPT-2 shape from a config dict; a ValueError naming the source when it is not one."""
    try:
        return ModelShape(int(config["n_layer"]), int(config["n_embd"]), int(config["vocab_size"]),
                          int(config["n_positions"]), source)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source} is not a GPT-2 config (n_layer, n_embd, vocab_size, n_positions): {err!r}") from None


def model_shape(suite: Suite, size: str, pretrained_config: Optional[dict] = None) -> ModelShape:
    """The model a repetition builds: the pretrained checkpoint's config (`pretrained_config`, read from the
    local cache by the caller; else the published GPT-2 config of that name), or the fresh size."""
    if suite.pretrained:
        if pretrained_config is not None:
            return shape_from_config(pretrained_config, f"config.json of {suite.pretrained}")
        known = PUBLISHED_GPT2.get(suite.pretrained)
        if known is None:
            raise ValueError(f"the shape of {suite.pretrained!r} is unknown: its config.json is not readable here")
        return shape_from_config(known, f"published config of {suite.pretrained} (not cached here)")
    vocab = suite.data.vocab_size if suite.data.kind == "markov" else (50257 if suite.data.tokenizer == "gpt2" else 256)
    return ModelShape(SIZES[size]["n_layer"], SIZES[size]["n_embd"], vocab, suite.context_length, f"fresh {size}")


# ---------------------------------------------------------------------------------------------------- arithmetic


class _Costs:
    """Seconds of each unit of work of one suite on one machine (the profile roofline)."""

    def __init__(self, suite: Suite, shape: ModelShape, hw: Hardware):
        self.suite, self.shape, self.hw = suite, shape, hw
        on_gpu = suite.device in ("cuda", "auto") and hw.gpu is not None
        self.device = hw.gpu if on_gpu else hw.cpu
        self.kind = "cuda" if on_gpu else "cpu"
        self.precision = suite.train.precision
        threads = suite.threads or hw.cpu.cores or 1
        self.cpu_threads = min(threads, hw.cpu.cores or threads)

    # throughput of a device for a precision (fp32 on a CPU; the fp32 figure where a precision has none)
    def _flops(self, kind: str) -> float:
        if kind == "cuda":
            flops = self.hw.gpu.flops
            return (flops.get(self.precision) or flops["fp32"]) * GPU_MATMUL_EFFICIENCY
        per_core = self.hw.cpu.flops["fp32"] / (self.hw.cpu.cores or 1)
        return per_core * self.cpu_threads * CPU_MATMUL_EFFICIENCY

    def _bandwidth(self, kind: str) -> float:
        if kind == "cuda":
            return self.hw.gpu.bandwidth * BANDWIDTH_EFFICIENCY
        return min(self.hw.cpu.bandwidth, self.cpu_threads * CPU_BANDWIDTH_PER_THREAD) * BANDWIDTH_EFFICIENCY

    @staticmethod
    def _overhead(table: dict, kind: str, layers: int) -> float:
        fixed, per_layer = table[kind]
        return fixed + per_layer * layers

    def forward_s(self, sequences: int, length: int, *, kind: Optional[str] = None, batch: int = 8) -> float:
        """Forward passes over `sequences` of `length` tokens in batches of `batch`."""
        kind = kind or self.kind
        flops = self.shape.forward_flops_per_token(length) * sequences * length
        batches = math.ceil(sequences / max(1, batch))
        return flops / self._flops(kind) + batches * self._overhead(FORWARD_OVERHEAD, kind, self.shape.n_layer)

    def train_step_s(self, arm: str, batch: int, length: int, *, kind: Optional[str] = None) -> float:
        """One AdamW step of `arm`'s objective on batch × length tokens."""
        kind = kind or self.kind
        s = self.shape
        flops = 3.0 * s.forward_flops_per_token(length) * batch * length
        base = objective_arm(arm)
        if base == "eitp-coded":
            flops *= CODED_FORWARDS
        t = flops / self._flops(kind) + self._overhead(TRAIN_STEP_OVERHEAD, kind, s.n_layer)
        terms = PAPER_TERMS.get(base, ())
        if "thermo" in terms:
            t += THERMO_PASSES * 4.0 * s.parameters / self._bandwidth(kind) + THERMO_SYNCS * HOST_SYNC_S[kind]
        if "chaos" in terms:
            t += CHAOS_FORWARDS * s.forward_flops_per_token(length) * length / self._flops(kind)
        if arm == PLANTED_ARM:  # its products are `planted_fraction` of the step's arithmetic (workloads/planted.py)
            t += self.suite.self_check.planted_fraction * flops / self._flops(kind)
        return t

    def weights_copy_s(self) -> float:
        """One copy of the fp32 weights on the device (read and written once): an evaluation snapshot."""
        return 2 * 4.0 * self.shape.parameters / self._bandwidth(self.kind)

    def decode_step_s(self, batch: int, *, int8_cpu: bool = False) -> float:
        """One generated token for `batch` sequences: weights streamed once, or FLOP-bound, plus the loop."""
        kind = "cpu" if int8_cpu else self.kind
        bytes_per_weight = 1.0 if int8_cpu else (2.0 if self.precision in ("bf16", "fp16") and kind == "cuda" else 4.0)
        n = self.shape.parameters
        t = max(bytes_per_weight * n / self._bandwidth(kind), 2.0 * n * batch / self._flops(kind))
        return t + self._overhead(DECODE_OVERHEAD, kind, self.shape.n_layer)

    def generate_call_s(self, arm: str, batch: int, *, int8_cpu: bool = False) -> float:
        """One generate() call: the prompt's forward pass, then one decode step per new token; the planted
        arm adds its products, `planted_fraction` of each pass's arithmetic."""
        g = self.suite.generate
        call = g.new_tokens * self.decode_step_s(batch, int8_cpu=int8_cpu) + self.forward_s(
            batch, g.prompt_len, kind="cpu" if int8_cpu else None, batch=batch)
        if arm == PLANTED_ARM:
            flops = 2.0 * self.shape.parameters * batch * (g.new_tokens + g.prompt_len)
            call += self.suite.self_check.planted_fraction * flops / self._flops(self.kind)
        return call


def _planted_ab_s(suite: Suite, c: _Costs, tasks: list) -> dict:
    """The planted arm's A/B, outside every window (workloads/planted.py): PLANTED_AB_PAIRS pairs of units
    with its products on and off, each unit a lead-in and PLANTED_AB_TIMED timed runs (training steps;
    headline generate() calls, of which one alone is a unit when it lasts PLANTED_AB_LONG_CALL_S or more)."""
    runs = PLANTED_AB_PAIRS * (1 + PLANTED_AB_TIMED)  # per state
    out = {}
    if "train" in tasks:
        t, block = suite.train, suite.data.block_size
        out["train"] = runs * (c.train_step_s("baseline", t.batch_size, block)
                               + c.train_step_s(PLANTED_ARM, t.batch_size, block))
    mode, bs = names.HEADLINE_GENERATE
    if "generate" in tasks and mode in suite.generate.modes and bs in suite.generate.batch_sizes:
        plain = c.generate_call_s("baseline", bs)
        calls = PLANTED_AB_PAIRS if plain >= PLANTED_AB_LONG_CALL_S else runs
        out["generate"] = calls * (plain + c.generate_call_s(PLANTED_ARM, bs))
    return out


def _generation_s(call_s: float, warmups: int, runs: int, min_window_s: float) -> float:
    """benchmark_generation: warm-ups, then calls until `runs` are done and the window lasts min_window_s."""
    calls = max(runs, math.ceil(min_window_s / call_s) if call_s > 0 else runs)
    return (warmups + calls) * call_s


def _data_tokens(suite: Suite) -> float:
    d = suite.data
    if d.kind == "wikitext2":
        return WIKITEXT2_TOKENS["train"] + WIKITEXT2_TOKENS["validation"]
    return float(d.train_tokens + d.val_tokens)


def _val_blocks(suite: Suite) -> int:
    d = suite.data
    val = WIKITEXT2_TOKENS["validation"] if d.kind == "wikitext2" else d.val_tokens
    return max(1, int(val // d.block_size))


def idle_measurements(suite: Suite) -> int:
    """How many idle baselines the plan measures: one per round (and size) for single-process repetitions,
    one per repetition with several ranks (each rank measures its own sensors)."""
    if suite.meters.idle_s <= 0:
        return 0
    rounds = suite.repetitions * len(suite.sizes)
    return rounds if suite.launcher.world_size == 1 else rounds * len(suite.arms)


def _profile_phases(suite: Suite, c: _Costs, arm: str) -> dict:
    """Seconds of one repetition of `arm`, per phase, from the profile roofline (start and idle apart)."""
    s, t, g, r = suite, suite.train, suite.generate, suite.retrieval
    tasks = tasks_for_arm(arm, list(s.tasks))
    out = dict.fromkeys(PHASES[1:], 0.0)
    if not tasks:
        return out
    needs_lm = any(task != "retrieval" for task in tasks)  # every task but retrieval uses the trained LM
    weights_s = (4.0 * c.shape.parameters / WEIGHTS_LOAD_BYTES_PER_S if s.pretrained else 0.0) \
        + MODEL_BUILD_S_PER_PARAM * c.shape.parameters  # every model the repetition builds (LM, retrieval)
    cores = min(16, c.hw.cpu.cores or 1)
    if needs_lm:
        data_s = _data_tokens(s) / (TOKENIZE_TOKENS_PER_S_PER_CORE * cores) if s.data.kind != "markov" else 0.0
        steps = t.steps + t.warmup_untimed_steps  # the untimed warm-up steps run first (train.untimed_warm_up)
        out["train"] += (weights_s + data_s + steps * c.train_step_s(arm, t.batch_size, s.data.block_size)
                         + _train_evaluations_s(s, c))
        if "train" in tasks and arm != PLANTED_ARM:  # E_min (the planted arm skips it: workloads/tasks.py)
            out["train"] += ENTROPY_S_PER_PARAM * c.shape.parameters
        if "lm" in tasks:
            out["train"] += c.forward_s(_val_blocks(s), s.data.block_size, batch=t.batch_size)
    if "retrieval" in tasks:
        n_eval = len(r.distances) * r.eval_per_distance
        out["retrieval"] = (weights_s + (r.steps + t.warmup_untimed_steps) * c.train_step_s(arm, r.batch_size, r.seq_len)
                            + 2 * c.forward_s(n_eval, r.seq_len, batch=32))  # its loss, then its accuracy
    if "generate" in tasks:
        int8 = arm in COMPRESSION_ARMS
        for mode in g.modes:
            for bs in g.batch_sizes:
                call = c.generate_call_s(arm, bs, int8_cpu=int8)
                out["generate"] += _generation_s(call, g.warmups, g.runs, s.meters.min_window_s)
    if "compress" in tasks:
        cmp = s.compress
        evals = 2 if arm in COMPRESSION_ARMS else 1  # a plain arm's model is scored once (before = after)
        out["compress"] += evals * c.forward_s(cmp.eval_blocks, s.data.block_size, kind="cpu", batch=t.batch_size)
        out["compress"] += (1 + (arm in COMPRESSION_ARMS)) * 4.0 * c.shape.parameters / SERIALIZE_BYTES_PER_S
        if arm in COMPRESSION_ARMS:
            out["compress"] += QUANTIZE_S_PER_PARAM * c.shape.parameters
        if arm == "eitp-compressed":  # IEM calibration forward, distillation (teacher + student) on the device
            calib = cmp.calib_batches * t.batch_size
            out["compress"] += c.forward_s(calib, s.data.block_size, batch=t.batch_size)
            out["compress"] += DISTILL_STEPS * (c.train_step_s("baseline", t.batch_size, s.data.block_size)
                                                + c.forward_s(t.batch_size, s.data.block_size, batch=t.batch_size))
    _train_inside_generate(arm, tasks, out)
    if "theory" in tasks:
        out["theory"] += THEORY_FIXED_S + c.forward_s(4, s.data.block_size, batch=4)
    if "derivation" in tasks:
        lens = s.theory.seq_lens or [L for L in DEFAULT_DERIVATION_LENS if L < c.shape.n_positions]
        # an energy counter (NVML on a GPU) stretches each window to 10 update periods
        window = max(s.theory.min_window_s, 10 * COUNTER_PERIOD_S) if c.kind == "cuda" else s.theory.min_window_s
        out["theory"] += len(set(lens)) * 2 * s.theory.repeats * window
    return out


def _train_inside_generate(arm: str, tasks: list, out: dict) -> None:
    """A compression arm trains its base arm's model inside its first task (generate, else compress): its
    training time is counted there, where its records put it."""
    if arm in COMPRESSION_ARMS and out["train"]:
        out["generate" if "generate" in tasks else "compress"] += out["train"]
        out["train"] = 0.0


def _start_s(suite: Suite, c: _Costs) -> float:
    """Process start without the idle baseline: fork, meters, isolation check, CUDA context."""
    return PROCESS_START_S + (CUDA_INIT_S if c.kind == "cuda" else 0.0)


def _spread(values: list) -> Optional[tuple]:
    """(min, median, max) of measured values, or None."""
    return (min(values), statistics.median(values), max(values)) if values else None


def _measured_phases(suite: Suite, arm: str, m: MeasuredRates, profile: dict, train_s: float) -> tuple:
    """(mid, low, high, sources) seconds per phase of one repetition of `arm` from measured rates; a phase
    with no measurement keeps the profile's figure (its source says so). `train_s`: the profile's training
    time of this arm (a compression arm's is inside its generate or compress figure)."""
    s, t, g, r = suite, suite.train, suite.generate, suite.retrieval
    tasks = tasks_for_arm(arm, list(s.tasks))
    mid, low, high, source = dict(profile), dict(profile), dict(profile), {}

    def put(phase, triple):
        low[phase], mid[phase], high[phase] = triple
        source[phase] = "measured"

    # a compression arm trains as its base arm; the planted arm as the baseline plus its products: its own rates
    base = arm if arm == PLANTED_ARM else objective_arm(arm)
    step, other = _spread(m.train_step_s.get(base, [])), _spread(m.train_other_s.get(base, []))
    trained = tuple(t.steps * a + b for a, b in zip(step, other)) if train_s and step and other else None
    if trained and arm not in COMPRESSION_ARMS:
        put("train", trained)
    rs = _spread(m.retrieval_step_s.get(arm, []))
    if "retrieval" in tasks and rs:
        put("retrieval", tuple(r.steps * a for a in rs))
    if "generate" in tasks:
        parts, complete = [], True
        for mode in g.modes:
            for bs in g.batch_sizes:
                d = _spread(m.decode_step_s.get((arm, mode, bs), []))
                if d is None:
                    complete = False
                    break
                parts.append(tuple(_generation_s(g.new_tokens * x, g.warmups, g.runs, s.meters.min_window_s) for x in d))
        if complete and parts and (trained or arm not in COMPRESSION_ARMS):
            extra = trained if arm in COMPRESSION_ARMS else (0.0, 0.0, 0.0)  # its training runs inside generate
            put("generate", tuple(sum(p[i] for p in parts) + extra[i] for i in range(3)))
    for phase, rates in (("compress", m.compress_s), ("theory", m.theory_s)):
        v = _spread(rates.get(arm, []))
        if profile[phase] and v:
            put(phase, v)
    return mid, low, high, source


def estimate(suite: Suite, hardware: Hardware, *, shape: Optional[ModelShape] = None,
             pretrained_config: Optional[dict] = None, measured: Optional[MeasuredRates] = None) -> Estimate:
    """Seconds per phase and in total for the whole plan (every size, round and arm), with its range."""
    f_lo, f_hi = _factor(hardware)
    phases, lows, highs = (dict.fromkeys(PHASES, 0.0) for _ in range(3))
    sources: dict = {}
    per_rep: dict = {}
    warnings: list = []
    for size in suite.sizes:
        c = _Costs(suite, shape or model_shape(suite, size, pretrained_config), hardware)
        for arm in suite.arms:
            if not tasks_for_arm(arm, list(suite.tasks)):
                continue
            prof = _profile_phases(suite, c, arm)
            mid, low, high, src = (prof, prof, prof, {})
            if measured is not None:
                train_s = _profile_phases(suite, c, "baseline")["train"] if arm in COMPRESSION_ARMS else prof["train"]
                mid, low, high, src = _measured_phases(suite, arm, measured, prof, train_s)
            # never measured (it runs outside every window): priced from the profile, with its range
            ab = _planted_ab_s(suite, c, tasks_for_arm(arm, list(suite.tasks))) if arm == PLANTED_ARM else {}
            for p in PHASES[1:]:
                here, extra = src.get(p) == "measured", ab.get(p, 0.0)
                phases[p] += suite.repetitions * (mid[p] + extra)
                lows[p] += suite.repetitions * ((low[p] if here else prof[p] * f_lo) + extra * f_lo)
                highs[p] += suite.repetitions * ((high[p] if here else prof[p] * f_hi) + extra * f_hi)
                if prof[p] or mid[p]:
                    sources.setdefault(p, set()).add("measured" if here else "profile")
            per_rep[arm if len(suite.sizes) == 1 else f"{size}/{arm}"] = (sum(mid[p] + ab.get(p, 0.0) for p in PHASES[1:])
                                                                          + _start_s(suite, c))
        _windows_warnings(suite, c, warnings)
    c = _Costs(suite, shape or model_shape(suite, suite.sizes[0], pretrained_config), hardware)
    n_reps = sum(1 for _ in suite.sizes for a in suite.arms if tasks_for_arm(a, list(suite.tasks))) * suite.repetitions
    n_idle = idle_measurements(suite)
    (lows["start_idle"], phases["start_idle"], highs["start_idle"]), sources["start_idle"] = _start_idle(
        suite, c, measured, n_reps, n_idle, (f_lo, f_hi))
    phase_source = {p: ("measured" if v == {"measured"} else "profile" if v == {"profile"} else "mixed")
                    for p, v in sources.items()}
    kinds = set(phase_source.values())
    source = kinds.pop() if len(kinds) == 1 else "mixed"
    if source == "profile":
        uncertainty = {"kind": "factor", "low": f_lo, "high": f_hi,
                       "why": "a roofline on published figures with assumed efficiencies and overheads; "
                              "no run of this suite on this hardware is stored"
                              + (f"; assumed: {', '.join(hardware.assumed)}" if hardware.assumed else "")}
    else:
        uncertainty = {"kind": "spread", "runs": measured.runs,
                       "why": f"min–max of the measured per-step, per-token and per-task times over {measured.runs} "
                              f"stored runs ({measured.label}); phases without a measurement: ×{f_lo:g}–×{f_hi:g} "
                              "of the profile figure"}
    return Estimate(
        total_s=sum(phases.values()), low_s=sum(lows.values()), high_s=sum(highs.values()), phases=phases,
        phase_range={p: (lows[p], highs[p]) for p in PHASES}, phase_source=phase_source, source=source,
        uncertainty=uncertainty, hardware=hardware.label, repetitions=n_reps, idle_measurements=n_idle,
        per_repetition_s=per_rep, assumptions=_assumptions(suite, c, hardware), warnings=warnings,
    )


def _start_idle(suite: Suite, c: _Costs, measured: Optional[MeasuredRates], n_reps: int, n_idle: int,
                factor: tuple) -> tuple:
    """((low, mid, high), {source}) of process starts (one per repetition) and idle baselines (one per round).
    Measured: the workers' set-up times without their idle part, and the measured idle period; the idle
    seconds the suite fixes are never scaled by the profile's factor."""
    idle = suite.meters.idle_s
    if measured is not None and measured.setup_s and len(measured.setup_idle_s) == len(measured.setup_s):
        idles = [x for x in measured.setup_idle_s if x > 0]  # the repetitions that measured the idle
        idle_mid = statistics.median(idles) if idles else idle
        lo, mid, hi = _spread([max(0.0, a - b) for a, b in zip(measured.setup_s, measured.setup_idle_s)])
        return tuple(n_reps * x + n_idle * idle_mid for x in (lo, mid, hi)), {"measured"}
    start = _start_s(suite, c)
    return tuple(n_reps * start * f + n_idle * idle for f in (factor[0], 1.0, factor[1])), {"profile"}


def _factor(hw: Hardware) -> tuple:
    return ASSUMED_FACTOR if hw.assumed else PROFILE_FACTOR


def _train_evaluations_s(suite: Suite, c: _Costs) -> float:
    """The evaluations during LM training, priced one by one (workloads/train.py): every train.eval_every
    steps and at the end, before the first step when there is a target (and, for a fixed target on real
    text, the zero-shot check), plus the weight copies of the evaluations before the last (taken inside the
    window, loaded afterwards, the final weights kept aside and put back) and one window read per copy."""
    t, s = suite.train, suite
    copies = math.ceil(t.steps / t.eval_every) - 1
    markov_target = s.data.kind == "markov" and t.target_excess_nats is not None
    has_target = markov_target or t.target_val_loss is not None
    evals = copies + 1 + has_target + (has_target and not markov_target)
    one = c.forward_s(t.eval_batches * t.batch_size, s.data.block_size, batch=t.batch_size)
    return evals * one + (2 * copies + 2 if copies else 0) * c.weights_copy_s() + copies * SO_FAR_READ_S


def _windows_warnings(suite: Suite, c: _Costs, warnings: list) -> None:
    """Energy windows the estimate expects below the 5 s steady-state minimum (energy/steady.py)."""
    if suite.meters.min_window_s <= 0 or not any(t in suite.tasks for t in ("train", "lm", "generate", "compress")):
        return
    # Training is one window (evaluations read it without closing it: workloads/train.py).
    seg = suite.train.steps * c.train_step_s("baseline", suite.train.batch_size, suite.data.block_size)
    msg = (f"the training window of train.steps = {suite.train.steps} steps lasts about {seg:.1f} s on "
           f"{c.hw.label}: under the 5 s steady-state minimum, so energy claims would skip it; raise train.steps")
    if seg < 5.0 and msg not in warnings:
        warnings.append(msg)


def _assumptions(suite: Suite, c: _Costs, hw: Hardware) -> list:
    dev = c.device
    where = f"{dev.name}: {c.precision} {dev.flops.get(c.precision) or dev.flops['fp32']:.3g} FLOP/s, {dev.bandwidth:.3g} B/s"
    cpu = (f"CPU work (int8 generation, compression quality) on {hw.cpu.name}: {c.cpu_threads} threads of "
           f"{hw.cpu.cores} cores, {hw.cpu.flops['fp32']:.3g} FLOP/s fp32, {hw.cpu.bandwidth:.3g} B/s")
    return [f"model: {c.shape.source}, {c.shape.parameters / 1e6:.1f} M parameters", where, cpu,
            f"efficiencies: GPU {GPU_MATMUL_EFFICIENCY:g} / CPU {CPU_MATMUL_EFFICIENCY:g} of peak FLOP/s, "
            f"{BANDWIDTH_EFFICIENCY:g} of peak bandwidth; per-call overheads in eitp_bench/analysis/cost_model.py"]


# ---------------------------------------------------------------------------------------------------- hardware


def _cpu_rates(profile, sockets: int, cores_here: Optional[int], assumed: list) -> DeviceRates:
    """A CPU's rates over its sockets; a figure the profile lacks is assumed (and named in `assumed`)."""
    cores = (profile.cores * sockets) if profile is not None and profile.cores else cores_here
    if cores is None:
        cores = 16
        assumed.append("16 CPU cores")
    flops = profile.peak_flops.fp32 * sockets if profile is not None and profile.peak_flops.fp32 else None
    if flops is None:
        flops = ASSUMED_CPU_FLOPS_PER_CORE * cores
        assumed.append(f"CPU {ASSUMED_CPU_FLOPS_PER_CORE / 1e9:g} GFLOP/s per core")
    bw = profile.memory_bandwidth_bytes_per_s * sockets if profile is not None and profile.memory_bandwidth_bytes_per_s else None
    if bw is None:
        bw = CPU_BANDWIDTH_PER_THREAD * cores
        assumed.append(f"CPU {CPU_BANDWIDTH_PER_THREAD / 1e9:g} GB/s per core")
    name = f"{sockets}x {profile.name}" if profile is not None and sockets > 1 else (profile.name if profile else "this CPU")
    return DeviceRates(name, {"fp32": flops}, bw, cores)


def _gpu_rates(profile) -> DeviceRates:
    pf = profile.peak_flops
    flops = {k: v for k, v in (("fp32", pf.fp32), ("tf32", pf.tf32), ("bf16", pf.bf16), ("fp16", pf.fp16)) if v}
    if "fp32" not in flops or not profile.memory_bandwidth_bytes_per_s:
        from eitp_bench.errors import UserError

        raise UserError(f"hardware profile {profile.name!r} has no fp32 FLOP/s or memory bandwidth figure",
                        fix="add them to its YAML (with their source), or estimate for another --profile")
    return DeviceRates(profile.name, flops, profile.memory_bandwidth_bytes_per_s)


def hardware_from_profile(name: str) -> Hardware:
    """A named profile (file stem or display name): a GPU with its reference host CPU, or a CPU."""
    from eitp_bench.hardware.profiles import find_profile, profiles_by_stem

    stem, profile = find_profile(name)
    assumed: list = []
    if profile.kind == "cpu":
        return Hardware(f"{stem} (profile)", _cpu_rates(profile, 1, None, assumed), None, tuple(assumed))
    host = profiles_by_stem().get(profile.typical_host_cpu or "")
    if host is None:
        assumed.append("an unnamed host CPU")
    cpu = _cpu_rates(host, profile.typical_host_sockets or 1, None, assumed)
    return Hardware(f"{stem} (profile) with {cpu.name}", cpu, _gpu_rates(profile), tuple(assumed))


def hardware_here() -> Hardware:
    """This machine: its first GPU's and its CPU's matched profiles, and its core count."""
    import os

    from eitp_bench.hardware import describe
    from eitp_bench.hardware.profiles import profiles_by_stem

    hw = describe()
    by_name = {p.name: p for p in profiles_by_stem().values()}
    assumed: list = []
    cpu_profile = by_name.get(hw.get("cpu_profile") or "")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if cpu_profile is not None and cpu_profile.generic:
        cpu_profile = None
    cpu = _cpu_rates(cpu_profile, 1, cores, assumed)
    if cpu_profile is not None:  # this process can use the cores it sees, not the whole profile
        cpu = DeviceRates(cpu.name, {"fp32": cpu.flops["fp32"] / cpu.cores * cores}, cpu.bandwidth, cores)
    gpu_names = [g for g in hw.get("gpu_profiles") or [] if g]
    gpu = _gpu_rates(by_name[gpu_names[0]]) if gpu_names and gpu_names[0] in by_name else None
    label = f"this machine ({hw.get('alias') or 'unknown'})"
    return Hardware(label, cpu, gpu, tuple(assumed))

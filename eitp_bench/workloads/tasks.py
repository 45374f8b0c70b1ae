"""The task registry: `TASKS[name](ctx) -> list[Metric]`, one RunRecord per task.

One repetition (one process) runs one arm through every task of the suite, in arms.TASK_ORDER. The
language model is trained once per repetition (`ctx.trained_lm()`) and shared by train, lm,
generate and compress: every arm gets the same data, steps and seed, so sharing keeps it fair and
saves retraining. Retrieval trains its own model on the retrieval task (same steps for every arm).

Compression arms are transformations of a trained arm: "eitp-compressed" = compress_eitp on the
eitp-paper model, "baseline-int8" = int8 dynamic quantisation of the baseline. They run generate
and compress, both on the one artefact `ctx.compressed_model()` builds per repetition (on CPU: int8
dynamic quantization has CPU kernels only, so their generate record says device "cpu"). Add a task
with `@register_task("name")`.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch

from eitp_bench import names
from eitp_bench.flags import flag
from eitp_bench.records import EnergyEntry, Metric
from eitp_bench.suite import Suite
from eitp_bench.suite.arms import COMPRESSION_ARMS, PLANTED_ARM, objective_arm
from eitp_bench.workloads.data import LMData, RetrievalTask, as_tensors, build_lm_data
from eitp_bench.workloads.train import OptimSettings, TrainResult, evaluate_lm, lm_quality, train


TaskFn = Callable[["TaskContext"], list[Metric]]
TASKS: dict[str, TaskFn] = {}


def register_task(name: str) -> Callable[[TaskFn], TaskFn]:
    def add(fn: TaskFn) -> TaskFn:
        TASKS[name] = fn
        return fn

    return add


@dataclass
class TaskContext:
    """What a task sees: its arm, the suite, device, monitor, and shared per-repetition state."""

    suite: Suite
    arm: str
    size: str
    seed: int
    repetition: int
    device: str
    monitor: Any = None
    energy: list[EnergyEntry] = field(default_factory=list)  # the current task's entries
    cache: dict[str, Any] = field(default_factory=dict)
    task_device: Optional[str] = None  # where the current task really ran (the worker resets it to `device`)
    # Windows opened during one task on behalf of a later one (task → window results): the worker
    # puts their timelines on that task's record, as that task reports their energy.
    windows_for: dict[str, list] = field(default_factory=dict)
    # Multi-rank repetitions: this rank's distributed.ranks.RankContext (None: one process). Training
    # shards the global batch and runs under DDP; generation runs on this rank's own prompts.
    ranks: Any = None
    # Logits dtypes observed per phase of the current task (workloads/precision.py; the worker resets it per task
    # and records it as provenance.hardware.precision).
    precision_seen: dict = field(default_factory=dict)

    # -- shared pieces ---------------------------------------------------------------------
    def lm_data(self) -> LMData:
        if "lm_data" not in self.cache:
            self.cache["lm_data"] = build_lm_data(self.suite.data, self.suite.data.seed)
        return self.cache["lm_data"]

    @property
    def n_positions(self) -> int:
        return self.suite.context_length  # suite_rules.context_length: checked before any worker starts

    def build_model(self, vocab_size: int):
        from eitp_bench.workloads.models import build_model

        m = self.suite.model
        return build_model(
            self.size,
            vocab_size=vocab_size,
            n_positions=self.n_positions,
            seed=self.seed,
            pretrained=self.suite.pretrained,
            attn_implementation=m.attn_implementation,
            dropout=m.dropout,
            revision=m.revision,
        )

    def objective(self):
        from eitp_bench.workloads.objectives import make_objective

        arm = objective_arm(self.arm)
        return make_objective(arm, self.suite.objectives.get(arm))

    @property
    def train_config(self):
        """The arm's training settings: the suite's (forced per-arm overrides only with allow_unequal_settings)."""
        return self.suite.train_settings(self.arm)

    def optim_settings(self) -> OptimSettings:
        """Optimizer settings: train.lr for every arm, or (lr_policy tuned) the lr this arm chose on the
        same grid, budget and held-out split as every other arm."""
        t = self.train_config
        if t.lr_policy == "equal":
            return OptimSettings.from_train_config(t)
        return OptimSettings.from_train_config(t, lr=self.tuned_lr()[0])

    def tuned_lr(self) -> tuple[float, list[Metric]]:
        """lr_policy tuned: train a fresh model (this repetition's seed) for tune_steps at each lr of the
        grid on the training split minus a held-out tail, score it on that tail, keep the best.
        The validation split is never seen. Runs outside the energy windows; its time is recorded."""
        if "tuned_lr" not in self.cache:
            import time

            data, t = self.lm_data(), self.train_config
            n_held = max(data.block_size + 1, int(len(data.train) * t.tune_fraction))
            fit = LMData(data.train[:-n_held], data.train[-n_held:], data.vocab_size, data.block_size, source=data.source)
            held = fit.val_blocks(t.eval_batches * t.batch_size)
            objective = self.objective()
            scores: dict[float, float] = {}
            started = time.perf_counter()
            for lr in t.lr_grid:
                model = self.build_model(data.vocab_size)
                batches = (as_tensors(b, self.device) for b in fit.train_batches(t.batch_size, seed=self.seed))
                result = train(
                    model, objective, batches, steps=t.tune_steps,
                    settings=OptimSettings.from_train_config(t, lr=lr), device=self.device,
                    evaluate=lambda m: evaluate_lm(m, held, batch_size=t.batch_size, device=self.device,
                                                   precision=t.precision),
                    eval_every=t.tune_steps, tokens_per_step=t.batch_size * data.block_size,
                    steps_per_epoch=max(1.0, len(fit.train) / (t.batch_size * data.block_size)),
                )
                loss = result.final_val_loss
                scores[lr] = loss if math.isfinite(loss) else math.inf
                del model
            best = min(scores, key=lambda lr: (scores[lr], lr))
            metrics = [Metric(name=f"lr_tuning_loss@{lr:g}", value=loss, unit="nats/token") for lr, loss in scores.items()]
            metrics += [
                Metric(name="lr_tuning_s", value=time.perf_counter() - started, unit="s"),
                Metric(name="lr_tuning_grid_points", value=len(scores), unit="1"),
            ]
            self.cache["tuned_lr"] = (best, metrics)
        return self.cache["tuned_lr"]

    def target_val_loss(self) -> Optional[float]:
        """The suite's quality target: on the Markov corpus its known optimum + a fixed excess, else a
        fixed validation loss. Defined once per suite; each train record carries it."""
        t, data = self.train_config, self.lm_data()
        if data.entropy_rate_nats is not None and t.target_excess_nats is not None:
            return data.entropy_rate_nats + t.target_excess_nats
        return t.target_val_loss

    def checked_target(self, model, eval_blocks) -> Optional[float]:
        """The quality target to train to, refused when the untrained model already meets it.

        A fixed target (real text) is checked against the step-0 validation loss, measured here,
        outside every energy window. At or above it, "time to target" would time nothing: the run
        trains as usual but records no time or energy to target; its `target_val_loss` metric
        carries the flag target_not_below_zero_shot, and the judge calls to-target claims
        INCONCLUSIVE with that reason. The Markov corpus keeps its known optimum + margin."""
        target = self.target_val_loss()
        data, t = self.lm_data(), self.train_config
        if target is None or data.entropy_rate_nats is not None:
            return target
        zero_shot = evaluate_lm(model, eval_blocks, batch_size=t.batch_size, device=self.device)
        checks = [Metric(name="zero_shot_val_loss", value=zero_shot, unit="nats/token")]
        if target >= zero_shot:
            checks.append(Metric(name="target_val_loss", value=target, unit="nats/token", flags=[flag(
                "target_not_below_zero_shot",
                f"train.target_val_loss {target:g} is at or above the zero-shot validation loss {zero_shot:.4f}; "
                "set a target the baseline reaches by training (eitp-bench calibrate-target SUITE)")]))
            target = None
        self.cache["target_checks"] = checks
        return target

    def trained_lm(self) -> tuple[Any, TrainResult]:
        """The arm's language model trained on the suite's data, once per repetition."""
        if "trained_lm" not in self.cache:
            data, t = self.lm_data(), self.train_config
            settings = self.optim_settings()  # before the model: tuning builds models of its own
            model = self.build_model(data.vocab_size)
            self._plant(model)
            objective = self.objective()
            gen = data.train_batches(t.batch_size, seed=self.seed)  # global batches of t.batch_size
            trained = model
            if self.ranks is not None:  # every rank: the same lr, its rows of each global batch, DDP
                settings = self.ranks.from_rank0(settings)
                gen, trained = self.ranks.shard(gen), self.ranks.wrap_for_training(model)
            batches = (as_tensors(b, self.device) for b in gen)
            eval_blocks = data.val_blocks(t.eval_batches * t.batch_size)
            target = self.checked_target(model, eval_blocks)
            result = train(
                trained,
                objective,
                batches,
                steps=t.steps,
                settings=settings,
                device=self.device,
                # the bare model: evaluation needs no DDP (every rank scores the same blocks alike)
                evaluate=lambda m: evaluate_lm(model, eval_blocks, batch_size=t.batch_size, device=self.device,
                                               precision=settings.precision, seen=self.precision_seen),
                eval_every=t.eval_every,
                tokens_per_step=t.batch_size * data.block_size,  # the global batch's tokens
                steps_per_epoch=max(1.0, len(data.train) / (t.batch_size * data.block_size)),
                warmup_untimed_steps=self.suite.train.warmup_untimed_steps,  # the same for every arm
                monitor=self.monitor,
                target_val_loss=target,
                window=names.TRAIN_WINDOW,
                min_window_s=self.suite.meters.min_window_s,  # steady-state rule on the to-target segments
                seen=self.precision_seen,
            )
            if "planted" in self.cache:  # its whole cost per step, A/B in this process, outside every window
                from eitp_bench.workloads.planted import train_step_ratio

                self.cache["planted_train_ratio"] = train_step_ratio(
                    self.cache["planted"], trained, objective, next(batches), settings=settings, device=self.device)
            if self.ranks is not None:  # DDP keeps the ranks' parameters equal; a record that says so
                same = self.ranks.parameters_identical(model)
                self.cache["rank_checks"] = [Metric(name="ranks_parameters_identical", value=float(same), unit="bool")]
            self.cache["trained_lm"] = (model, result)
        return self.cache["trained_lm"]

    def _plant(self, model) -> None:
        """The planted-effect arm: the baseline's model with measured extra work per forward pass."""
        if self.arm == PLANTED_ARM:
            from eitp_bench.workloads.planted import PlantedWork

            self.cache["planted"] = PlantedWork.attach(model, self.suite.self_check.planted_fraction)

    def planted_metrics(self, windows, busy_s: float, name: str, ratio: Optional[float],
                        window: Optional[str] = None) -> list[Metric]:
        """The planted arm's own record of its planted cost (others: none): `<name>_s`, the products' own
        seconds inside `windows`, and `<name>_product_share` their share of `busy_s` (the time the arm's
        figure is made of); `<name>_share`, the planted work's whole share, 1 − 1/`ratio` (its A/B
        ratio, workloads/planted.py): the one the self-check expects, the products' own seconds miss
        their after-effects."""
        work = self.cache.get("planted")
        if work is None:
            return []
        planted_s = work.seconds_within(windows)
        nan = float("nan")
        return [Metric(name=f"{name}_s", value=planted_s, unit="s", window=window),
                Metric(name=f"{name}_product_share", value=planted_s / busy_s if busy_s > 0 else nan, unit="1",
                       window=window),
                Metric(name=f"{name}_share", value=1 - 1 / ratio if ratio and ratio > 0 else nan, unit="1",
                       window=window)]

    def compressed_model(self):
        """The compression arm's artefact (a CPU module), built once per repetition from trained_lm().

        Built inside the "compress" window whichever task asks first (generate runs before compress),
        so the compression work is metered exactly once; the compress task reports that window.
        """
        if self.arm not in COMPRESSION_ARMS:
            raise ValueError(f"arm {self.arm!r} is not a compression arm ({', '.join(COMPRESSION_ARMS)})")
        if "compressed" not in self.cache:
            from eitp_bench.workloads import compress

            trained, _ = self.trained_lm()
            t0 = time.perf_counter()
            with self.monitor.window(names.COMPRESS_WINDOW) if self.monitor else _null() as w:
                if self.arm == "baseline-int8":
                    # int8 dynamic quantisation runs on CPU; compress a copy (other tasks keep the trained model)
                    compressed = compress.quantize_int8_dynamic(copy.deepcopy(trained).to("cpu").eval())
                else:
                    # pruning and distillation on the suite's device (a copy of the trained model, which stays
                    # the teacher), under the suite's precision; the int8 quantisation itself on CPU
                    calib = [torch.as_tensor(b) for b in _calibration_batches(self.lm_data(), self)]
                    compressed = compress.compress_eitp(trained, calib_batches=calib, seed=self.seed,
                                                        precision=self.train_config.precision)
            self.cache["compressed"] = compressed
            self.cache["compress_s"] = time.perf_counter() - t0
            self.cache["compress_window"] = w.result
            if w.result is not None:
                self.windows_for.setdefault("compress", []).append(w.result)
        return self.cache["compressed"]


# ----------------------------------------------------------------------------- tasks


@register_task("train")
def train_task(ctx: TaskContext) -> list[Metric]:
    """Training cost and speed: step time, joules per step, time and joules to the target loss."""
    model, result = ctx.trained_lm()
    ctx.energy.extend(result.energy_entries(names.TRAIN_WINDOW))
    from eitp_bench.workloads.models import count_parameters

    from eitp_bench.workloads.theory_tasks import e_min_metrics

    # E_min sits beside train_joules in the same record: Theorem 3 is judged per run.
    tuning = ctx.tuned_lr()[1] if ctx.train_config.lr_policy == "tuned" else []
    planted = ctx.planted_metrics(result.windows, sum(result.step_times), names.PLANTED_TRAIN,
                                  ctx.cache.get("planted_train_ratio"), names.TRAIN_WINDOW)
    # The planted arm's weights are the baseline's (its products change none) and no check reads its E_min:
    # skipping it saves ~7 s a repetition of GPT-2 small, which pays for the arm's A/B in `standard`.
    e_min = [] if ctx.arm == PLANTED_ARM else e_min_metrics(model, ctx)
    return (result.metrics() + tuning + [Metric(name="parameters", value=count_parameters(model), unit="1")]
            + e_min + ctx.cache.get("rank_checks", []) + ctx.cache.get("target_checks", []) + planted)


def _perplexity_metrics(loss: float, acc: float, data: LMData, suffix: str = "") -> list[Metric]:
    out = [
        Metric(name=f"val_loss{suffix}", value=loss, unit="nats/token"),
        Metric(name=f"val_ppl{suffix}", value=math.exp(loss), unit="1"),
        Metric(name=f"val_accuracy{suffix}", value=acc, unit="1"),
    ]
    if data.optimal_perplexity is not None:
        # The source's entropy rate bounds every model: report how far above it the arm is.
        out += [
            Metric(name="optimal_ppl", value=data.optimal_perplexity, unit="1"),
            Metric(name=f"ppl_ratio_to_optimal{suffix}", value=math.exp(loss) / data.optimal_perplexity, unit="1"),
        ]
    return out


@register_task("lm")
def lm_task(ctx: TaskContext) -> list[Metric]:
    """Validation perplexity of the trained model on the whole validation split."""
    model, _ = ctx.trained_lm()
    data = ctx.lm_data()
    with ctx.monitor.window(names.LM_EVAL_WINDOW) if ctx.monitor else _null() as w:
        loss, acc = lm_quality(model, data.val_blocks(), batch_size=ctx.suite.train.batch_size, device=ctx.device,
                               precision=ctx.train_config.precision, seen=ctx.precision_seen)
    if ctx.monitor:
        ctx.energy.extend(w.result.entries())
    return _perplexity_metrics(loss, acc, data)


@register_task("retrieval")
def retrieval_task(ctx: TaskContext) -> list[Metric]:
    """Key→value retrieval accuracy by distance, after training on the retrieval task."""
    r = ctx.suite.retrieval
    vocab = ctx.lm_data().vocab_size if ctx.suite.pretrained else r.vocab_size
    task = RetrievalTask(vocab, r.seq_len, r.distances, n_keys=r.n_keys, seed=ctx.suite.data.seed)
    settings = ctx.optim_settings()  # the LM's settings (and, when tuned, the lr the arm chose there)
    precision = settings.precision
    model = ctx.build_model(vocab)
    objective = ctx.objective()
    gen = task.train_batches(r.batch_size, seed=ctx.seed)

    def batches():
        for b in gen:
            yield (torch.as_tensor(b.input_ids, device=ctx.device), torch.as_tensor(b.labels, device=ctx.device))

    eval_set = list(task.eval_batches(r.eval_per_distance))
    result = train(
        model,
        objective,
        batches(),
        steps=r.steps,
        settings=settings,
        device=ctx.device,
        evaluate=lambda m: _retrieval_loss(m, eval_set, ctx.device, precision),
        eval_every=r.steps,  # one evaluation at the end
        tokens_per_step=r.batch_size * r.seq_len,
        steps_per_epoch=float(r.steps),
        warmup_untimed_steps=ctx.suite.train.warmup_untimed_steps,
        monitor=ctx.monitor,
        window=names.RETRIEVAL_TRAIN_WINDOW,
        seen=ctx.precision_seen,
    )
    ctx.energy.extend(result.energy_entries(names.RETRIEVAL_TRAIN_WINDOW))
    accuracy = retrieval_accuracy(model, eval_set, ctx.device, precision, seen=ctx.precision_seen)
    out = [Metric(name=names.at("retrieval_acc", d), value=a, unit="1") for d, a in sorted(accuracy.items())]
    # Query counts per distance: accuracies are judged as counts (a binomial interval), not as bare ratios.
    counts: dict[int, int] = {}
    for b in eval_set:
        for d in b.distances.tolist():
            counts[int(d)] = counts.get(int(d), 0) + 1
    out += [Metric(name=names.at("retrieval_n", d), value=n, unit="queries") for d, n in sorted(counts.items())]
    out.append(Metric(name="retrieval_acc", value=float(np.mean(list(accuracy.values()))), unit="1"))
    # "Long range" = distances in the second half of the context (GPT-2 cannot see 8k tokens).
    long = [d for d in accuracy if d >= r.seq_len // 2]
    if long:  # pooled over the long distances, with its query count: judged as counts
        n_long = sum(counts[d] for d in long)
        out.append(Metric(name="retrieval_acc_long", value=sum(accuracy[d] * counts[d] for d in long) / n_long, unit="1"))
        out.append(Metric(name="retrieval_n_long", value=n_long, unit="queries"))
    out.append(Metric(name="retrieval_final_loss", value=result.final_val_loss, unit="nats"))
    out.append(Metric(name="retrieval_chance", value=1.0 / task.n_symbols, unit="1"))
    return out


@torch.no_grad()
def _answer_logits(model, batch, device, precision: str = "fp32", seen: Optional[dict] = None) -> torch.Tensor:
    from eitp_bench.workloads.precision import autocast, observe

    model.eval()
    ids = torch.as_tensor(batch.input_ids, device=device)
    with autocast(device, precision), observe(model, seen, "eval"):
        out = model(input_ids=ids)
    return out.logits[:, -2].float()  # the prediction made at the query key


def _retrieval_loss(model, eval_set, device, precision: str = "fp32") -> float:
    total, n = 0.0, 0
    for b in eval_set:
        logits = _answer_logits(model, b, device, precision)
        answers = torch.as_tensor(b.answers, device=device)
        total += float(torch.nn.functional.cross_entropy(logits, answers, reduction="sum"))
        n += len(b.answers)
    model.train()
    return total / n


def retrieval_accuracy(model, eval_set, device, precision: str = "fp32", seen: Optional[dict] = None) -> dict[int, float]:
    hits: dict[int, list[bool]] = {}
    for b in eval_set:
        pred = _answer_logits(model, b, device, precision, seen).argmax(-1).cpu().numpy()
        for d, ok in zip(b.distances, pred == b.answers):
            hits.setdefault(int(d), []).append(bool(ok))
    model.train()
    return {d: float(np.mean(v)) for d, v in hits.items()}


@register_task("generate")
def generate_task(ctx: TaskContext) -> list[Metric]:
    """Generation speed and joules per token of the trained model, per mode and batch size."""
    from eitp_bench.workloads.generate import GenerationSetting, benchmark_generation

    g = ctx.suite.generate
    if ctx.arm in COMPRESSION_ARMS:
        # The shipped artefact, timed where it can run: torch's int8 dynamic kernels are CPU-only (no autocast).
        model, device, precision = ctx.compressed_model(), "cpu", "fp32"
    else:
        (model, _), device, precision = ctx.trained_lm(), ctx.device, ctx.train_config.precision
    ctx.task_device = device
    data = ctx.lm_data()
    n_prompts = max(g.batch_sizes)
    first = ctx.ranks.prompt_offset(n_prompts) if ctx.ranks is not None else 0  # each rank its own prompts
    blocks = data.val_blocks()
    if len(blocks) < first + n_prompts or data.block_size < g.prompt_len:
        raise ValueError(f"need {first + n_prompts} validation blocks of ≥{g.prompt_len} tokens for prompts")
    prompts = torch.as_tensor(blocks[first:first + n_prompts, : g.prompt_len], dtype=torch.long)
    out: list[Metric] = []
    for mode in g.modes:
        for bs in g.batch_sizes:
            setting = GenerationSetting(mode, bs, g.new_tokens, g.temperature, g.top_p)
            res = benchmark_generation(
                model, prompts, setting, warmups=g.warmups, runs=g.runs, seed=ctx.seed, device=device, monitor=ctx.monitor,
                min_window_s=ctx.suite.meters.min_window_s, precision=precision, seen=ctx.precision_seen,
            )
            if ctx.ranks is not None:  # every rank's tokens over the slowest rank's time
                res = ctx.ranks.combine_generation(res)
            out += res.metrics(headline=(mode, bs) == names.HEADLINE_GENERATE)
            if (mode, bs) == names.HEADLINE_GENERATE:  # the setting the claims read, under its plain name
                busy = res.busy_s if res.busy_s is not None else sum(res.latencies)
                ratio = None
                if "planted" in ctx.cache:  # its whole cost per call, A/B after the window, outside it
                    from eitp_bench.workloads.planted import generation_ratio

                    ratio = generation_ratio(ctx.cache["planted"], model, prompts[:bs].to(device), setting,
                                             device=device, precision=precision)
                out += ctx.planted_metrics([res.window], busy, names.PLANTED_GENERATE, ratio, res.window_name)
            ctx.energy.extend(res.energy_entries())
    out.append(Metric(name="new_tokens", value=g.new_tokens, unit="tokens"))
    if ctx.arm in COMPRESSION_ARMS:
        # 1.0: this artefact could not run on the suite's device, so it generated on CPU instead.
        moved = torch.device(ctx.device).type != "cpu"
        out.append(Metric(name="generate_device_cpu_only", value=1.0 if moved else 0.0, unit="bool"))
    return out


@register_task("compress")
def compress_task(ctx: TaskContext) -> list[Metric]:
    """Size on disk of the packed artefact and quality, before and after the arm's compression
    (none for plain arms), all on CPU."""
    from eitp_bench.workloads import compress

    trained, training = ctx.trained_lm()
    data, t = ctx.lm_data(), ctx.suite.train
    ctx.task_device = "cpu"  # int8 dynamic quantisation runs on CPU: every arm is measured there
    original = copy.deepcopy(trained).to("cpu").eval()  # a copy: later tasks keep the trained model
    blocks = data.val_blocks(ctx.suite.compress.eval_blocks)
    seen = ctx.precision_seen  # fp32 on CPU whatever the suite's precision: the int8 artefact's own regime
    loss_before, acc_before = lm_quality(original, blocks, batch_size=t.batch_size, device="cpu", seen=seen,
                                         phase="compress-eval")
    bytes_before = compress.serialized_bytes(original)
    model, loss, acc, size = original, loss_before, acc_before, bytes_before  # a plain arm: the same model
    if ctx.arm in COMPRESSION_ARMS:
        model = ctx.compressed_model()  # built (and metered) once, maybe already during generate
        if ctx.cache["compress_window"] is not None:
            ctx.energy.extend(ctx.cache["compress_window"].entries())
        loss, acc = lm_quality(model, blocks, batch_size=t.batch_size, device="cpu", seen=seen, phase="compress-eval")
        size = compress.serialized_bytes(model)
    out = _perplexity_metrics(loss, acc, data)
    out += [
        Metric(name="model_bytes", value=size, unit="B"),
        Metric(name="model_bytes_uncompressed", value=bytes_before, unit="B"),
        Metric(name="compression_ratio", value=bytes_before / size, unit="1"),
        Metric(name="val_loss_uncompressed", value=loss_before, unit="nats/token"),
        Metric(name="val_ppl_uncompressed", value=math.exp(loss_before), unit="1"),
        Metric(name="val_accuracy_uncompressed", value=acc_before, unit="1"),
        # Relative quality lost by compressing this arm's own model (the paper's "≤ 3 %").
        Metric(name="accuracy_drop", value=(acc_before - acc) / acc_before if acc_before else 0.0, unit="1"),
        Metric(name="ppl_increase", value=math.exp(loss) / math.exp(loss_before) - 1.0, unit="1"),
    ]
    if ctx.arm in COMPRESSION_ARMS:  # wall time of building the artefact (its window's joules are in energy)
        out.append(Metric(name="compress_s", value=ctx.cache["compress_s"], unit="s", window=names.COMPRESS_WINDOW))
        # a compressed arm runs no train task: its record carries the lr of the model it compresses
        out.append(Metric(name="lr", value=training.lr, unit="1"))
    return out


@register_task("theory")
def theory_task(ctx: TaskContext) -> list[Metric]:
    """Transitions and Landauer bounds per token, H(θ) and E_min, training floors (workloads/theory_tasks.py)."""
    from eitp_bench.workloads.theory_tasks import theory_task as run_theory

    return run_theory(ctx)


@register_task("derivation")
def derivation_task(ctx: TaskContext) -> list[Metric]:
    """Energy of retrieving stored state against recomputing it (workloads/theory_tasks.py)."""
    from eitp_bench.workloads.theory_tasks import derivation_task as run_derivation

    return run_derivation(ctx)


def _calibration_batches(data: LMData, ctx: TaskContext) -> list[np.ndarray]:
    gen = data.train_batches(ctx.suite.train.batch_size, seed=ctx.seed + 10_000)
    return [next(gen) for _ in range(ctx.suite.compress.calib_batches)]


class _null:
    """A stand-in for a monitor window when there is no monitor."""

    result = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

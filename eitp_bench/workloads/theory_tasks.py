"""Suite tasks for the theory package: Landauer bounds, E_min, training floors, derivation entropy.

`theory_task` prices the arm's trained LM against thermodynamic floors (no energy is measured:
these are bounds); `derivation_task` measures retrieve-vs-derive (KV-cache reuse vs recompute)
energy on the same model. Both use the heat-sink temperature in kelvin (300 K unless the suite
says otherwise), never a loss "temperature".
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from eitp_bench.records import Metric
from eitp_bench.theory.constants import DEFAULT_TEMPERATURE_K, check_temperature, landauer_j_per_bit

THEORY_VAL_BLOCKS = 4  # validation blocks counted for transitions: enough for H_b(p_i), still fast
DEFAULT_SEQ_LENS = (8, 16, 32, 64)
DEFAULT_REPEATS = 3


def _theory_config(ctx) -> Any:
    return getattr(ctx.suite, "theory", None)


def temperature_k(ctx) -> float:
    """The suite's heat-sink temperature (suite.theory.temperature_k) or 300 K."""
    cfg = _theory_config(ctx)
    t = getattr(cfg, "temperature_k", None) if cfg is not None else None
    return check_temperature(DEFAULT_TEMPERATURE_K if t is None else t)


def _parameter_code_entropy(model, ctx, storage: str) -> dict[str, Any]:
    """param_entropy.code_entropy of the model's parameters over `storage` codes (N, Miller–Madow H, degenerate).

    Cached per repetition and storage: train and theory both need it, and fp32 on GPT-2 small is a
    unique-count over 124 M values."""
    key = ("code_entropy", id(model), storage)
    if key not in ctx.cache:
        from eitp_bench.theory import param_entropy

        ctx.cache[key] = param_entropy.code_entropy(list(model.parameters()), storage)
    return ctx.cache[key]


def e_min_metrics(model, ctx) -> list[Metric]:
    """H(θ), EIT-P's E_min = k_B·T·ln2·N·H(θ) and the degenerate flag over each reported storage code.

    bf16 and int8 are the figures that mean something; fp32 is kept with its degenerate flag (1.0)
    so a reader sees why it is not used. T is the heat-sink temperature in kelvin."""
    from eitp_bench.theory import param_entropy as pe

    t = temperature_k(ctx)
    e_l = landauer_j_per_bit(t)
    out = [Metric(name="heat_sink_temperature_k", value=t, unit="K")]  # the T every E_min here is at
    for storage in pe.REPORTED_STORAGES:
        h = _parameter_code_entropy(model, ctx, storage)
        h1 = h["miller_madow_bits_per_param"]
        out += [
            Metric(name=pe.param_entropy_metric(storage), value=h1, unit="bits"),
            Metric(name=pe.e_min_metric_name(storage), value=e_l * h["parameters"] * h1, unit="J"),
            Metric(name=pe.degenerate_metric(storage), value=1.0 if h["degenerate"] else 0.0, unit="bool"),
        ]
    return out


def theory_task(ctx) -> list[Metric]:
    """Transitions and Landauer bounds per token, H(θ) and E_min, and the three training floors."""
    from eitp_bench.theory import floors, landauer, param_entropy

    model, result = ctx.trained_lm()
    t = temperature_k(ctx)
    e_l = landauer_j_per_bit(t)
    blocks = ctx.lm_data().val_blocks(THEORY_VAL_BLOCKS)
    ids = torch.as_tensor(blocks, dtype=torch.long, device=ctx.device)
    counts = landauer.count_transitions(model, ids)
    out = [
        Metric(name="transitions_reset_per_token", value=counts.reset, unit="transitions"),
        Metric(name="transitions_flips_per_token", value=counts.flips, unit="transitions"),
        Metric(name="transitions_entropy_bits_per_token", value=counts.entropy_bits, unit="bits"),
    ]
    # E ≥ k_B·T·ln2·N_tr, one per counting convention (same arithmetic as landauer_bound_per_inference).
    for convention, n_tr in (("reset", counts.reset), ("flips", counts.flips), ("entropy", counts.entropy_bits)):
        out.append(Metric(name=f"landauer_{convention}_j_per_token", value=e_l * n_tr, unit="J"))

    storage = param_entropy.storage_of(model)
    out += e_min_metrics(model, ctx)
    # Floors and the T = 1.0 figure use the primary (bf16) codes: the fp32 histogram is degenerate.
    primary = _parameter_code_entropy(model, ctx, param_entropy.PRIMARY_STORAGE)
    n_params, h1 = primary["parameters"], primary["miller_madow_bits_per_param"]
    # The paper's dimensionless T = 1.0 put into k_B·T·ln2 (shown only to expose the misuse).
    out.append(Metric(name=param_entropy.E_MIN_PAPER_T1_METRIC, value=landauer_j_per_bit(1.0) * n_params * h1,
                      unit="J"))

    steps = result.steps
    tokens_seen = steps * result.tokens_per_step
    out += [
        Metric(name="floor_write_once_j",
               value=floors.write_once_floor(n_params, h1, t, storage=param_entropy.PRIMARY_STORAGE).value, unit="J"),
        Metric(name="floor_state_overwrite_j",
               value=floors.state_overwrite_floor(n_params, steps, storage, t).value, unit="J"),
        Metric(name="floor_tkachenko_j", value=floors.tkachenko_training_floor(n_params, tokens_seen, t).value, unit="J"),
        Metric(name="training_tokens_seen", value=tokens_seen, unit="tokens"),
    ]
    return out


# ----------------------------------------------------------------------------- derivation


def derivation_settings(ctx, n_positions: int) -> tuple[list[int], int]:
    """Prefix lengths (suite.theory.seq_lens, else 8..64 below n_positions) and repeats."""
    cfg = _theory_config(ctx)
    lens = getattr(cfg, "seq_lens", None) if cfg is not None else None
    repeats = getattr(cfg, "repeats", None) if cfg is not None else None
    if lens is None:
        lens = [L for L in DEFAULT_SEQ_LENS if L < n_positions] or [max(1, n_positions // 2)]
    return sorted(set(int(L) for L in lens)), int(repeats or DEFAULT_REPEATS)


def min_window_s(ctx) -> float:
    """Shortest derivation window in seconds (suite.theory.min_window_s, else 1 s)."""
    from eitp_bench.theory.derivation import DEFAULT_MIN_WINDOW_S

    cfg = _theory_config(ctx)
    value = getattr(cfg, "min_window_s", None) if cfg is not None else None
    return DEFAULT_MIN_WINDOW_S if value is None else float(value)


def hardware_profile(ctx) -> Optional[dict]:
    """The matched profile of the device the task runs on (a dict), or None on unknown hardware."""
    if "hardware_profile" in ctx.cache:  # set by the runner or a test
        return ctx.cache["hardware_profile"]
    profile = None
    try:
        from eitp_bench.hardware import detect
        from eitp_bench.hardware.profiles import match_machine

        matched = match_machine(detect())
        on_gpu = str(ctx.device).startswith("cuda")
        found = next((p for p in matched["gpus"] if p), None) if on_gpu else matched["cpu"]
        profile = found.model_dump() if found is not None else None
    except Exception:  # detection is best-effort here: no profile just means no prediction
        profile = None
    ctx.cache["hardware_profile"] = profile
    return profile


def derivation_task(ctx) -> list[Metric]:
    """Retrieve (KV-cache reuse) vs derive (recompute) energy and time per operation and prefix length, and crossovers.

    Each window repeats its operation until it lasts max(theory.min_window_s, 10 counter update periods);
    figures from windows shorter than max(1 s, 10 periods) carry derivation_below_resolution = 1.0 and
    their crossover is written as crossover_below_resolution_len, never as a measured one."""
    import time

    from eitp_bench.theory import derivation
    from eitp_bench.theory.param_entropy import storage_of

    model, _ = ctx.trained_lm()
    t = temperature_k(ctx)
    seq_lens, repeats = derivation_settings(ctx, model.config.n_positions)
    kwargs = dict(seq_lens=seq_lens, device=ctx.device, repeats=repeats, temperature_k=t, seed=ctx.seed,
                  min_window_s=min_window_s(ctx), clock=ctx.cache.get("derivation_clock", time.perf_counter))
    outer = ctx.monitor.window("derivation") if ctx.monitor is not None else None
    if outer is not None:
        with outer as w:
            points = derivation.run_derivation_experiment(model, monitor=ctx.monitor, **kwargs)
        ctx.energy.extend(w.result.entries())
    else:
        points = derivation.run_derivation_experiment(model, **kwargs)

    out: list[Metric] = []
    kv = [p for p in points if p["experiment"] == "kv_cache"]
    for p in points:
        prefix = "" if p["experiment"] == "kv_cache" else "ckpt_"
        tag = f"{p['strategy']}"
        L = p["x"]
        out.append(Metric(name=f"{prefix}{tag}_s@{L}", value=p["seconds"], unit="s", window="derivation"))
        if p["joules"] is not None:
            out.append(Metric(name=f"{prefix}{tag}_j@{L}", value=p["joules"], unit="J", window="derivation"))
        if p["experiment"] == "kv_cache" and p["strategy"] == "derive" and p["h_bits"] is not None:
            out.append(Metric(name=f"h_derive_bits@{L}", value=p["h_bits"], unit="bits"))
    # A metric cannot carry its method: 1.0 only when every KV point's joules were measured.
    measured = bool(kv) and all(p["joules_method"] == "measured" for p in kv)
    out.append(Metric(name="derivation_energy_measured", value=1.0 if measured else 0.0, unit="bool"))
    below = any(p["below_resolution"] for p in points)
    if points:
        out += [
            Metric(name=derivation.BELOW_RESOLUTION_METRIC, value=1.0 if below else 0.0, unit="bool"),
            Metric(name=derivation.WINDOW_S_METRIC, value=min(p["window_s"] for p in points), unit="s"),
            Metric(name=derivation.RESOLUTION_S_METRIC, value=points[0]["resolution_s"], unit="s"),
            Metric(name=derivation.UPDATE_PERIOD_S_METRIC, value=points[0]["update_period_s"], unit="s"),
        ]

    for c in derivation.measured_crossovers(points):
        if c["experiment"] == "kv_cache" and c["crossover"] is not None and math.isfinite(c["crossover"]):
            name = derivation.CROSSOVER_UNRESOLVED_METRIC if c["below_resolution"] else derivation.CROSSOVER_MEASURED_METRIC
            out.append(Metric(name=name, value=c["crossover"], unit="tokens"))
            out.append(Metric(name="crossover_measured_on_joules", value=float(c["on"] == "joules"), unit="bool"))
    profile = hardware_profile(ctx)
    if profile is not None:
        precision = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16"}[storage_of(model)]
        q = derivation.predicted_crossover(model.config, profile, precision=precision, temperature_k=t)
        if q is not None and q.value is not None and math.isfinite(q.value):
            out.append(Metric(name="crossover_predicted_len", value=q.value, unit="tokens"))
    return out

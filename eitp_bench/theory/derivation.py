"""Derivation entropy (Xu & Li, arXiv:2511.19156), operationalised per docs/physical-floors.md §2.

Retrieve a stored state or derive it again? We measure both and price them in bits of
negentropy, H = E / (k_B·T·ln2):
  KV cache:     next token with past_key_values (retrieve) vs a full forward over the prefix (derive),
  activations:  a training step storing activations (retrieve) vs torch.utils.checkpoint (derive).
The paper's own formulas could not be retrieved: all of this is our operationalisation.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Any, Callable, Optional, Sequence

import torch

from eitp_bench.errors import UserError
from eitp_bench.theory.ladder import profile_figures
from eitp_bench.theory.constants import DEFAULT_TEMPERATURE_K, check_temperature, landauer_j_per_bit
from eitp_bench.theory.quantity import Quantity

SOURCE = "Xu & Li, arXiv:2511.19156 (operationalised, docs/physical-floors.md §2)"


# --- window length and meter resolution ------------------------------------------------

# Each operation is repeated inside its window until the window lasts at least
# max(min_window_s, WINDOW_COUNTER_PERIODS × the counter's update period): a window of a few
# milliseconds is below what any meter resolves (NVML's counter moves every ~20–100 ms, its power is
# a ~1 s average on Ampere+; RAPL's ~1 ms counter is read by a poller). Energy per operation is the
# window's joules divided by the repetitions.
DEFAULT_MIN_WINDOW_S = 1.0
WINDOW_COUNTER_PERIODS = 10
# A window shorter than max(RESOLUTION_FLOOR_S, WINDOW_COUNTER_PERIODS × period) is "below meter
# resolution" whatever min_window_s asked for (issue 8: max(1 s, 10 counter update periods)).
RESOLUTION_FLOOR_S = 1.0
DEFAULT_UPDATE_PERIOD_S = 0.001  # no meter states one: RAPL's ~1 ms, the finest counter we read
# NVML's counter before its sampler has seen two changes: the upper end of the reported 20–100 ms.
NVML_UNINFERRED_PERIOD_S = 0.1
MAX_REPS = 10_000_000  # a guard against a clock that never advances, not a limit a real op reaches

# Metric names (derivation_task writes them, the report reads them).
BELOW_RESOLUTION_METRIC = "derivation_below_resolution"  # 1.0: some energy window was below resolution
WINDOW_S_METRIC = "derivation_window_s"  # the shortest energy window, s
RESOLUTION_S_METRIC = "derivation_resolution_s"  # the window length the meters resolve, s
UPDATE_PERIOD_S_METRIC = "derivation_update_period_s"  # the counter update period used, s
CROSSOVER_MEASURED_METRIC = "crossover_measured_len"
CROSSOVER_UNRESOLVED_METRIC = "crossover_below_resolution_len"  # from windows below resolution: not a measurement


def _meter_period(meter) -> Optional[float]:
    """A meter's counter update period in seconds, or None when it has no counter (the estimate)."""
    stated = getattr(meter, "counter_update_period_s", None)  # a meter may state it (tests, future meters)
    if stated is not None:
        return stated() if callable(stated) else float(stated)
    name = getattr(meter, "name", "")
    if name in ("rapl", "pyrapl"):
        from eitp_bench.energy.rapl import UPDATE_PERIOD_S

        return UPDATE_PERIOD_S
    if name == "nvml":
        periods = []
        for ch in meter.channels():
            try:
                p = meter.update_period_s(int(str(ch.device).split(":")[1]))
            except (IndexError, ValueError, StopIteration):
                p = None
            periods.append(p if p is not None else NVML_UNINFERRED_PERIOD_S)
        return max(periods, default=NVML_UNINFERRED_PERIOD_S)
    return None


def meter_update_period_s(monitor) -> float:
    """The largest counter update period among the monitor's meters; DEFAULT_UPDATE_PERIOD_S if none is known."""
    periods = [p for p in (_meter_period(m) for m in getattr(monitor, "meters", None) or []) if p is not None and p > 0]
    return max(periods, default=DEFAULT_UPDATE_PERIOD_S)


def required_window_s(min_window_s: float, update_period_s: float) -> float:
    """How long each window runs: max(min_window_s, 10 counter update periods)."""
    return max(min_window_s, WINDOW_COUNTER_PERIODS * update_period_s)


def resolution_s(update_period_s: float) -> float:
    """The shortest window the meters resolve: max(1 s, 10 counter update periods)."""
    return max(RESOLUTION_FLOOR_S, WINDOW_COUNTER_PERIODS * update_period_s)


def repeat_until(fn: Callable[[], Any], min_s: float, clock: Callable[[], float] = time.perf_counter) -> tuple[int, float]:
    """Call `fn` until `min_s` seconds of `clock` have passed (at least once): (repetitions, elapsed seconds)."""
    t0 = clock()
    reps = 0
    while True:
        fn()
        reps += 1
        elapsed = clock() - t0
        if elapsed >= min_s or reps >= MAX_REPS:
            return reps, elapsed


# --- measuring ------------------------------------------------------------------------

def _measure(monitor, name: str, fn: Callable[[], Any], *, min_window_s: float = 0.0,
             clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Repeat `fn` inside one window for ≥ min_window_s; time and joules per call (window ÷ repetitions).

    Joules from the monitor window: measured if any meter reads, else its estimate."""
    if monitor is None:
        reps, elapsed = repeat_until(fn, min_window_s, clock)
        return {"seconds": elapsed / reps, "joules": None, "method": "none", "reps": reps, "window_s": elapsed,
                "note": "no energy monitor given: time only"}
    with monitor.window(name) as w:
        reps, elapsed = repeat_until(fn, min_window_s, clock)
    out = {"seconds": elapsed / reps, "reps": reps, "window_s": elapsed}
    result = w.result
    if result.measured_joules is not None:
        return {**out, "joules": float(result.measured_joules) / reps, "method": "measured", "note": ""}
    estimated = [e for e in result.energy if e.method == "estimated" and e.joules is not None]
    if estimated:
        meters = sorted({e.meter for e in estimated})
        return {**out, "joules": float(sum(e.joules for e in estimated)) / reps, "method": "estimated",
                "note": f"no energy sensor read here: joules ESTIMATED by {', '.join(meters)}, not measured"}
    return {**out, "joules": None, "method": "none", "note": "no meter returned joules for this window"}


def _summarise(samples: list[dict[str, Any]], base: dict[str, Any], e_l: float, window: dict[str, float]) -> dict[str, Any]:
    joules = [s["joules"] for s in samples if s["joules"] is not None]
    j = statistics.median(joules) if len(joules) == len(samples) else None
    shortest = min(s["window_s"] for s in samples)
    point = dict(base)
    point.update({
        "seconds": statistics.median(s["seconds"] for s in samples),
        "joules": j, "joules_method": samples[0]["method"], "note": samples[0]["note"],
        "repeats": len(samples),
        "reps_per_window": min(s["reps"] for s in samples),
        "window_s": shortest,
        **window,
        # Only joules need a meter to resolve them: a time-only point is never "below resolution".
        "below_resolution": j is not None and shortest < window["resolution_s"],
        "h_bits": None if j is None else j / e_l,  # H = E / (k_B·T·ln2)
    })
    return point


def _cache_argument(model) -> str:
    """transformers 5 renamed the KV cache argument and output `past_key_values` → `cache` (the old
    name is removed in 5.40); 4.x knows only the old one. Use whichever this version's forward takes."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _kv_points(model, L: int, *, monitor, device, repeats: int, e_l: float, vocab: int, seed: int,
               window: dict[str, float], clock) -> list[dict]:
    gen = torch.Generator().manual_seed(seed + L)
    ids = torch.randint(0, vocab, (1, L + 1), generator=gen).to(device)
    cache_arg = _cache_argument(model)
    with torch.no_grad():
        past = getattr(model(ids[:, :L], use_cache=True), cache_arg)  # stored before the window opens

    def reuse():
        with torch.no_grad():
            model(ids[:, L:], use_cache=True, **{cache_arg: past})
        # A Cache object grows in place: dropping the appended position (a view; crop(-1) means "remove
        # one" in every transformers version that has crop) restores the stored prefix, so every
        # repetition inside the window reuses the same L positions. A legacy tuple cache is not mutated.
        if hasattr(past, "crop"):
            past.crop(-1)
        _sync(device)

    def recompute():
        with torch.no_grad():
            model(ids, use_cache=False)
        _sync(device)

    reuse(), recompute()  # warm-up outside any window
    if hasattr(past, "get_seq_length") and past.get_seq_length() != L:
        raise RuntimeError(f"KV cache holds {past.get_seq_length()} positions after a reuse, expected {L}")
    retrieve, derive = [], []
    for r in range(repeats):
        # alternate the order so drift (clocks, temperature) does not favour one strategy
        for fn, name, out in ((reuse, "retrieve", retrieve), (recompute, "derive", derive))[:: 1 if r % 2 == 0 else -1]:
            out.append(_measure(monitor, f"derivation-kv-{name}-L{L}", fn, min_window_s=window["required_window_s"],
                                clock=clock))
    base = {"experiment": "kv_cache", "x_name": "prefix_tokens", "x": L}
    return [_summarise(retrieve, {**base, "strategy": "retrieve"}, e_l, window),
            _summarise(derive, {**base, "strategy": "derive"}, e_l, window)]


def _checkpoint_points(model, L: int, x_name: str, x: int, *, monitor, device, repeats, e_l, vocab, seed,
                       window: dict[str, float], clock) -> list[dict]:
    gen = torch.Generator().manual_seed(seed + 7 * L)
    ids = torch.randint(0, vocab, (1, L), generator=gen).to(device)
    was_training = model.training
    model.train()
    for m in model.modules():  # dropout off: both strategies must do identical arithmetic
        if isinstance(m, torch.nn.Dropout):
            m.p_saved, m.p = getattr(m, "p", 0.0), 0.0

    def step():
        model(ids, labels=ids, use_cache=False).loss.backward()
        _sync(device)
        model.zero_grad(set_to_none=True)

    stored, recomputed = [], []
    try:
        for r in range(repeats):
            pairs = ((False, "retrieve", stored), (True, "derive", recomputed))
            for checkpointing, name, out in pairs[:: 1 if r % 2 == 0 else -1]:
                _set_checkpointing(model, checkpointing)  # outside the window: only the steps are measured
                if r == 0:
                    step()  # warm-up outside any window
                out.append(_measure(monitor, f"derivation-ckpt-{name}-{x_name}{x}", step,
                                    min_window_s=window["required_window_s"], clock=clock))
    finally:
        _set_checkpointing(model, False)
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout) and hasattr(m, "p_saved"):
                m.p = m.p_saved
                del m.p_saved
        model.train(was_training)
    base = {"experiment": "activation_checkpointing", "x_name": x_name, "x": x,
            "step_note": "forward + backward, no optimiser update (identical work every repeat)"}
    return [_summarise(stored, {**base, "strategy": "retrieve"}, e_l, window),
            _summarise(recomputed, {**base, "strategy": "derive"}, e_l, window)]


def _set_checkpointing(model, on: bool) -> None:
    # transformers ≥ 5 renamed gradient_checkpointing_* to activation_checkpointing_*
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs) if on else model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs) if on else model.gradient_checkpointing_disable()


def _sync(device) -> None:
    if str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def _truncated(model, depth: int):
    """A copy of a GPT-2 model keeping its first `depth` blocks."""
    m = copy.deepcopy(model)
    m.transformer.h = torch.nn.ModuleList(list(m.transformer.h)[:depth])
    m.config.n_layer = depth
    return m


def run_derivation_experiment(model, *, seq_lens: Sequence[int], depths: Optional[Sequence[int]] = None,
                              monitor=None, device="cpu", repeats: int = 3,
                              temperature_k: float = DEFAULT_TEMPERATURE_K, seed: int = 0,
                              min_window_s: float = DEFAULT_MIN_WINDOW_S,
                              clock: Callable[[], float] = time.perf_counter) -> list[dict[str, Any]]:
    """Retrieve-vs-derive points (median per-operation time and joules over `repeats` windows) for both testbeds.

    Each window repeats its operation until it lasts max(min_window_s, 10 counter update periods of the
    monitor's meters); a point whose shortest window is under max(1 s, 10 periods) is `below_resolution`.
    `clock` times the windows (injected by tests).
    """
    e_l = landauer_j_per_bit(check_temperature(temperature_k))
    n_positions = getattr(model.config, "n_positions", 1024)
    bad = [L for L in seq_lens if not 1 <= L < n_positions]
    if bad:
        raise UserError(f"sequence lengths {bad} are outside 1..{n_positions - 1} for this model",
                        fix="choose prefix lengths shorter than the model's n_positions")
    if repeats < 1:
        raise UserError(f"repeats = {repeats} must be ≥ 1", fix="use at least one repeat")
    if not (isinstance(min_window_s, (int, float)) and math.isfinite(min_window_s) and min_window_s > 0):
        raise UserError(f"theory.min_window_s = {min_window_s!r} must be a positive number of seconds",
                        fix=f"set theory.min_window_s to e.g. {DEFAULT_MIN_WINDOW_S:g} (seconds per measurement window)")
    period = meter_update_period_s(monitor)
    window = {"update_period_s": period, "required_window_s": required_window_s(min_window_s, period),
              "resolution_s": resolution_s(period)}
    model = model.to(device)
    vocab = model.config.vocab_size
    was_training = model.training
    model.eval()
    points = []
    common = dict(monitor=monitor, device=device, repeats=repeats, e_l=e_l, vocab=vocab, seed=seed, window=window,
                  clock=clock)
    for L in seq_lens:
        points += _kv_points(model, L, **common)
    for L in seq_lens:
        points += _checkpoint_points(model, L, "seq_len", L, **common)
    for d in depths or ():
        points += _checkpoint_points(_truncated(model, d), seq_lens[-1], "depth", d, **common)
    model.train(was_training)
    for p in points:
        p["temperature_k"] = temperature_k
        p["source"] = SOURCE
    return points


# --- crossover --------------------------------------------------------------------------

def find_crossover(xs: Sequence[float], e_retrieve: Sequence[float], e_derive: Sequence[float]) -> Optional[float]:
    """First x where the two positive curves cross, interpolating log E against log x; None if they don't."""
    if not (len(xs) == len(e_retrieve) == len(e_derive)) or len(xs) < 2:
        raise ValueError("xs, e_retrieve and e_derive must have the same length ≥ 2")
    if min(xs) <= 0 or min(e_retrieve) <= 0 or min(e_derive) <= 0:
        raise ValueError("log-space interpolation needs positive xs and energies")
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    lx = [math.log(xs[i]) for i in order]
    gap = [math.log(e_derive[i]) - math.log(e_retrieve[i]) for i in order]
    for i in range(len(lx) - 1):
        if gap[i] == 0:
            return math.exp(lx[i])
        if gap[i] * gap[i + 1] < 0:
            frac = gap[i] / (gap[i] - gap[i + 1])
            return math.exp(lx[i] + frac * (lx[i + 1] - lx[i]))
    return math.exp(lx[-1]) if gap[-1] == 0 else None


def measured_crossovers(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Crossover of retrieve vs derive for each experiment sweep, on joules if all present, else seconds."""
    out = []
    groups: dict[tuple, dict[float, dict[str, dict]]] = {}
    for p in points:
        groups.setdefault((p["experiment"], p["x_name"]), {}).setdefault(p["x"], {})[p["strategy"]] = p
    for (experiment, x_name), by_x in groups.items():
        xs = sorted(x for x, s in by_x.items() if "retrieve" in s and "derive" in s)
        if len(xs) < 2:
            continue
        pairs = [(by_x[x]["retrieve"], by_x[x]["derive"]) for x in xs]
        on = "joules" if all(r["joules"] and d["joules"] for r, d in pairs) else "seconds"
        methods = sorted({r["joules_method"] for r, _ in pairs}) if on == "joules" else []
        cross = find_crossover(xs, [r[on] for r, _ in pairs], [d[on] for _, d in pairs])
        # A crossover on joules from any window below meter resolution is not a measurement.
        below = on == "joules" and any(p.get("below_resolution") for pair in pairs for p in pair)
        out.append({"experiment": experiment, "x_name": x_name, "on": on, "joules_method": methods,
                    "crossover": cross, "below_resolution": below,
                    "cheaper_at_largest_x": "retrieve" if pairs[-1][0][on] < pairs[-1][1][on] else "derive"})
    return out


# --- prediction from a hardware profile --------------------------------------------------

def _pick(profile, kind: str, prefer: Sequence[str]) -> Optional[tuple[str, float]]:
    figures = profile_figures(profile, kind)
    for want in prefer:
        for label, joules, _ in figures:
            if label == want:
                return (label, joules)
    return (figures[0][0], figures[0][1]) if figures else None


def _gpt2_sizes(config) -> dict[str, int]:
    d, n_layer, vocab = config.n_embd, config.n_layer, config.vocab_size
    inner = getattr(config, "n_inner", None) or 4 * d
    per_layer = (d * 3 * d + 3 * d) + (d * d + d) + (d * inner + inner) + (inner * d + d) + 4 * d
    return {"d": d, "n_layer": n_layer, "vocab": vocab, "layer_params": n_layer * per_layer,
            "total_params": n_layer * per_layer + vocab * d + config.n_positions * d + 2 * d}


def kv_energy_model(config, e_op: float, e_byte: float, bytes_per_value: int, lengths: Sequence[int]) -> dict[str, list]:
    """Predicted J for the next token at prefix L: KV-cache reuse vs full recomputation (GPT-2 arithmetic).

    FLOPs: 2 per multiply-add of every weight per token, 4·d per attended position per layer (QKᵀ and AV),
    LM head once. Bytes: weights read once per forward; reuse also reads the L cached K,V and writes one.
    """
    s = _gpt2_sizes(config)
    d, n, head = s["d"], s["n_layer"], 2 * s["d"] * s["vocab"]
    weights = s["total_params"] * bytes_per_value
    kv_per_token = 2 * n * d * bytes_per_value
    retrieve, derive = [], []
    for L in lengths:
        f_ret = 2 * s["layer_params"] + 4 * n * d * (L + 1) + head
        b_ret = weights + kv_per_token * (L + 1)  # read L, write 1
        f_der = 2 * s["layer_params"] * (L + 1) + 4 * n * d * (L + 1) * (L + 2) // 2 + head
        b_der = weights
        retrieve.append(f_ret * e_op + b_ret * e_byte)
        derive.append(f_der * e_op + b_der * e_byte)
    return {"lengths": list(lengths), "retrieve_j": retrieve, "derive_j": derive,
            "ops_per_stored_bit": 2 * s["layer_params"] / (kv_per_token * 8),
            "ops_per_bit_threshold": (e_byte / 8) / e_op}


def predicted_crossover(config, profile: dict, *, precision: str = "bf16", memory: str = "hbm",
                        temperature_k: float = DEFAULT_TEMPERATURE_K) -> Optional[Quantity]:
    """Prefix length L* where recomputing beats reusing the KV cache, from the profile's J/FLOP and J/byte.

    None when the profile lacks the figures or the curves do not cross in 1..n_positions−1: for GPT-2
    re-deriving one cached bit takes ~1.5·d/b FLOPs, far above e_rd/e_op, so reuse wins at every L.
    """
    op = _pick(profile, "flop", [precision, "fp32", "bf16", "fp16"])
    rd = _pick(profile, "byte", [memory, "hbm", "dram", "gddr"])
    if op is None or rd is None:
        return None
    b = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}.get(precision, 2)
    lengths = list(range(1, config.n_positions))
    model = kv_energy_model(config, op[1], rd[1], b, lengths)
    cross = find_crossover(lengths, model["retrieve_j"], model["derive_j"])
    if cross is None:
        return None
    return Quantity(
        "kv_crossover_prefix_tokens", cross, "tokens",
        definition="prefix length L* where E_derive(L) = E_retrieve(L) for the next token (FLOPs·e_op + bytes·e_rd)",
        source=SOURCE, operationalisation=True, temperature_k=check_temperature(temperature_k),
        notes=[f"e_op = {op[1]:.3g} J/FLOP ({op[0] or 'profile'}), e_rd = {rd[1]:.3g} J/byte ({rd[0] or 'profile'})",
               f"ops per stored bit {model['ops_per_stored_bit']:.3g} vs threshold e_rd/e_op = {model['ops_per_bit_threshold']:.3g} FLOP/bit"])


def derivation_summary(config, profile: Optional[dict], temperature_k: float = DEFAULT_TEMPERATURE_K,
                       precision: str = "bf16", memory: str = "hbm") -> dict[str, Any]:
    """The predicted side for a report: crossover (or why there is none) and H at a few lengths."""
    op = _pick(profile, "flop", [precision, "fp32", "bf16", "fp16"])
    rd = _pick(profile, "byte", [memory, "hbm", "dram", "gddr"])
    if op is None or rd is None:
        return {"available": False, "reason": "no hardware profile with energy_per_flop_j and energy_per_byte_j"}
    e_l = landauer_j_per_bit(check_temperature(temperature_k))
    b = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}.get(precision, 2)
    lengths = [L for L in (1, 16, 128, 512, config.n_positions - 1) if L < config.n_positions]
    m = kv_energy_model(config, op[1], rd[1], b, lengths)
    q = predicted_crossover(config, profile, precision=precision, memory=memory, temperature_k=temperature_k)
    return {
        "available": True, "e_op_j": op[1], "e_byte_j": rd[1], "precision": precision,
        "ops_per_stored_bit": m["ops_per_stored_bit"], "ops_per_bit_threshold": m["ops_per_bit_threshold"],
        "crossover": None if q is None else q.as_dict(),
        "crossover_note": None if q is not None else
            "no crossover in 1..n_positions−1: re-deriving a cached bit needs more FLOPs than e_rd/e_op, so reuse wins at every length",
        "points": [{"prefix_tokens": L, "retrieve_j": r, "derive_j": dv, "h_retrieve_bits": r / e_l, "h_derive_bits": dv / e_l}
                   for L, r, dv in zip(lengths, m["retrieve_j"], m["derive_j"])],
        "definition": "H = E / (k_B·T·ln2), bits of negentropy", "temperature_k": temperature_k, "source": SOURCE,
        "operationalisation": True,
    }

"""Better-posed training floors than E_min (docs/physical-floors.md §6): write-once, state overwrite, Tkachenko's."""

from __future__ import annotations

from eitp_bench.errors import UserError
from eitp_bench.theory.constants import DEFAULT_TEMPERATURE_K, K_B, check_temperature, landauer_j_per_bit
from eitp_bench.theory.quantity import Quantity

# Bits of optimiser state per parameter overwritten each step with Adam:
# weights + gradients + first and second moments (+ fp32 master weights in mixed precision).
STATE_BITS = {
    "fp32": (128, "fp32 weights 32 + fp32 grads 32 + Adam m 32 + v 32"),
    "bf16": (128, "bf16 weights 16 + bf16 grads 16 + fp32 master 32 + Adam m 32 + v 32 (mixed precision)"),
    "fp16": (128, "fp16 weights 16 + fp16 grads 16 + fp32 master 32 + Adam m 32 + v 32 (mixed precision)"),
}


def _positive(name: str, value) -> float:
    if value is None or not value >= 0:
        raise UserError(f"{name} = {value!r} must be a number ≥ 0", fix=f"give {name} as a non-negative count")
    return float(value)


def write_once_floor(n_params: int, h_codes_bits: float, temperature_k: float = DEFAULT_TEMPERATURE_K,
                     storage: str = "bf16") -> Quantity:
    t = check_temperature(temperature_k)
    n = _positive("n_params", n_params)
    return Quantity(
        "floor_write_once_j", landauer_j_per_bit(t) * n * h_codes_bits, "J",
        definition="E_L·N·H_codes: erase-and-write the final model once (N parameters × H bits of storage code)",
        source="docs/physical-floors.md §6 (i)", operationalisation=True, temperature_k=t,
        notes=[f"N = {n:.6g}, H_codes = {h_codes_bits:.6g} bit/parameter over {storage} codes"])


def state_overwrite_floor(n_params: int, steps: int, dtype: str = "fp32", temperature_k: float = DEFAULT_TEMPERATURE_K) -> Quantity:
    t = check_temperature(temperature_k)
    if dtype not in STATE_BITS:
        raise UserError(f"unknown training dtype {dtype!r}", fix=f"use one of {sorted(STATE_BITS)}")
    bits, what = STATE_BITS[dtype]
    n, k = _positive("n_params", n_params), _positive("steps", steps)
    return Quantity(
        "floor_state_overwrite_j", k * n * bits * landauer_j_per_bit(t), "J",
        definition="K·N·b_state·E_L: every step overwrites each parameter's optimiser state (digital training floor)",
        source="docs/physical-floors.md §6 (ii)", operationalisation=True, temperature_k=t,
        notes=[f"b_state = {bits} bits ({what})", f"K = {k:.6g} steps, N = {n:.6g} parameters"])


def tkachenko_training_floor(n_params: int, d_examples: int, temperature_k: float = DEFAULT_TEMPERATURE_K,
                             d_unit: str = "tokens") -> Quantity:
    t = check_temperature(temperature_k)
    n, d = _positive("n_params", n_params), _positive("d_examples", d_examples)
    return Quantity(
        "floor_tkachenko_train_j", 2.0 * n * d * K_B * t, "J",
        definition="E_train ≳ 2·N·D·k_B·T (N trainable parameters, D training-set size); no ln2",
        source="Tkachenko, arXiv:2503.09980 v3", operationalisation=False, temperature_k=t,
        notes=[f"N = {n:.6g} parameters, D = {d:.6g} {d_unit} (we count D in {d_unit}; the paper says 'dataset size')",
               "an analog (dynamic-hardware) floor"])

"""EIT-P's E_min = k_B·T·ln2·H(θ), computed over the parameters' real storage codes.

H(θ) of a histogram is in bits *per parameter*, and depends on the bins: with width Δ,
H_Δ ≈ h(θ) − log2 Δ, so each halving of Δ adds ~1 bit. The only non-arbitrary bins are the
codes the weights are stored in (fp32 → 2³² codes, bf16/fp16 → 2¹⁶, int8 → 2⁸), so that is
what we count; the bin sensitivity is reported beside it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import numpy as np
import torch

from eitp_bench.errors import UserError
from eitp_bench.theory.constants import DEFAULT_TEMPERATURE_K, K_B, LN2, check_temperature, landauer_j_per_bit
from eitp_bench.theory.quantity import Quantity

SOURCE = "EIT-P paper (E_min = k_B·T·ln2·H(θ)); theory.md §6"
STORAGE_BITS = {"fp32": 32, "bf16": 16, "fp16": 16, "int8": 8}
_TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# --- entropy of a histogram ------------------------------------------------------------

def plugin_entropy_bits(counts) -> float:
    """Plug-in (maximum-likelihood) entropy −Σ p log2 p of a histogram of counts."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    n = c.sum()
    if n == 0:
        return 0.0
    p = c / n
    return float(-(p * np.log2(p)).sum())


def miller_madow_correction_bits(counts) -> float:
    """Miller–Madow bias correction (K−1)/(2N) nats, in bits; K = occupied bins, N = samples."""
    c = np.asarray(counts)
    k, n = int((c > 0).sum()), float(c.sum())
    return (k - 1) / (2.0 * n * LN2) if n > 0 else 0.0


def miller_madow_entropy_bits(counts) -> float:
    return plugin_entropy_bits(counts) + miller_madow_correction_bits(counts)


# --- storage codes --------------------------------------------------------------------

def quantize_int8(w: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-row absmax int8 codes (a 1-D tensor gets one scale)."""
    w = w.detach().float()
    rows = w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(1, -1)
    scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0
    return torch.round(rows / scale).clamp(-127, 127).to(torch.int8).reshape(w.shape)


def code_counts(tensors: Iterable[torch.Tensor], storage: str) -> np.ndarray:
    """Histogram of storage codes pooled over `tensors` (only the occupied codes' counts)."""
    if storage not in STORAGE_BITS:
        raise UserError(f"unknown storage format {storage!r}", fix=f"use one of {sorted(STORAGE_BITS)}")
    tensors = [t.detach().cpu() for t in tensors]
    if storage == "int8":
        total = torch.zeros(256, dtype=torch.int64)
        for t in tensors:
            total += torch.bincount(quantize_int8(t).reshape(-1).to(torch.int64) + 128, minlength=256)
        return total.numpy()
    if storage in ("bf16", "fp16"):
        total = torch.zeros(65536, dtype=torch.int64)
        for t in tensors:
            codes = t.to(_TORCH_DTYPES[storage]).reshape(-1).view(torch.int16).to(torch.int64) + 32768
            total += torch.bincount(codes, minlength=65536)
        return total.numpy()
    # fp32: 2³² possible codes, so count only the ones present.
    codes = torch.cat([t.to(torch.float32).reshape(-1).view(torch.int32) for t in tensors])
    _, counts = torch.unique(codes, return_counts=True)
    return counts.numpy()


def storage_of(model: torch.nn.Module) -> str:
    dtype = next(model.parameters()).dtype
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def code_entropy(tensors: list[torch.Tensor], storage: str) -> dict[str, Any]:
    counts = code_counts(tensors, storage)
    return {
        "storage": storage, "max_bits": STORAGE_BITS[storage], "parameters": int(counts.sum()),
        "distinct_codes": int((counts > 0).sum()),
        "plugin_bits_per_param": plugin_entropy_bits(counts),
        "miller_madow_bits_per_param": miller_madow_entropy_bits(counts),
        "miller_madow_correction_bits": miller_madow_correction_bits(counts),
    }


# --- bin sensitivity ------------------------------------------------------------------

def binning_sensitivity(tensors: list[torch.Tensor], *, base_width: Optional[float] = None, steps: int = 8,
                        max_values: int = 2_000_000) -> list[dict[str, float]]:
    """Histogram entropy at widths Δ, 2Δ, 4Δ … (Δ defaults to std/1024): ~1 bit lost per doubling.

    Above `max_values` parameters a seeded random subsample of that size is used.
    """
    w = torch.cat([t.detach().float().reshape(-1).cpu() for t in tensors])
    if w.numel() > max_values:  # a seeded subsample keeps big models cheap; the ~1 bit/halving shift is unchanged
        w = w[torch.randperm(w.numel(), generator=torch.Generator().manual_seed(0))[:max_values]]
    w = w.double().numpy()
    delta = base_width if base_width is not None else float(w.std()) / 1024.0
    if not delta > 0:
        return []
    # floor(w / (Δ·2^k)) = floor(w/Δ) >> k, so one sort at the finest width serves every width.
    codes, counts = np.unique(np.floor(w / delta).astype(np.int64), return_counts=True)
    rows = []
    for k in range(steps):
        coarse = codes >> k  # still sorted: group equal neighbours
        starts = np.flatnonzero(np.r_[True, coarse[1:] != coarse[:-1]])
        merged = np.add.reduceat(counts, starts)
        rows.append({"bin_width": delta * 2**k, "plugin_bits_per_param": plugin_entropy_bits(merged),
                     "miller_madow_bits_per_param": miller_madow_entropy_bits(merged)})
    return rows


# --- E_min -----------------------------------------------------------------------------

def e_min(model: torch.nn.Module, temperature_k: float = DEFAULT_TEMPERATURE_K, *, storages: Optional[list[str]] = None) -> dict[str, Any]:
    """E_min over each storage format's codes, beside the paper's T = 1.0 misuse and the bin sensitivity."""
    t = check_temperature(temperature_k)
    e_l = landauer_j_per_bit(t)
    params = [p for p in model.parameters()]
    native = storage_of(model)
    storages = storages or [native] + [s for s in ("bf16", "int8") if s != native]
    by_storage = {}
    for storage in storages:
        h = code_entropy(params, storage)
        n, h1 = h["parameters"], h["miller_madow_bits_per_param"]
        by_storage[storage] = {
            "entropy": h,
            "h_bits_per_param": Quantity(
                f"h_theta_{storage}", h1, "bit/parameter",
                definition=f"Miller–Madow entropy of the pooled histogram of {storage} storage codes of all parameters",
                source=SOURCE, operationalisation=True,
                notes=[f"plug-in {h['plugin_bits_per_param']:.6g} bits + correction {h['miller_madow_correction_bits']:.3g}",
                       f"{h['distinct_codes']} distinct codes of 2^{h['max_bits']}"]
                + (["int8 = symmetric per-row absmax quantization of the weights"] if storage == "int8" else [])
                + ([f"sample-limited: {h['distinct_codes']} distinct codes among {n} parameters, so the plug-in "
                    f"value cannot exceed log2 N = {math.log2(n):.3g} bits and Miller–Madow's correction is unreliable"]
                   if h["distinct_codes"] > n / 10 else [])).as_dict(),
            "e_min_j": Quantity(
                f"e_min_{storage}", e_l * n * h1, "J",
                definition="E_min = k_B·T·ln2 · N · H₁ (H₁ in bits per parameter, N parameters)",
                source=SOURCE, operationalisation=True, temperature_k=t,
                notes=["the histogram is permutation-invariant and similar before and after training: "
                       "it does not bound learning (theory.md §6)", f"N = {n} parameters"]).as_dict(),
        }
    first = by_storage[storages[0]]
    h1 = first["entropy"]["miller_madow_bits_per_param"]
    n = first["entropy"]["parameters"]
    misuse = K_B * 1.0 * LN2
    return {
        "native_storage": native,
        "temperature_k": t,
        "by_storage": by_storage,
        "paper_t_1_misuse": {
            "j_per_bit": Quantity(
                "landauer_at_dimensionless_t_1", misuse, "J/bit",
                definition="k_B·(1.0)·ln2: the paper's loss temperature T = 1.0 put into a physical formula",
                source=SOURCE, operationalisation=False, temperature_k=1.0,
                notes=["dimensionless-T misuse: a loss/softmax temperature has no kelvin; shown only to expose it",
                       f"{e_l / misuse:.0f}× below the value at {t:g} K"]).as_dict(),
            "e_min_j": Quantity(
                "e_min_at_dimensionless_t_1", misuse * n * h1, "J",
                definition="k_B·(1.0)·ln2 · N · H₁ (misuse, see j_per_bit)", source=SOURCE,
                operationalisation=False, temperature_k=1.0,
                notes=["dimensionless-T misuse: meaningless as physics"]).as_dict(),
        },
        "binning_sensitivity": binning_sensitivity(params),
        "binning_note": "H_Δ ≈ h(θ) − log2 Δ: doubling the bin width removes ~1 bit per parameter, so a histogram "
                        "entropy is arbitrary unless the bins are the real storage codes",
    }


def theorem_checks(measured_training_joules: Optional[float], e_min_j: float, epsilon_j: Optional[float] = None) -> dict[str, Any]:
    """Verdict inputs for the paper's Theorem 2 (E ≥ E_min) and Theorem 3 (E ≤ E_min + ε)."""
    out: dict[str, Any] = {"measured_training_joules": measured_training_joules, "e_min_j": e_min_j, "epsilon_j": epsilon_j}
    if measured_training_joules is None:
        reason = "no measured training joules (estimated joules are never used for energy claims)"
        out["theorem_2"] = {"statement": "E ≥ E_min", "verdict": "NOT MEASURED", "reason": reason}
        out["theorem_3"] = {"statement": "E ≤ E_min + ε", "verdict": "NOT MEASURED", "reason": reason}
        return out
    e = float(measured_training_joules)
    ratio = e / e_min_j if e_min_j > 0 else float("inf")
    out["theorem_2"] = {
        "statement": "E ≥ E_min", "ratio_measured_over_e_min": ratio,
        "verdict": "CONSISTENT" if e >= e_min_j else "VIOLATED",
        "reason": "uninformative: any physical process exceeds a Landauer floor; "
                  f"measured is {ratio:.3g}× E_min" if e >= e_min_j else "measured energy below E_min: check the meter",
    }
    implied = e - e_min_j
    if epsilon_j is None:
        out["theorem_3"] = {
            "statement": "E ≤ E_min + ε", "implied_epsilon_j": implied, "verdict": "UNTESTABLE",
            "reason": f"the paper gives no ε; the ε this run needs is {implied:.3g} J "
                      f"({ratio:.3g}× E_min), i.e. the bound says nothing unless ε is fixed in advance",
        }
    else:
        holds = e <= e_min_j + epsilon_j
        out["theorem_3"] = {
            "statement": "E ≤ E_min + ε", "implied_epsilon_j": implied, "bound_j": e_min_j + epsilon_j,
            "verdict": "CONSISTENT" if holds else "VIOLATED",
            "reason": f"measured {e:.6g} J {'≤' if holds else '>'} E_min + ε = {e_min_j + epsilon_j:.6g} J",
        }
    return out

"""ML 'temperature' (Dong Zhang, arXiv:2404.13218), as operationalised in docs/physical-floors.md §3.

T = ΔE/ΔS with E = loss and S the entropy of the parameter distribution. This T is
DIMENSIONLESS (loss per nat): it is never put into k_B·T.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from eitp_bench.theory.quantity import Quantity

SOURCE = "Dong Zhang, arXiv:2404.13218 (formulas reconstructed, docs/physical-floors.md §3)"
NOT_PHYSICAL = "dimensionless (loss per nat): not a physical temperature, never put into k_B·T"


def gaussian_entropy_nats(w: torch.Tensor) -> float:
    """Σ over parameters of ½·ln(2πe·Var): entropy of a Gaussian fit to the tensor's values."""
    var = float(w.detach().double().var(unbiased=False))
    if var <= 0:
        return float("-inf")
    return w.numel() * 0.5 * math.log(2 * math.pi * math.e * var)


def layer_entropies(model: nn.Module) -> dict[str, float]:
    """S per weight matrix (parameters with ≥ 2 dims), in nats."""
    return {n: gaussian_entropy_nats(p) for n, p in model.named_parameters() if p.dim() >= 2}


def temperatures_between(loss_a: float, loss_b: float, s_a: dict[str, float], s_b: dict[str, float]) -> dict[str, Any]:
    """T_k = −ΔL/ΔS between two checkpoints, per layer and for the sum over layers."""
    d_loss = loss_b - loss_a

    def t(ds: float) -> Optional[float]:
        return None if ds == 0 or not math.isfinite(ds) else -d_loss / ds

    per_layer = {n: t(s_b[n] - s_a[n]) for n in s_a if n in s_b}
    total = t(sum(s_b[n] for n in per_layer) - sum(s_a[n] for n in per_layer))
    return {
        "global": Quantity("ml_temperature_global", total, "loss/nat", definition="T = −ΔL/ΔS, S = Σ_layers Gaussian-fit entropy",
                           source=SOURCE, operationalisation=True, notes=[NOT_PHYSICAL]).as_dict(),
        "per_layer": per_layer, "delta_loss": d_loss, "unit": "loss/nat", "note": NOT_PHYSICAL,
    }


def temperature_trajectory(checkpoints: list[tuple[float, nn.Module]]) -> list[dict[str, Any]]:
    """T_k between consecutive (loss, model) checkpoints of one training run."""
    entropies = [(loss, layer_entropies(model)) for loss, model in checkpoints]
    return [temperatures_between(la, lb, sa, sb) for (la, sa), (lb, sb) in zip(entropies, entropies[1:])]


@torch.no_grad()
def local_temperatures(model: nn.Module, inputs) -> dict[str, float]:
    """T_l = 2σ_l²·E‖a_{l−1}‖²/d_l for each linear layer (nn.Linear or HF Conv1D), from input hooks."""
    sums: dict[str, list[float]] = {}
    handles = []
    for name, m in model.named_modules():
        kind = type(m).__name__
        if kind not in ("Linear", "Conv1D"):
            continue
        w = m.weight
        fan_in = w.shape[1] if kind == "Linear" else w.shape[0]  # HF Conv1D stores (in, out)
        var = float(w.double().var(unbiased=False))

        def hook(_m, inp, _out, name=name, fan_in=fan_in, var=var):
            a = inp[0].detach().double().reshape(-1, fan_in)
            acc = sums.setdefault(name, [0.0, 0, var, fan_in])
            acc[0] += float((a * a).sum())
            acc[1] += a.shape[0]

        handles.append(m.register_forward_hook(hook))
    model.eval()
    try:
        batches = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        for b in batches:
            model(**b) if isinstance(b, dict) else model(b)
    finally:
        for h in handles:
            h.remove()
    return {n: 2 * var * (sq / count) / d for n, (sq, count, var, d) in sums.items() if count}


_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "gelu": lambda z: 0.5 * z * (1 + _erf(z / math.sqrt(2))),
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "identity": lambda z: z,
}


def _erf(x):
    from scipy.special import erf

    return erf(x)


def activation_efficiency(name: str, q: float = 1.0, nodes: int = 101) -> float:
    """η_φ = E[φ(z)²]/E[z²], z ~ N(0, q), by Gauss–Hermite (probabilists') quadrature.

    With an odd, symmetric node set ReLU gives exactly ½: the positive nodes carry half of Σ w x².
    Saturating activations (tanh, sigmoid) become step-like for large q: 101 nodes agree with adaptive
    quadrature to ~1e-3 up to q = 10, ~5 % at q = 100 — hence the default qs stop at 10.
    """
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    z = math.sqrt(q) * x
    phi = _ACTIVATIONS[name](z)
    return float((w * phi**2).sum() / (w * z**2).sum())


def activation_efficiencies(qs=(0.1, 1.0, 10.0)) -> list[dict[str, Any]]:
    return [{"activation": a, "q": q, "eta": activation_efficiency(a, q),
             "definition": "η_φ = E[φ(z)²]/E[z²], z ~ N(0,q)", "source": SOURCE, "operationalisation": True,
             "unit": "1"} for a in _ACTIVATIONS for q in qs]

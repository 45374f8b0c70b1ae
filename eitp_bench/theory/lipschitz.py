"""Lipschitz contraction profile per transformer block (after Shu et al., arXiv:2604.24037).

That paper was WITHDRAWN by its authors on 28 Apr 2026; every output here says so. Its critical
condition is Lip(T) = 1 for the basic block T. We estimate, at sampled hidden states h:
  ‖J_T(h)‖₂  by power iteration on JᵀJ with torch.func.jvp / vjp (a local Lipschitz constant), and
  ρ = ‖T(h+δ) − T(h)‖ / ‖δ‖ for small random δ (the finite-difference contraction ratio).
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch.func import jvp, vjp
from torch.nn.attention import SDPBackend, sdpa_kernel

from eitp_bench.theory.quantity import Quantity

SOURCE = "Shu, Jia, Meng & Xu, arXiv:2604.24037 — WITHDRAWN by its authors on 28 Apr 2026"
WITHDRAWN = "arXiv:2604.24037 was WITHDRAWN by its authors on 28 Apr 2026: cite with caution"


def jacobian_spectral_norm(fn: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor, *,
                           iters: int = 30, tol: float = 1e-6, seed: int = 0) -> float:
    """Largest singular value of the Jacobian of fn at h, by power iteration on JᵀJ."""
    h = h.detach()
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(h.shape, generator=gen, dtype=h.dtype).to(h.device)
    v = v / v.norm()
    _, pullback = vjp(fn, h)
    sigma = 0.0
    for _ in range(iters):
        _, jv = jvp(fn, (h,), (v,))
        (jtjv,) = pullback(jv)
        norm = jtjv.norm()
        if norm == 0:
            return 0.0
        v = (jtjv / norm).detach()
        new_sigma = float(norm.detach().sqrt())  # ‖JᵀJ v‖ → σ_max² for unit v
        if abs(new_sigma - sigma) <= tol * max(new_sigma, 1e-30):
            sigma = new_sigma
            break
        sigma = new_sigma
    return sigma


@torch.no_grad()
def finite_difference_ratio(fn: Callable[[torch.Tensor], torch.Tensor], h: torch.Tensor, *,
                            eps: float = 1e-3, directions: int = 4, seed: int = 0) -> float:
    """Mean of ‖fn(h+δ) − fn(h)‖/‖δ‖ over random δ with ‖δ‖ = eps·‖h‖."""
    gen = torch.Generator().manual_seed(seed)
    base = fn(h)
    scale = eps * max(float(h.norm()), 1e-12)
    ratios = []
    for _ in range(directions):
        d = torch.randn(h.shape, generator=gen, dtype=h.dtype).to(h.device)
        d = d * (scale / d.norm())
        ratios.append(float((fn(h + d) - base).norm() / d.norm()))
    return sum(ratios) / len(ratios)


def _blocks(model) -> list[torch.nn.Module]:
    core = getattr(model, "transformer", model)
    blocks = getattr(core, "h", None)
    if blocks is None:
        raise ValueError("model has no transformer.h blocks (a GPT-2 style model is expected)")
    return list(blocks)


def block_profile(model, input_ids: torch.Tensor, *, iters: int = 20, tol: float = 1e-4,
                  dtype: torch.dtype = torch.float64) -> list[dict[str, Any]]:
    """Per block: ‖J_T(h)‖₂, the finite-difference ratio and the relative update, at the block's real input."""
    model.eval()
    with torch.no_grad():
        hidden = model(input_ids, output_hidden_states=True).hidden_states  # [embeddings, after block 0, …]
    rows = []
    for i, block in enumerate(_blocks(model)):
        h = hidden[i][:1].detach().to(dtype)  # one sampled sequence: the map acts on (seq, d) jointly
        block_d = copy.deepcopy(block).to(dtype)  # a copy: the model itself is untouched

        def fn(x, block_d=block_d):
            out = block_d(x)
            return out[0] if isinstance(out, tuple) else out

        # The math SDPA kernel is plain autograd ops, so forward-mode AD (jvp) works through it.
        with sdpa_kernel(SDPBackend.MATH):
            spectral = jacobian_spectral_norm(fn, h, iters=iters, tol=tol)
            ratio = finite_difference_ratio(fn, h)
            with torch.no_grad():
                condensing = float((fn(h) - h).norm() / h.norm())
        rows.append({
            "block": i,
            "jacobian_spectral_norm": Quantity(
                f"lip_local_block_{i}", spectral, "1",
                definition="‖J_T(h)‖₂ at a sampled hidden state (power iteration, jvp/vjp); critical value 1",
                source=SOURCE, operationalisation=True,
                notes=[WITHDRAWN, "contracting" if spectral < 1 else "expanding (≥ 1)",
                       "power iteration approaches σ_max from below: a lower estimate of the local Lipschitz constant"]).as_dict(),
            "finite_difference_ratio": Quantity(
                f"lip_fd_block_{i}", ratio, "1",
                definition="ρ = ‖T(h+δ) − T(h)‖/‖δ‖, ‖δ‖ = 1e-3·‖h‖, mean over 4 directions",
                source=SOURCE + "; contraction profile of arXiv:2603.20991", operationalisation=True,
                notes=[WITHDRAWN]).as_dict(),
            "relative_update": condensing,  # ‖T(h) − h‖/‖h‖ ("condensing")
            "critical_value": 1.0,
        })
    return rows

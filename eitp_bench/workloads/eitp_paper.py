"""EIT-P's objective as the paper writes it, computed honestly and differentiably.

    L = L_task + λ1·L_thermo + λ2·L_chaos + λ3·L_coherence
    IEM = α·H(θ)·T·C          T = T0·(1 + β·epoch)^(−γ)
    L_thermo = |E − E_min|,   E_min = k_B·T·ln2·H(θ)

The reference code implements none of these formulas (see docs/eitp-reference-code.md and
eitp_coded.py). Our operationalisations, since the paper leaves them open:

- H(θ): soft-histogram entropy of the parameters in bits per parameter. Each tensor is binned
  into `entropy_bins` equal bins over its own [min, max]; every value splits its unit mass
  linearly between the two nearest bin centres, so the histogram (and H) is differentiable in
  the weights. Per-tensor entropies are averaged weighted by element count.
- C: mean coherence |⟨h_t|h_{t+1}⟩|²/(⟨h_t|h_t⟩⟨h_{t+1}|h_{t+1}⟩) of consecutive last-layer
  hidden states.
- E: the IEM itself (dimensionless). E_min puts the dimensionless schedule temperature T
  (≈1) into k_B·T·ln2·H "as the paper writes it", giving E_min ≈ 1e-23 "J" — physically
  meaningless (docs/physical-floors.md §6), so in practice L_thermo ≈ IEM and pushes H and C down.
- Lyapunov λ: Benettin-style estimate through the transformer blocks. A random unit tangent
  is pushed through each block's Jacobian with a forward-mode JVP at the block's real input
  (the forward pass's hidden state); λ = mean over blocks of log(‖J_i v_i‖/‖v_i‖), v renormalised
  after each block. The JVP keeps the autograd graph, so L_chaos = λ² has gradients.
  It runs on the first `chaos_batch` sequences only, to bound its cost.
- L_coherence = ‖R − I‖_F with R = the correlation matrix (torch.corrcoef's) of the last hidden features
  over all tokens.

The paper gives no values for λ1..λ3, β, γ in the material we have: the defaults below are ours,
every coefficient is configurable.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

K_B = 1.380649e-23  # Boltzmann constant, J/K (exact in SI since 2019)
LN2 = math.log(2.0)

# Loss coefficients only. The paper trains at lr 1e-3; here every arm shares the suite's train
# settings (lr included), so a gain can never come from a different learning rate.
PAPER_LR = 1e-3
TERMS = ("thermo", "chaos", "coherence")
# H(θ) bins this many parameter values per batch: ~4 GPT-2-small layers, or its embedding alone;
# the batch's temporaries (about 40 bytes a value) stay near 1 GB, whatever the model's size.
GROUP_ELEMENTS = 1 << 25

DEFAULTS = dict(
    T0=1.0,
    alpha=0.1,
    beta=0.1,  # schedule decay rate (ours: not given)
    gamma=0.5,  # schedule exponent (ours: not given)
    lambda_thermo=0.1,
    lambda_chaos=0.1,
    lambda_coherence=0.1,
    entropy_bins=256,
    chaos_batch=1,
    seed=0,
)


# ---- pure pieces -------------------------------------------------------------------------


def temperature(epoch: float, T0: float = 1.0, beta: float = 0.1, gamma: float = 0.5) -> float:
    """The paper's dimensionless schedule T = T0·(1 + β·epoch)^(−γ)."""
    return T0 * (1.0 + beta * epoch) ** (-gamma)


def iem(alpha, H, T, C):
    """Intelligence-emergence measure IEM = α·H·T·C (tensors or floats)."""
    return alpha * H * T * C


def landauer_e_min(H, T):
    """E_min = k_B·T·ln2·H as the paper writes it (T in kelvin would make it physical; T≈1 does not)."""
    return K_B * T * LN2 * H


def thermo_loss(E, H, T):
    """L_thermo = |E − E_min|."""
    return (E - landauer_e_min(H, T)).abs() if isinstance(E, Tensor) else abs(E - landauer_e_min(H, T))


def coherence(psi: Tensor, phi: Tensor, eps: float = 1e-12) -> Tensor:
    """|⟨ψ|φ⟩|² / (⟨ψ|ψ⟩⟨φ|φ⟩) along the last dimension (cos² for real vectors)."""
    inner = (psi.conj() * phi).sum(-1).abs() ** 2
    norms = (psi.abs() ** 2).sum(-1) * (phi.abs() ** 2).sum(-1)
    return inner / (norms + eps)


def sequence_coherence(hidden: Tensor) -> Tensor:
    """Mean coherence of consecutive positions: ψ = h_t, φ = h_{t+1}; hidden is [B, T, D]."""
    return coherence(hidden[:, :-1], hidden[:, 1:]).mean()


def coherence_loss(hidden: Tensor) -> Tensor:
    """‖R − I‖_F, R = correlation matrix of the hidden features (columns) over all tokens (rows)."""
    features = hidden.reshape(-1, hidden.shape[-1]).float()
    R = torch.nan_to_num(correlation(features.T))  # a constant feature has no correlation: 0, not NaN
    return torch.linalg.matrix_norm(R - torch.eye(R.shape[0], device=R.device, dtype=R.dtype))


def correlation(rows: Tensor) -> Tensor:
    """torch.corrcoef(rows) (variables in rows, observations in columns), step for step, without the
    host synchronisation torch.cov makes to warn about degrees of freedom ≤ 0 (it reads a tensor)."""
    centred = rows - rows.mean(1, keepdim=True)
    cov = centred @ centred.T / (rows.shape[1] - 1)
    std = cov.diagonal().sqrt()
    return (cov / std[:, None] / std[None, :]).clip(-1, 1)


def soft_histogram_entropy(values: Tensor, bins: int = 256) -> Tensor:
    """Entropy in bits of a linearly-interpolated histogram of `values`; differentiable in values."""
    return tensor_entropies([values], bins)[0]


def parameter_entropy(params: Iterable[Tensor], bins: int = 256, *, group_elements: int = GROUP_ELEMENTS) -> Tensor:
    """H(θ) in bits per parameter: element-weighted mean of per-tensor soft-histogram entropies.

    Tensors are binned in groups of about `group_elements` values (one concatenation each), which
    bounds the temporary memory on large models while keeping the op count per step small.
    """
    params = list(params)
    if not params:
        raise ValueError("parameter_entropy needs at least one parameter tensor")
    entropies = torch.cat([tensor_entropies(group, bins) for group in _groups(params, group_elements)])
    numels = torch.tensor([p.numel() for p in params], dtype=entropies.dtype).to(entropies.device, non_blocking=True)
    return (entropies * numels).sum() / sum(p.numel() for p in params)


def tensor_entropies(tensors: Sequence[Tensor], bins: int = 256) -> Tensor:
    """Soft-histogram entropy (bits) of each tensor over its own [min, max], all in one batch.

    The same definition as binning each tensor alone, written without any host synchronisation:
    no `.item()`, no branch on a tensor's value, no boolean indexing (each stalls a GPU until its
    queue drains). The tensors are concatenated; a segment id per value picks its tensor's min and
    max (kept on the device) and offsets its bins, so one pass fills every tensor's histogram.
    A tensor whose values are all equal (or that has one value) carries no information: 0 bits,
    and no gradient, as before.
    """
    x = torch.cat([t.reshape(-1) for t in tensors]).float()
    k = len(tensors)
    if bins < 2:
        return x.sum() * 0.0 + x.new_zeros(k)  # one bin holds everything: 0 bits, still in the graph
    layout = _layout(tuple(t.numel() for t in tensors), bins, x.device)
    flat = x.detach()
    lo = flat.new_full((k,), math.inf).scatter_reduce(0, layout.segment, flat, "amin")
    hi = flat.new_full((k,), -math.inf).scatter_reduce(0, layout.segment, flat, "amax")
    informative = hi > lo
    span = torch.where(informative, hi - lo, torch.ones_like(hi))  # 1 where constant: avoids 0/0
    u = (x - lo.index_select(0, layout.segment)) / span.index_select(0, layout.segment) * (bins - 1)
    left = u.detach().floor().clamp(0, bins - 2)  # u: the position in bin-centre units
    frac = u - left
    idx = left.long() + layout.first_bin  # the left bin centre in the batch's k × bins histogram
    # index_add, not scatter_add: its backward is an index_select, several times faster than a gather
    counts = x.new_zeros(k * bins).index_add(0, idx, 1.0 - frac).index_add(0, idx + 1, frac)
    p = counts.view(k, bins) / layout.sizes[:, None]
    occupied = p > 0  # empty bins add 0·log 0 = 0; log of 1 there keeps their gradient finite (0)
    plogp = torch.where(occupied, p * torch.log2(torch.where(occupied, p, torch.ones_like(p))), torch.zeros_like(p))
    return torch.where(informative, -plogp.sum(1), torch.zeros_like(hi))


class _Layout(NamedTuple):
    sizes: Tensor  # [k] values per tensor (float)
    segment: Tensor  # [n] which tensor each value belongs to
    first_bin: Tensor  # [n] segment · bins: where that tensor's histogram starts


@functools.lru_cache(maxsize=16)
def _layout(sizes: tuple[int, ...], bins: int, device: torch.device) -> _Layout:
    """The index tensors of a batch, built once per shape: a model's tensors keep their sizes, and
    building them every step costs more than the histogram of a small model. (Held for the
    process: 16 bytes a parameter value, about 2 GB for GPT-2 small, on its device.)"""
    counts = torch.tensor(sizes).to(device, non_blocking=True)
    segment = torch.repeat_interleave(torch.arange(len(sizes), device=device), counts, output_size=sum(sizes))
    return _Layout(counts.float(), segment, segment * bins)


def _groups(tensors: list[Tensor], limit: int) -> Iterator[list[Tensor]]:
    """Consecutive runs of tensors holding at most `limit` values (a larger tensor is its own group)."""
    group: list[Tensor] = []
    size = 0
    for t in tensors:
        if group and size + t.numel() > limit:
            yield group
            group, size = [], 0
        group.append(t)
        size += t.numel()
    if group:
        yield group


def lyapunov_from_jvp(
    maps: Sequence[Callable[[Tensor], Tensor]],
    z0: Tensor,
    v0: Tensor,
    *,
    points: Optional[Sequence[Tensor]] = None,
) -> tuple[Tensor, list[Tensor]]:
    """λ = (1/n)·Σ_i log(‖J_i v_i‖/‖v_i‖) through the maps z_{i+1} = f_i(z_i).

    Each J_i v_i is a forward-mode JVP (torch.func.jvp) at z_i; v is renormalised after each
    map. `points` gives the linearisation points z_i directly (e.g. a forward pass's hidden
    states); otherwise they are chained from z0. The result keeps the autograd graph.
    """
    v = v0 / v0.norm()
    z = z0
    logs: list[Tensor] = []
    for i, f in enumerate(maps):
        at = points[i] if points is not None else z
        z, jv = torch.func.jvp(f, (at,), (v,))
        growth = jv.norm()
        logs.append(torch.log(growth + 1e-30))
        v = jv / (growth + 1e-30)
    return torch.stack(logs).mean(), logs


# ---- model-level pieces ----------------------------------------------------------------------


def causal_mask(length: int, like: Tensor) -> Tensor:
    """Additive causal mask [1, 1, T, T]: a block called alone must still attend causally."""
    mask = torch.full((length, length), float("-inf"), device=like.device, dtype=like.dtype)
    return mask.triu(1)[None, None]


def block_lyapunov(model, hidden_states: Sequence[Tensor], *, n_sequences: int = 1, seed: int = 0) -> Tensor:
    """λ through GPT-2's transformer blocks, at the forward pass's own block inputs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    blocks = list(model.transformer.h)
    inputs = [h[:n_sequences] for h in hidden_states[: len(blocks)]]  # hidden_states[i] feeds block i
    mask = causal_mask(inputs[0].shape[1], inputs[0])
    maps = [lambda z, b=b: _block_output(b(z, attention_mask=mask)) for b in blocks]
    g = torch.Generator(device="cpu").manual_seed(seed)
    # Drawn on the CPU (the same tangent on every device); copied without waiting for the GPU.
    v0 = torch.randn(inputs[0].shape, generator=g, dtype=torch.float32)
    v0 = v0.to(inputs[0].device, non_blocking=True).to(inputs[0].dtype)
    # Fused CPU/GPU attention kernels have no forward-mode AD; the math kernel does.
    with sdpa_kernel(SDPBackend.MATH):
        lam, _ = lyapunov_from_jvp(maps, inputs[0], v0, points=inputs)
    return lam


def _block_output(out):
    return out[0] if isinstance(out, tuple) else out


class DeviceFloats(Mapping):
    """A step's loss components as floats, read from the device only when someone asks.

    The training loop keeps only the last step's components, so converting every term to a float
    on every step (one GPU→host synchronisation each) would stall the GPU for nothing.
    """

    def __init__(self, floats: dict[str, float], tensors: dict[str, Tensor]):
        self._floats = dict(floats)
        self._tensors = dict(tensors)

    def __getitem__(self, key: str) -> float:
        if key not in self._floats:
            self._floats[key] = float(self._tensors.pop(key))
        return self._floats[key]

    def __iter__(self):
        return iter([*self._floats, *self._tensors])

    def __len__(self) -> int:
        return len(self._floats) + len(self._tensors)


class PaperObjective:
    """The paper's L_task + λ1·L_thermo + λ2·L_chaos + λ3·L_coherence.

    `only="chaos"` (etc.) is an ablation arm: the task loss plus that one term, the other two
    neither computed nor added (the paper's ablation table).
    """

    name = "eitp-paper"
    # One full model forward (task loss and hidden states together); the chaos term then
    # re-runs every transformer block once more in forward mode (a JVP, ~2-3× a block pass)
    # on `chaos_batch` sequences. Backward goes through both.
    forward_passes_per_step = 1

    def __init__(self, config: dict | None = None, *, only: Optional[str] = None, name: Optional[str] = None):
        if only is not None and only not in TERMS:
            raise ValueError(f"unknown EIT-P term {only!r}; terms: {', '.join(TERMS)}")
        self.config = {**DEFAULTS, **(config or {})}
        self.terms = TERMS if only is None else (only,)
        self.name = name or self.name
        self.jvp_block_passes_per_step = 1 if "chaos" in self.terms else 0

    def temperature(self, epoch: float) -> float:
        c = self.config
        return temperature(epoch, c["T0"], c["beta"], c["gamma"])

    def loss(self, model, input_ids: Tensor, labels: Tensor, *, step: int, epoch: int):
        c = self.config
        out = model(input_ids, labels=labels, output_hidden_states=True)
        last = out.hidden_states[-1]
        total = out.loss
        parts: dict[str, Tensor] = dict(task=out.loss)
        components: dict[str, float] = {}
        if "thermo" in self.terms:
            T = self.temperature(epoch)
            H = parameter_entropy(model.parameters(), int(c["entropy_bins"]))
            C = sequence_coherence(last)
            E = iem(c["alpha"], H, T, C)
            thermo = thermo_loss(E, H, T)
            total = total + c["lambda_thermo"] * thermo
            parts.update(thermo=thermo, coherence_C=C, iem=E, entropy_bits=H)
            components["temperature"] = T
            parts["e_min"] = landauer_e_min(H, T)  # "joules" with T≈1: see module doc
        if "chaos" in self.terms:
            lam = block_lyapunov(
                model, out.hidden_states, n_sequences=int(c["chaos_batch"]), seed=int(c["seed"]) * 1_000_003 + step
            )
            chaos = lam**2
            total = total + c["lambda_chaos"] * chaos
            parts.update(chaos=chaos, lyapunov=lam)
        if "coherence" in self.terms:
            coh = coherence_loss(last)
            total = total + c["lambda_coherence"] * coh
            parts.update(coherence=coh)
        parts["total"] = total
        return total, DeviceFloats(components, {k: v.detach() for k, v in parts.items()})

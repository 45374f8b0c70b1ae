"""EIT-P's objective as the reference code really computes it (f21211/eitp-real-product).

Reproduces eit_p/training/eitp_trainer.py + eit_p/losses/total_loss.py, term by term:

    total = CE + path_norm + entropy + chaos + 0.1·coherence + 0.1·thermodynamic

with the weights hard-coded (config.yaml's loss_weights are never read). One step costs three
model forward passes: (1) the trainer's pass for hidden states, (2) a second full pass with labels
for CE, (3) a third pass inside the coherence term, under torch.no_grad().

- λ: DynamicHypernetwork (Linear → ReLU → Dropout(0.5) → Linear → Sigmoid, hidden 8, xavier
  init, config.yaml) on [clamp(std h,0,1), clamp(var h,0,10), mean_t h, std_t h, mean ‖h‖].
  Never trained (not in the optimizer), so λ ≈ 0.5. Gradients do flow through its input h.
- path-norm: scans nn.Linear/Conv1d/Conv2d only. GPT-2 blocks use transformers' Conv1D, so it
  sees only lm_head (tied to the 50257×768 embedding): λ·Σ‖row‖₁ + MSE(box-counting fractal
  dimension, 2.7) (no gradient: it binarises w≠0) − self-similarity (cos of w with its
  avg-pooled-then-bilinear-upsampled copy at scales 1, 2, 4).
- entropy: KNIFE with 10 fixed random Gaussian kernels (centres N(0, 0.1²), weights 1/10,
  bandwidth 1, unnormalised), H = −mean log(p + 1e-8); loss = H + MSE(H, 0). With GPT-2
  hidden-state norms the density underflows: H ≈ −log(1e-8) ≈ 18.4, constant, no gradient.
- chaos: λ̂ = clamp(mean_d std_t(h), −2, 2) (a std, not a Jacobian); MSE(λ̂, 0) + relu(|λ̂| − 0.1).
- coherence (third pass, no gradient): −cos(h_t, h_{t+1}) − mean max softmax + MSE(var_t(h), 1).
- thermodynamic: MSE(var(h)/FLOPs, 0.8) (FLOPs = Σ nn.Linear in·out: lm_head only, so the
  gradient is ~1e-7 of the others), 0.5·[MSE to 1 of constants params/1e9, memory/1e9,
  FLOPs/1e12] (no gradient), MSE(log var(h), −mean λ) (the only live part).

Approximations, stated: the reference only works at batch 1 (its [B,1] λ broadcasts against [B]
chaos terms); we average λ and the chaos terms over the batch, identical at batch 1. The
reference's training_step swallows exceptions and returns loss 0; we let errors raise.
Hypernetwork dropout draws from the objective's own seeded generator, not the global RNG.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# How the reference trains (config.yaml, examples/train_eitp.py, safe_train_gpu_optimized.py).
REFERENCE_DEFAULTS = dict(
    lr=5e-5,
    block_size=16,
    block_size_range=(16, 64),
    max_grad_norm=0.1,
    max_grad_norm_range=(0.1, 0.3),
    batch_size=1,
    gradient_accumulation_steps=16,
    gradient_accumulation_range=(8, 16),
    epochs=1,
    epochs_range=(1, 3),
    warmup_steps=10,
    precision="fp32",
    hypernetwork=dict(hidden_dim=8, num_layers=1, dropout=0.5),
)

LOSS_WEIGHTS = dict(ce=1.0, path_norm=1.0, entropy=1.0, chaos=1.0, coherence=0.1, thermodynamic=0.1)

# Loss settings only: the reference's lr (5e-5) and clipping (0.1) are training settings, which
# every arm shares through the suite's `train` section (train.lr, train.grad_clip).
DEFAULTS = dict(
    seed=0,
    hypernetwork_hidden=8,
    hypernetwork_dropout=0.5,
    knife_kernels=10,
    target_fractal_dim=2.7,
    chaos_threshold=0.1,
)

PATH_NORM_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)  # not transformers' Conv1D: as in the reference


# ---- path-norm regulariser (eit_p/regularization/path_norm.py) ----------------------------------


def path_norm_modules(model) -> list[tuple[str, nn.Module]]:
    """The modules the reference path-norm scans."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PATH_NORM_TYPES)]


def path_norm(weight: Tensor) -> Tensor:
    """Sum of row L1 norms."""
    return weight.reshape(weight.shape[0], -1).abs().sum()


def box_counting_dimension(weight: Tensor) -> Tensor:
    """Box-counting dimension of the non-zero pattern, clamped to [1, 3]; no gradient (binarised)."""
    w = weight.reshape(weight.shape[0], -1)
    binary = (w != 0).float()
    used, counts = [], []
    for scale in (1, 2, 4, 8, 16):
        if scale >= min(w.shape) or w.shape[0] // scale == 0 or w.shape[1] // scale == 0:
            continue
        pooled = F.avg_pool2d(binary[None, None], kernel_size=scale, stride=scale)
        counts.append((pooled > 0).sum().float())
        used.append(scale)
    if len(counts) < 2:
        return torch.tensor(1.0, device=w.device)
    x = torch.log(torch.tensor(used, dtype=torch.float32, device=w.device))
    y = torch.log(torch.stack(counts) + 1e-8)
    n = len(used)
    slope = (n * (x * y).sum() - x.sum() * y.sum()) / (n * (x**2).sum() - x.sum() ** 2)
    return torch.clamp(-slope, 1.0, 3.0)


def self_similarity(weight: Tensor) -> Tensor:
    """Mean cosine between w and its avg-pooled, bilinearly upsampled copy at scales 1, 2, 4."""
    w = weight.reshape(weight.shape[0], -1)
    h, wd = w.shape
    sims = []
    for scale in (1, 2, 4):
        if scale >= min(w.shape):
            continue
        pooled = F.avg_pool2d(w[None, None], kernel_size=scale, stride=scale)
        up = F.interpolate(pooled, size=(h, wd), mode="bilinear", align_corners=False)[0, 0]
        sims.append(F.cosine_similarity(w.flatten(), up.flatten(), dim=0))
    if not sims:
        return torch.tensor(0.0, device=w.device)
    return torch.stack(sims).mean()


def path_norm_loss(model, lam: Tensor, target_fractal_dim: float = 2.7) -> dict[str, Tensor]:
    modules = path_norm_modules(model)
    device = next(model.parameters()).device
    if not modules:
        zero = torch.zeros((), device=device)
        return dict(total=zero, path_norm=zero, fractal_dim=zero, self_similarity=zero)
    norms = torch.stack([path_norm(m.weight) for _, m in modules]).mean()
    dims = torch.stack([box_counting_dimension(m.weight) for _, m in modules]).mean()
    sims = torch.stack([self_similarity(m.weight) for _, m in modules]).mean()
    pn = lam * norms
    fd = F.mse_loss(dims, torch.tensor(target_fractal_dim, device=dims.device))
    return dict(total=pn + fd - sims, path_norm=pn, fractal_dim=dims, self_similarity=sims)


# ---- KNIFE entropy (eit_p/regularization/entropy.py) -------------------------------------------


def knife_entropy(x: Tensor, centers: Tensor, weights: Tensor, scales: Tensor) -> Tensor:
    """−mean log(Σ_k w_k·exp(−‖x − c_k‖²/(2 s_k²)) + 1e-8) over the rows of x."""
    dist_sq = torch.cdist(x.float(), centers.float()) ** 2  # [N, K]
    density = (weights * torch.exp(-dist_sq / (2 * scales**2))).sum(-1)
    return -torch.log(density + 1e-8).mean()


# ---- chaos (eit_p/regularization/chaos.py) --------------------------------------------------


def std_lyapunov_proxy(hidden: Tensor) -> Tensor:
    """The reference 'Lyapunov exponent': clamp(mean_d std_t(h), −2, 2), one per sequence."""
    return torch.clamp(hidden.std(dim=1).mean(dim=1), -2.0, 2.0)


def chaos_loss(lyap: Tensor, threshold: float = 0.1) -> Tensor:
    return (lyap**2).mean() + torch.relu(lyap.abs() - threshold).mean()


# ---- coherence (eit_p/losses/coherence_loss.py) ---------------------------------------------------


def coded_coherence(hidden: Tensor, logits: Tensor) -> Tensor:
    """−mean cos(h_t, h_{t+1}) − mean max softmax + MSE(var_t(h), 1)."""
    seq = -F.cosine_similarity(hidden[:, :-1], hidden[:, 1:], dim=-1).mean()
    pred = -F.softmax(logits.float(), dim=-1).max(dim=-1).values.mean()
    var = hidden.var(dim=1)
    return seq + pred + F.mse_loss(var, torch.ones_like(var))


# ---- thermodynamic (eit_p/losses/thermodynamic_loss.py) ------------------------------------------


def reference_flops(model) -> int:
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            total += m.in_features * m.out_features
        elif isinstance(m, nn.Conv2d):
            total += m.kernel_size[0] * m.kernel_size[1] * m.in_channels * m.out_channels
        elif isinstance(m, nn.MultiheadAttention):
            total += m.embed_dim * m.embed_dim
    return total


def thermodynamic_loss(model, hidden: Tensor, lam: Tensor) -> dict[str, Tensor]:
    flops = float(reference_flops(model))
    feature_var = hidden.reshape(-1, hidden.shape[-1]).var(dim=0).mean()
    energy = (feature_var / (flops + 1e-8) - 0.8) ** 2
    params = sum(p.numel() for p in model.parameters())
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    constants = (min(params / 1e9, 1.0), min(param_bytes * 1.5 / 1e9, 1.0), min(flops / 1e12, 1.0))
    hardware = torch.tensor(sum((c - 1.0) ** 2 for c in constants), device=hidden.device)
    balance = (torch.log(feature_var + 1e-8) + lam.mean()) ** 2  # MSE(log var, −mean λ)
    return dict(total=energy + 0.5 * hardware + balance, energy=energy, hardware=hardware, balance=balance)


# ---- the objective ---------------------------------------------------------------------------


class CodedObjective:
    """TotalLoss as eitp_trainer.EITPTrainer.compute_loss drives it."""

    name = "eitp-coded"
    forward_passes_per_step = 3

    def __init__(self, config: dict | None = None):
        self.config = {**DEFAULTS, **(config or {})}
        self._state = None  # KNIFE kernels and hypernetwork, built at the first step (need n_embd)

    def _build(self, dim: int, device) -> dict:
        c = self.config
        g = torch.Generator(device="cpu").manual_seed(int(c["seed"]))
        k, hidden, in_dim = int(c["knife_kernels"]), int(c["hypernetwork_hidden"]), 2 + 2 * dim + 1
        return dict(
            generator=g,
            centers=(torch.randn(k, dim, generator=g) * 0.1).to(device),
            weights=torch.full((k,), 1.0 / k, device=device),
            scales=torch.ones(k, device=device),
            w1=_xavier(hidden, in_dim, g).to(device),
            w2=_xavier(1, hidden, g).to(device),
        )

    def hypernetwork_lambda(self, hidden: Tensor) -> Tensor:
        """λ [B, 1] from the untrained sigmoid MLP (train mode: dropout active)."""
        s = self._state
        with torch.no_grad():
            lyap = torch.clamp(hidden.std(dim=(1, 2)), 0.0, 1.0)
            ent = torch.clamp(hidden.var(dim=(1, 2)), 0.0, 10.0)
        feats = torch.cat(
            [lyap[:, None], ent[:, None], hidden.mean(1), hidden.std(1), hidden.norm(dim=2).mean(1, keepdim=True)],
            dim=-1,
        ).float()
        z = torch.relu(feats @ s["w1"].T)
        p = float(self.config["hypernetwork_dropout"])
        if p > 0:
            keep = (torch.rand(z.shape, generator=s["generator"]) >= p).to(z.device, z.dtype)
            z = z * keep / (1.0 - p)
        return torch.sigmoid(z @ s["w2"].T)

    def loss(self, model, input_ids: Tensor, labels: Tensor, *, step: int, epoch: int):
        c = self.config
        # Pass 1: the trainer's own forward, for hidden states (no labels).
        hidden = model(input_ids, output_hidden_states=True).hidden_states[-1]
        if self._state is None:
            self._state = self._build(hidden.shape[-1], hidden.device)
        s = self._state
        lam = self.hypernetwork_lambda(hidden)
        # Pass 2: a second full forward, for cross-entropy.
        ce = model(input_ids, labels=labels).loss
        pn = path_norm_loss(model, lam.mean(), c["target_fractal_dim"])
        h_ent = knife_entropy(hidden.reshape(-1, hidden.shape[-1]), s["centers"], s["weights"], s["scales"])
        entropy = h_ent + h_ent**2  # beta·H + MSE(H, target 0)
        lyap = std_lyapunov_proxy(hidden)
        chaos = chaos_loss(lyap, c["chaos_threshold"])
        # Pass 3: inside the coherence term, without gradient.
        with torch.no_grad():
            out3 = model(input_ids, output_hidden_states=True)
            coherence = coded_coherence(out3.hidden_states[-1], out3.logits)
        thermo = thermodynamic_loss(model, hidden, lam)
        w = LOSS_WEIGHTS
        total = (
            w["ce"] * ce + w["path_norm"] * pn["total"] + w["entropy"] * entropy + w["chaos"] * chaos
            + w["coherence"] * coherence + w["thermodynamic"] * thermo["total"]
        )
        parts = dict(
            task=ce, path_norm=pn["total"], path_norm_l1=pn["path_norm"], fractal_dim=pn["fractal_dim"],
            self_similarity=pn["self_similarity"], entropy=entropy, knife_entropy=h_ent, chaos=chaos,
            lyapunov=lyap.mean(), coherence=coherence, thermo=thermo["total"], thermo_balance=thermo["balance"],
            hypernet_lambda=lam.mean(), total=total,
        )
        return total, {k: float(v.detach()) for k, v in parts.items()}


def _xavier(fan_out: int, fan_in: int, g: torch.Generator) -> Tensor:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return (torch.rand(fan_out, fan_in, generator=g) * 2 - 1) * bound

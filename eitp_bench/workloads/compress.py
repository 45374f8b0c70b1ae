"""Model compression, measured honestly: bytes on disk, not a parameter count.

- `serialized_bytes`: the size of torch.save(state_dict) on disk. Packed int8 weights are in
  it (EIT-P's quantization.py counts model.parameters(), which misses them). Pruned zeros are
  stored as zeros: unstructured pruning does not shrink a dense state_dict, and we say so.
- `quantize_int8_dynamic`: the control arm. HF GPT-2 blocks use transformers' Conv1D, which
  torch dynamic quantization does not know, so Conv1D is first converted to an equivalent
  nn.Linear (weight transposed; exact in fp32). lm_head is left in fp32 by default: it is tied
  to the token embedding, and a quantized copy would store the 50257×768 matrix twice.
  Dynamic-quantized models run on CPU only (torch's quantized kernels are CPU kernels).
- `compress_eitp`: EIT-P's claimed pipeline (its own pruning/distillation are stubs that return
  the model unchanged), really done: IEM-guided pruning → distillation → int8 quantization.
  The paper lists quantize → prune → distil; that order cannot be followed literally because
  dynamic-quantized modules hold packed int8 weights with no gradients, so nothing after
  quantization could be trained. We prune, distil (masks held), then quantize.

IEM-guided importance (our operationalisation): weight w_ij feeding input feature j scores
|w_ij| · ‖x_j‖₂ · H_j, where ‖x_j‖₂ is the feature's activation norm over the calibration tokens
and H_j its soft-histogram entropy in bits (the "H" of IEM = α·H·T·C): weights carrying
large, information-rich inputs are kept. The lowest `prune_amount` fraction is pruned per layer.
"""

from __future__ import annotations

import copy
import os
import tempfile
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eitp_bench.errors import UserError


def serialized_bytes(model: nn.Module) -> int:
    """Bytes of torch.save(model.state_dict()) to a file named model.pt (shared storage, e.g. tied
    weights, is stored once). The zip archive embeds the file's stem in every entry, so the name
    is fixed to make the figure reproducible."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.pt")
        torch.save(model.state_dict(), path)
        return os.path.getsize(path)


def conv1d_to_linear(model: nn.Module) -> nn.Module:
    """Replace every transformers Conv1D (y = x·W + b, W [in, out]) with nn.Linear in place."""
    from transformers.pytorch_utils import Conv1D

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                n_in, n_out = child.weight.shape
                linear = nn.Linear(n_in, n_out, device=child.weight.device, dtype=child.weight.dtype)
                with torch.no_grad():
                    linear.weight.copy_(child.weight.T)
                    linear.bias.copy_(child.bias)
                setattr(parent, name, linear)
    return model


def quantizable_linears(model: nn.Module, *, include_lm_head: bool = False) -> list[str]:
    return [
        n for n, m in model.named_modules()
        if isinstance(m, nn.Linear) and (include_lm_head or not n.endswith("lm_head"))
    ]


def quantize_int8_dynamic(model: nn.Module, *, include_lm_head: bool = False) -> nn.Module:
    """A CPU copy with Conv1D→Linear and int8 dynamic quantization of the Linear layers."""
    quantized = conv1d_to_linear(copy.deepcopy(model).cpu().float().eval())
    return _quantize(quantized, include_lm_head)


def _quantize(model: nn.Module, include_lm_head: bool) -> nn.Module:
    from torch.ao.quantization import quantize_dynamic

    names = set(quantizable_linears(model, include_lm_head=include_lm_head))
    if not names:
        raise UserError("the model has no Linear layers to quantize", fix="pass a GPT-2 style model")
    import warnings

    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice: not the user's to fix
        warnings.simplefilter("ignore")
        return quantize_dynamic(model.cpu().eval(), qconfig_spec=names, dtype=torch.qint8)


# ---- IEM-guided pruning ----------------------------------------------------------------------


def _feature_entropy_bits(x: Tensor, bins: int = 64) -> Tensor:
    """Per-column hard-histogram entropy in bits of x [N, D] (bins over each column's range)."""
    lo, hi = x.min(0).values, x.max(0).values
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    idx = ((x - lo) / span * bins).long().clamp(0, bins - 1)  # [N, D]
    counts = torch.zeros(bins, x.shape[1], device=x.device).scatter_add_(0, idx, torch.ones_like(x))
    p = counts / x.shape[0]
    return -(p * torch.log2(p.clamp_min(1e-30))).sum(0)


@torch.no_grad()
def iem_importance(model: nn.Module, names: list[str], calib_batches: list[Tensor]) -> dict[str, Tensor]:
    """|w_ij|·‖x_j‖₂·H_j for each named Linear, from its inputs on the calibration batches."""
    inputs: dict[str, list[Tensor]] = {n: [] for n in names}
    modules = dict(model.named_modules())
    hooks = [
        modules[n].register_forward_hook(lambda m, args, out, n=n: inputs[n].append(args[0].reshape(-1, args[0].shape[-1]).float()))
        for n in names
    ]
    try:
        for batch in calib_batches:
            model(batch.to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    scores = {}
    for n in names:
        x = torch.cat(inputs[n])
        feature = x.norm(dim=0) * _feature_entropy_bits(x)  # [in]
        scores[n] = modules[n].weight.abs() * feature[None, :]
    return scores


def iem_prune(model: nn.Module, calib_batches: list[Tensor], amount: float, names: list[str]) -> None:
    """Attach torch.nn.utils.prune masks removing the `amount` lowest-importance weights per layer."""
    import torch.nn.utils.prune as prune

    scores = iem_importance(model, names, calib_batches)
    modules = dict(model.named_modules())
    for n in names:
        s = scores[n].flatten()
        k = int(round(amount * s.numel()))
        mask = torch.ones_like(s)
        if k > 0:
            mask[torch.topk(s, k, largest=False).indices] = 0.0
        prune.custom_from_mask(modules[n], "weight", mask.view_as(scores[n]))


def distill(student: nn.Module, teacher: nn.Module, calib_batches: list[Tensor], *, steps: int, lr: float,
            temperature: float = 2.0) -> list[float]:
    """KL(teacher ‖ student) on temperature-softened logits, T² scaled; returns the loss per step."""
    teacher.eval()
    student.train()
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=lr)
    device = next(student.parameters()).device
    losses = []
    for step in range(steps):
        batch = calib_batches[step % len(calib_batches)].to(device)
        with torch.no_grad():
            target = F.log_softmax(teacher(batch).logits.float() / temperature, dim=-1)
        logp = F.log_softmax(student(batch).logits.float() / temperature, dim=-1)
        loss = F.kl_div(logp.flatten(0, 1), target.flatten(0, 1), log_target=True, reduction="batchmean")
        loss = loss * temperature**2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    student.eval()
    return losses


def compress_eitp(
    model: nn.Module,
    *,
    calib_batches: Iterable[Tensor],
    teacher: nn.Module | None = None,
    prune_amount: float = 0.3,
    distill_steps: int = 20,
    lr: float = 1e-4,
    seed: int = 0,
    temperature: float = 2.0,
    include_lm_head: bool = False,
) -> nn.Module:
    """IEM-guided prune → distil from the uncompressed teacher → int8 dynamic quantization (CPU)."""
    import torch.nn.utils.prune as prune

    batches = list(calib_batches)
    if not batches:
        raise UserError("compress_eitp needs calibration batches", fix="pass a few batches of input ids")
    if not 0.0 <= prune_amount < 1.0:
        raise UserError(f"prune_amount {prune_amount} is outside [0, 1)", fix="use e.g. 0.3 (30 % of weights)")
    torch.manual_seed(seed)
    teacher = teacher if teacher is not None else model
    student = conv1d_to_linear(copy.deepcopy(model).float().eval())
    names = quantizable_linears(student, include_lm_head=include_lm_head)
    iem_prune(student, batches, prune_amount, names)
    if distill_steps > 0:
        distill(student, teacher, batches, steps=distill_steps, lr=lr, temperature=temperature)
    modules = dict(student.named_modules())
    for n in names:  # make pruning permanent: weight = weight_orig·mask, hooks removed
        prune.remove(modules[n], "weight")
    student.eitp_compression = dict(  # what was done, for the record
        prune_amount=prune_amount, distill_steps=distill_steps, lr=lr, order="prune→distil→quantize",
        sparsity=linear_sparsity(student, names),
    )
    info = student.eitp_compression
    quantized = _quantize(student, include_lm_head)
    quantized.eitp_compression = info
    return quantized


def linear_sparsity(model: nn.Module, names: list[str]) -> float:
    """Fraction of exactly-zero weights over the named Linear layers."""
    modules = dict(model.named_modules())
    zeros = sum(int((modules[n].weight == 0).sum()) for n in names)
    total = sum(modules[n].weight.numel() for n in names)
    return zeros / total if total else 0.0


def compression_report(original: nn.Module, compressed: nn.Module, eval_fn: Callable[[nn.Module], float]) -> dict:
    """Sizes on disk, their ratio, and quality before/after (eval_fn(model) -> e.g. perplexity)."""
    original_bytes = serialized_bytes(original)
    compressed_bytes = serialized_bytes(compressed)
    with torch.no_grad():
        before, after = float(eval_fn(original)), float(eval_fn(compressed))
    return dict(
        original_bytes=original_bytes,
        compressed_bytes=compressed_bytes,
        size_ratio=compressed_bytes / original_bytes,  # the paper claims 0.24
        compression_factor=original_bytes / compressed_bytes,  # the paper claims 4.2
        quality_before=before,
        quality_after=after,
        quality_change=(after - before) / before if before else None,  # relative; + is worse for perplexity
        size_method="torch.save(state_dict) bytes on disk; pruned zeros are stored densely",
        **({"pipeline": compressed.eitp_compression} if hasattr(compressed, "eitp_compression") else {}),
    )

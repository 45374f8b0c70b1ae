"""Model compression, measured honestly: the bytes of the file you would ship, not a parameter count.

What is stored (`pack` / `save_packed`, format "eitp-bench-packed/1", a torch.save'd dict that
`torch.load(weights_only=True)` reads):

- Every tensor of the runnable model's state_dict, once (tensors sharing storage, e.g. a tied
  embedding / lm_head in fp32, become one entry plus a reference).
- Dynamic-int8 Linear weights as their int8 values + per-tensor scale and zero point (not torch's
  pickled quantized tensor), biases fp32.
- Sparse storage of what pruning removes: a matrix (≥ 2-D, fp32 or int8) is stored as a packed
  bitmask of its non-zeros (1 bit per element, numpy.packbits) plus the kept values, whenever that
  is smaller than the dense form: for n elements of b bytes with z zeros the masked form costs
  n/8 + (n − z)·b bytes against n·b, so it wins once z/n > 1/(8b) (12.5 % of an int8 matrix,
  3.1 % of an fp32 one). A 50 %-pruned int8 matrix takes n/8 + n/2 = 0.625 n bytes instead of n.
  We chose a bitmask over CSR: CSR's int16 column index alone costs 2 bytes per kept int8 value,
  more than the dense matrix below ~67 % sparsity; the bitmask costs 1/8 byte per element at any
  sparsity. The rule is the same for every arm, so an unpruned model simply stays dense.
- The tied token embedding (wte, shared by lm_head) as per-row symmetric int8 + one fp32 scale per
  row (`Int8Embedding`: V·D + 4·V bytes, stored once), in BOTH compressed pipelines: EIT-P's and
  the INT8 control, so the size ratio compares methods, not the vocabulary. The position embedding,
  LayerNorms and biases stay fp32 (≈ 3.5 MB of GPT-2 small's ≈ 500 MB).

`serialized_bytes(model)` is the size of that file on disk. What runs is a separate, dense module
(torch has no sparse int8 CPU kernels, so pruned zeros are multiplied like any other weight):
`load_packed` rebuilds it from the file alone (bitmasks expanded, int8 re-packed), and the tests
check that the rebuilt model gives bit-identical logits, so the size is that of a complete artefact.
The runnable output projection (`Int8TiedHead`) also keeps fbgemm's prepacked copy of the embedding
in memory for speed; it is rebuilt on load and never stored.

- `quantize_int8_dynamic`: the control arm. HF GPT-2 blocks use transformers' Conv1D, which
  torch dynamic quantization does not know, so Conv1D is first converted to an equivalent
  nn.Linear (weight transposed; exact in fp32). The block Linears get per-tensor int8 dynamic
  quantization; the tied embedding becomes `Int8Embedding` + `Int8TiedHead`, which computes the
  logits with the same int8 rows through torch's dynamic int8 linear kernel. Dynamic-quantized
  models run on CPU only (torch's quantized kernels are CPU kernels).
- `compress_eitp`: EIT-P's claimed pipeline (its own pruning/distillation are stubs that return
  the model unchanged), really done: IEM-guided pruning → distillation → int8 quantization (the
  same quantization as the control, tied embedding included).
  The paper lists quantize → prune → distil; that order cannot be followed literally because
  dynamic-quantized modules hold packed int8 weights with no gradients, so nothing after
  quantization could be trained. We prune, distil (masks held), then quantize. The embedding is
  not pruned (EIT-P prunes its Linear layers).

IEM-guided importance (our operationalisation): weight w_ij feeding input feature j scores
|w_ij| · ‖x_j‖₂ · H_j, where ‖x_j‖₂ is the feature's activation norm over the calibration tokens
and H_j its soft-histogram entropy in bits (the "H" of IEM = α·H·T·C): weights carrying
large, information-rich inputs are kept. The lowest `prune_amount` fraction is pruned per layer.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eitp_bench.errors import UserError

PACKED_FORMAT = "eitp-bench-packed/1"
PACKED_PARAMS = "_packed_params._packed_params"  # a dynamic-quantized Linear's (qweight, bias) entry


# ---- int8 tied embedding ---------------------------------------------------------------------


class Int8Embedding(nn.Module):
    """Token embedding as per-row symmetric int8 (`qweight`, [V, D]) and fp32 `scale` ([V]).

    Row r is q_r · scale_r with scale_r = max|w_r| / 127 and q_r = round(w_r / scale_r) ∈ [−127, 127],
    so every element is within scale_r / 2 of the fp32 weight. Lookups dequantize on the fly.
    """

    def __init__(self, qweight: Tensor, scale: Tensor):
        super().__init__()
        self.register_buffer("qweight", qweight)
        self.register_buffer("scale", scale)

    @classmethod
    def from_float(cls, weight: Tensor) -> "Int8Embedding":
        w = weight.detach().float().cpu()
        amax = w.abs().amax(dim=1)
        scale = torch.where(amax > 0, amax / 127.0, torch.ones_like(amax))  # an all-zero row: any scale
        q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8)
        return cls(q, scale)

    @property
    def num_embeddings(self) -> int:
        return self.qweight.shape[0]

    @property
    def embedding_dim(self) -> int:
        return self.qweight.shape[1]

    def dequantize(self) -> Tensor:
        return self.qweight.float() * self.scale[:, None]

    def forward(self, ids: Tensor) -> Tensor:
        return self.qweight[ids].float() * self.scale[ids].unsqueeze(-1)


class Int8TiedHead(nn.Module):
    """The output projection tied to an `Int8Embedding`: logits = x · (q · scale)ᵀ.

    It runs torch's dynamic int8 linear kernel on the embedding's own int8 rows (per-row scales =
    per-output-channel scales), exactly as the block Linears run. The embedding is referenced, not
    registered, so its bytes appear once in the state_dict; the prepacked kernel copy is a cache,
    rebuilt when the embedding's int8 values change (e.g. after load_state_dict).
    """

    def __init__(self, embedding: Int8Embedding):
        super().__init__()
        object.__setattr__(self, "embedding", embedding)  # not a submodule: stored once, under wte
        self._packed: Any = None
        self._packed_key: Any = None

    def _prepacked(self):
        e = self.embedding
        key = (e.qweight.data_ptr(), e.qweight._version, e.scale.data_ptr(), e.scale._version)
        if self._packed_key != key:
            with warnings.catch_warnings():  # torch's deprecation notice for quantized tensors
                warnings.simplefilter("ignore")
                qw = torch._make_per_channel_quantized_tensor(
                    e.qweight, e.scale.double(), torch.zeros(e.num_embeddings, dtype=torch.long), 0
                )
                self._packed = torch.ops.quantized.linear_prepack(qw, None)
            self._packed_key = key
        return self._packed

    def forward(self, x: Tensor) -> Tensor:
        # reduce_range=True as torch's dynamic Linear does on x86: avoids int16 saturation in fbgemm.
        return torch.ops.quantized.linear_dynamic(x.float(), self._prepacked(), reduce_range=True).to(x.dtype)


def _tied(model: nn.Module) -> bool:
    head = model.get_output_embeddings()
    emb = model.get_input_embeddings()
    return isinstance(head, nn.Module) and getattr(head, "weight", None) is not None and head.weight is emb.weight


def int8_embedding(model: nn.Module) -> nn.Module:
    """Replace the token embedding with `Int8Embedding` in place; a tied lm_head becomes `Int8TiedHead`.

    An untied lm_head is left a Linear (the caller quantizes it with the other Linears)."""
    if not hasattr(model, "get_input_embeddings") or not isinstance(model.get_input_embeddings(), nn.Embedding):
        return model  # nothing to do (e.g. a bare stack of Linears)
    tied = _tied(model)
    q = Int8Embedding.from_float(model.get_input_embeddings().weight)
    model.set_input_embeddings(q)
    if tied:
        model.lm_head = Int8TiedHead(q)
    return model


# ---- quantization ----------------------------------------------------------------------------


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


def quantize_int8_dynamic(model: nn.Module) -> nn.Module:
    """A CPU copy: Conv1D→Linear, int8 dynamic quantization of the Linears, int8 tied embedding."""
    quantized = conv1d_to_linear(copy.deepcopy(model).cpu().float().eval())
    return _quantize(quantized)


def _quantize(model: nn.Module) -> nn.Module:
    """Int8 tied embedding, then int8 dynamic quantization of every remaining Linear (a new module)."""
    from torch.ao.quantization import quantize_dynamic

    model = int8_embedding(model.cpu().eval())
    names = set(quantizable_linears(model, include_lm_head=True))  # a tied lm_head is no longer a Linear
    if not names:
        raise UserError("the model has no Linear layers to quantize", fix="pass a GPT-2 style model")
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice: not the user's to fix
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, qconfig_spec=names, dtype=torch.qint8)


# ---- the shipped artefact: packed, sparse where pruning removed weights ----------------------


def _maybe_masked(t: Tensor) -> Tensor | dict:
    """Dense, or {mask, values, shape} when the bitmask form is smaller (see the module docstring)."""
    if t.dim() < 2 or t.is_quantized:
        return t
    n, b = t.numel(), t.element_size()
    nonzero = t != 0
    kept = int(nonzero.sum())
    if (n + 7) // 8 + kept * b >= n * b:
        return t
    bits = np.packbits(nonzero.reshape(-1).cpu().numpy())
    values = t.reshape(-1)[nonzero.reshape(-1)].clone()
    return {"shape": list(t.shape), "mask": torch.from_numpy(bits), "values": values}


def _unmasked(entry: Tensor | dict) -> Tensor:
    if isinstance(entry, Tensor):
        return entry
    shape = entry["shape"]
    n = int(np.prod(shape))
    nonzero = torch.from_numpy(np.unpackbits(entry["mask"].numpy(), count=n).astype(bool))
    out = torch.zeros(n, dtype=entry["values"].dtype)
    out[nonzero] = entry["values"]
    return out.reshape(shape)


def _structure(model: nn.Module) -> dict:
    """How to rebuild the runnable module around the stored tensors."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from transformers.pytorch_utils import Conv1D

    modules = list(model.named_modules())
    return {
        "conv1d_as_linear": not any(isinstance(m, Conv1D) for _, m in modules),
        "int8_embedding": any(isinstance(m, Int8Embedding) for _, m in modules),
        "int8_linears": sorted(n for n, m in modules if isinstance(m, QLinear)),
    }


def pack(model: nn.Module) -> dict:
    """The compressed artefact as a plain dict of tensors (what `save_packed` writes)."""
    state: dict[str, Any] = {}
    seen: dict[tuple, str] = {}  # storage → first key holding it: shared tensors are stored once
    sd = model.state_dict()
    for key, value in sd.items():
        if isinstance(value, Tensor) and not value.is_quantized:
            ident = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), value.dtype)
            if ident in seen:
                state[key] = {"same_as": seen[ident]}
                continue
            seen[ident] = key
            state[key] = _maybe_masked(value.detach().cpu())
        elif key.endswith(PACKED_PARAMS):
            qweight, bias = value
            if qweight.qscheme() not in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                raise ValueError(f"{key}: only per-tensor int8 weights are packed, not {qweight.qscheme()}")
            state[key] = {
                "int8": _maybe_masked(qweight.int_repr()),
                "scale": float(qweight.q_scale()),
                "zero_point": int(qweight.q_zero_point()),
                "bias": None if bias is None else bias.detach().cpu(),
            }
        else:
            state[key] = value  # e.g. a quantized Linear's dtype entry (torch.qint8)
    config = getattr(model, "config", None)
    return {
        "format": PACKED_FORMAT,
        "config": config.to_dict() if config is not None else None,
        "attn_implementation": getattr(config, "_attn_implementation", None),
        "structure": _structure(model),
        # per-module state_dict versions: quantized Linears read their entries by version on load
        "versions": {k: dict(v) for k, v in getattr(sd, "_metadata", {}).items()},
        "state": state,
    }


def unpack_state_dict(packed: dict) -> dict[str, Any]:
    """The runnable module's state_dict from a packed artefact (bitmasks expanded, int8 re-quantized)."""
    if not isinstance(packed, dict) or packed.get("format") != PACKED_FORMAT:
        raise UserError("not an eitp-bench packed model", fix=f"give a file written by save_packed ({PACKED_FORMAT})")
    from collections import OrderedDict

    out: dict[str, Any] = OrderedDict()
    out._metadata = OrderedDict(packed.get("versions", {}))  # type: ignore[attr-defined]
    for key, entry in packed["state"].items():
        if isinstance(entry, dict) and "same_as" in entry:
            continue
        if isinstance(entry, dict) and "int8" in entry:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q = torch._make_per_tensor_quantized_tensor(
                    _unmasked(entry["int8"]), entry["scale"], entry["zero_point"]
                )
            out[key] = (q, entry["bias"])
        else:
            out[key] = _unmasked(entry) if isinstance(entry, (Tensor, dict)) else entry
    for key, entry in packed["state"].items():
        if isinstance(entry, dict) and "same_as" in entry:
            out[key] = out[entry["same_as"]]
    return out


def save_packed(model: nn.Module, path: str | os.PathLike) -> int:
    """Write the packed artefact to `path`; returns its size in bytes."""
    torch.save(pack(model), path)
    return os.path.getsize(path)


def load_packed(path_or_packed: str | os.PathLike | dict) -> nn.Module:
    """Rebuild the runnable model from a packed artefact alone (config, structure and tensors)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    packed = path_or_packed if isinstance(path_or_packed, dict) else torch.load(path_or_packed, weights_only=True)
    state = unpack_state_dict(packed)
    if packed.get("config") is None:
        raise UserError("this packed artefact has no model config", fix="pack a transformers model (it has .config)")
    cfg = dict(packed["config"])
    config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    if packed.get("attn_implementation"):
        config._attn_implementation = packed["attn_implementation"]
    model = AutoModelForCausalLM.from_config(config).eval()
    s = packed["structure"]
    if s["conv1d_as_linear"]:
        conv1d_to_linear(model)
    if s["int8_embedding"]:
        int8_embedding(model)
    if s["int8_linears"]:
        from torch.ao.quantization import quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = quantize_dynamic(model, qconfig_spec=set(s["int8_linears"]), dtype=torch.qint8, inplace=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


def serialized_bytes(model: nn.Module) -> int:
    """Bytes on disk of the packed artefact (`save_packed`) in a file named model.pt. The zip archive
    embeds the file's stem in every entry, so the name is fixed to make the figure reproducible."""
    with tempfile.TemporaryDirectory() as folder:
        return save_packed(model, os.path.join(folder, "model.pt"))


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
            temperature: float = 2.0, precision: str = "fp32") -> list[float]:
    """KL(teacher ‖ student) on temperature-softened logits, T² scaled; returns the loss per step. Runs where
    the student is, its forward passes under `precision` (workloads/precision.py)."""
    from eitp_bench.workloads.precision import autocast

    teacher_was_training = teacher.training  # the teacher may be the task's trained model: leave its mode
    teacher.eval()
    student.train()
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=lr)
    device = next(student.parameters()).device
    losses = []
    for step in range(steps):
        batch = calib_batches[step % len(calib_batches)].to(device)
        with torch.no_grad(), autocast(device, precision):
            teacher_logits = teacher(batch).logits
        target = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
        with autocast(device, precision):
            student_logits = student(batch).logits
        logp = F.log_softmax(student_logits.float() / temperature, dim=-1)
        loss = F.kl_div(logp.flatten(0, 1), target.flatten(0, 1), log_target=True, reduction="batchmean")
        loss = loss * temperature**2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    student.eval()
    teacher.train(teacher_was_training)
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
    precision: str = "fp32",
) -> nn.Module:
    """IEM-guided prune → distil from the uncompressed teacher → int8 quantization (CPU), as the control.

    Pruning and distillation run where `model` is (the suite's GPU when it has one; `model` itself is left
    unchanged and is the teacher), the distillation's forward passes under `precision`; the student then
    moves to CPU for the int8 quantization, whose kernels are CPU-only."""
    import torch.nn.utils.prune as prune

    batches = list(calib_batches)
    if not batches:
        raise UserError("compress_eitp needs calibration batches", fix="pass a few batches of input ids")
    if not 0.0 <= prune_amount < 1.0:
        raise UserError(f"prune_amount {prune_amount} is outside [0, 1)", fix="use e.g. 0.3 (30 % of weights)")
    torch.manual_seed(seed)
    teacher = teacher if teacher is not None else model
    student = conv1d_to_linear(copy.deepcopy(model).float().eval())
    names = quantizable_linears(student)  # the blocks' Linears: lm_head is the tied embedding
    iem_prune(student, batches, prune_amount, names)
    if distill_steps > 0:
        distill(student, teacher, batches, steps=distill_steps, lr=lr, temperature=temperature, precision=precision)
    modules = dict(student.named_modules())
    for n in names:  # make pruning permanent: weight = weight_orig·mask, hooks removed
        prune.remove(modules[n], "weight")
    device = next(student.parameters()).device
    student = student.to("cpu")
    student.eitp_compression = dict(  # what was done, for the record
        prune_amount=prune_amount, distill_steps=distill_steps, lr=lr, order="prune→distil→quantize",
        sparsity=linear_sparsity(student, names), distill_device=device.type, distill_precision=precision,
    )
    info = student.eitp_compression
    quantized = _quantize(student)
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
        size_method=f"bytes on disk of the packed artefact ({PACKED_FORMAT}): int8 tied embedding,"
                    " bitmask + kept values for pruned matrices",
        **({"pipeline": compressed.eitp_compression} if hasattr(compressed, "eitp_compression") else {}),
    )

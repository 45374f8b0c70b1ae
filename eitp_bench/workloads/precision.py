"""The numeric regime of a suite, applied alike to training, evaluation and generation, and recorded.

`train.precision` (the suite's one precision setting, the same for every arm):
- "fp32": strict fp32; TF32 is switched off for matmuls and convolutions, so an fp32 run means fp32.
- "bf16" / "fp16": torch.autocast to that dtype around every forward pass of the suite's device (training,
  the evaluations inside and after training, retrieval scoring, generation), TF32 allowed for what autocast
  leaves in fp32. fp16 training adds a gradient scaler (train.py).
Work that runs elsewhere keeps its own regime and says so: int8 dynamic quantisation and the compression
quality evaluation run on CPU in fp32 (compress.py, tasks.compress_task).

`observe(model, seen, phase)` records the dtype of the model's output logits while it runs, so every record
says what precision its task actually computed in (`precision_record`, provenance.hardware.precision).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
AUTOCAST_PHASES = ("train", "eval", "generate", "distill")  # the forward passes on the suite's device


def autocast_dtype(precision: str) -> Optional[torch.dtype]:
    return AUTOCAST_DTYPES.get(precision)


def autocast(device, precision: str):
    """torch.autocast for the suite's precision on `device` (a no-op context for fp32)."""
    dtype = autocast_dtype(precision)
    return torch.autocast(torch.device(device).type, dtype=dtype, enabled=dtype is not None)


def set_tf32(device, precision: str) -> bool:
    """Allow TF32 on CUDA for the mixed-precision regimes, forbid it for strict fp32; returns what is set."""
    allowed = precision in AUTOCAST_DTYPES and torch.device(device).type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = allowed
    torch.backends.cudnn.allow_tf32 = allowed
    return allowed


@contextmanager
def observe(model, seen: Optional[dict], phase: str):
    """Record in seen[phase] the dtypes of the logits `model` produces inside the block (a forward hook on its
    output layer); does nothing when `seen` is None or the model has no output layer."""
    head = model.get_output_embeddings() if seen is not None and hasattr(model, "get_output_embeddings") else None
    if head is None:
        yield
        return
    dtypes = seen.setdefault(phase, [])

    def hook(module, args, out):
        name = str(out.dtype).removeprefix("torch.") if isinstance(out, torch.Tensor) else type(out).__name__
        if name not in dtypes:
            dtypes.append(name)

    handle = head.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def precision_record(precision: str, device, seen: dict) -> dict:
    """What a record states about its numerics: the suite's setting, autocast and TF32 as applied on the suite's
    device, and the logits dtypes observed per phase of this task (e.g. {"train": ["bfloat16"]})."""
    on = torch.device(device).type
    dtype = autocast_dtype(precision)
    return {
        "setting": precision,
        "autocast": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "device": on,
        "tf32": bool(torch.backends.cuda.matmul.allow_tf32) if on == "cuda" else False,
        # where the autocast applies; the CPU int8 work, compression quality and theory tasks run in fp32
        "applies_to": list(AUTOCAST_PHASES),
        "observed": {phase: list(d) for phase, d in seen.items()},
    }

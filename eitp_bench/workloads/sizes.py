"""Model shapes, free of torch: the fresh sizes a suite names, and the published GPT-2 checkpoints.

`workloads/models.py` builds models from `SIZES`; the cost model (eitp_bench/analysis/cost_model.py) prices a
suite from the same shapes before torch is imported. `PUBLISHED_GPT2` holds the configs of the
published GPT-2 checkpoints (their config.json on the Hugging Face hub: n_layer, n_embd, n_head,
vocab_size 50257, n_positions 1024), used only to price a plan when the checkpoint is not cached here.
"""

from __future__ import annotations

SIZES = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=64),
    "small": dict(n_layer=12, n_head=12, n_embd=768),  # GPT-2 124M
    "medium": dict(n_layer=24, n_head=16, n_embd=1024),  # GPT-2 355M
}

_GPT2_VOCAB, _GPT2_POSITIONS = 50257, 1024
PUBLISHED_GPT2 = {
    name: dict(n_layer=layers, n_head=heads, n_embd=width, vocab_size=_GPT2_VOCAB, n_positions=_GPT2_POSITIONS)
    for names_, layers, heads, width in (
        (("gpt2", "openai-community/gpt2"), 12, 12, 768),
        (("gpt2-medium", "openai-community/gpt2-medium"), 24, 16, 1024),
        (("gpt2-large", "openai-community/gpt2-large"), 36, 20, 1280),
        (("gpt2-xl", "openai-community/gpt2-xl"), 48, 25, 1600),
    )
    for name in names_
}


def gpt2_parameters(n_layer: int, n_embd: int, vocab_size: int, n_positions: int) -> int:
    """Distinct parameters of a GPT2LMHeadModel (lm_head tied to the token embedding): embeddings, per block
    two LayerNorms, attention (4·d² + 4·d) and MLP (8·d² + 5·d), and the final LayerNorm."""
    d = n_embd
    per_block = 12 * d * d + 13 * d
    return vocab_size * d + n_positions * d + n_layer * per_block + 2 * d

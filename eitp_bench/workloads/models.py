"""GPT-2 family models for every arm: built from a config, or loaded from local disk only.

Never downloads: `pretrained` is a local directory, or a hub id already in the local
Hugging Face cache (`eitp-bench prepare` puts it there; loaded with local_files_only=True).
"""

from __future__ import annotations

import torch

from eitp_bench.errors import UserError

from eitp_bench.workloads.sizes import SIZES  # noqa: F401  (models.SIZES, as before; torch-free there)

ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


def build_model(
    size: str,
    *,
    vocab_size: int,
    n_positions: int,
    seed: int,
    pretrained: str | None = None,
    attn_implementation: str = "sdpa",
    dropout: float = 0.0,
    revision: str | None = None,
):
    """A GPT2LMHeadModel: fresh from SIZES[size] (seeded), or `pretrained` from local files
    (a hub id at `revision`, a commit hash; None: whatever the cache holds)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise UserError(
            f"attn_implementation {attn_implementation!r} is not supported",
            fix=f"use one of {', '.join(ATTN_IMPLEMENTATIONS)}",
        )
    torch.manual_seed(seed)
    if pretrained:
        return _load_pretrained(pretrained, vocab_size, n_positions, attn_implementation, dropout, revision)
    if size not in SIZES:
        raise UserError(
            f"unknown model size {size!r}",
            fix=f"use one of {', '.join(SIZES)} (or give `pretrained:` a local model directory)",
        )
    # GPT-2's bos/eos id 50256 does not exist in a small test vocabulary: use the last id there.
    special = min(50256, vocab_size - 1)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=special,
        eos_token_id=special,
        **SIZES[size],
    )
    config._attn_implementation = attn_implementation
    return GPT2LMHeadModel(config)


def _load_pretrained(
    name: str, vocab_size: int, n_positions: int, attn_implementation: str, dropout: float, revision: str | None = None
):
    from transformers import GPT2LMHeadModel

    from eitp_bench.workloads.assets import cached_snapshot, hub_cache_dir, is_hub_id, model_asset

    overrides = dict(resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
    source = name
    if is_hub_id(name):
        # The snapshot folder itself: the revision the run records (resolved_inputs) is the one loaded,
        # and a cache filled under openai-community/gpt2 serves gpt2.
        snap = cached_snapshot(model_asset(name, revision=revision))
        source = str(snap) if snap is not None else name
    try:
        # local_files_only: a run never downloads. cache_dir is read from the environment now,
        # because huggingface_hub fixes its default when it is first imported.
        model = GPT2LMHeadModel.from_pretrained(
            source, local_files_only=True, cache_dir=str(hub_cache_dir()), attn_implementation=attn_implementation,
            **overrides,
        )
    except (OSError, ValueError) as err:
        if is_hub_id(name):
            where = f"the local Hugging Face cache ({hub_cache_dir()})" + (f" at revision {revision}" if revision else "")
            fix = f"run `eitp-bench prepare --model {name}` (on a connected machine, then copy the cache here); a run never downloads"
        else:
            where = "a local directory"
            fix = "give a directory with config.json and model weights (save_pretrained)"
        raise UserError(f"cannot load pretrained model {name!r} from {where}: {str(err).splitlines()[0]}", fix=fix) from err
    if model.config.vocab_size != vocab_size:
        raise UserError(
            f"pretrained model {name!r} has vocab_size {model.config.vocab_size}, the data has {vocab_size}",
            fix="use the tokenizer that belongs to the pretrained model (data.tokenizer: gpt2 for gpt2); "
            "or the synthetic regime, which trains fresh weights: --set data.kind=markov",
        )
    if model.config.n_positions < n_positions:
        raise UserError(
            f"pretrained model {name!r} has n_positions {model.config.n_positions} < the requested {n_positions}",
            fix=f"use block/sequence lengths of at most {model.config.n_positions}",
        )
    return model


def count_parameters(model) -> int:
    """Distinct parameters (tied lm_head/wte counted once, as model.parameters() does)."""
    return sum(p.numel() for p in model.parameters())

"""Data for the workloads: corpora with known entropy, local text, and a long-range retrieval task.

Everything here is numpy and seeded; nothing downloads. Torch tensors are made only
where a batch is handed to a model (`as_tensors`).

- `MarkovCorpus`: a k-th order Markov source with a seeded Dirichlet transition matrix and its
  analytic entropy rate, so the best achievable perplexity (exp H) is known exactly.
- `text_file_tokens` / `wikitext2_tokens`: real text, GPT-2's tokenizer (from the local hub cache) or bytes;
  WikiText-2 is read from the parquet files `eitp-bench prepare` put in the hub cache.
- `LMData`: train/validation split, fixed-length blocks, deterministic batches by seed.
- `RetrievalTask`: key→value pairs placed at controlled distances before a query of the key.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from eitp_bench.errors import UserError

# ----------------------------------------------------------------------------- Markov source


class MarkovCorpus:
    """A stationary k-th order Markov chain over `vocab_size` tokens.

    Each context (the last `order` tokens) has a next-token distribution drawn from a symmetric
    Dirichlet(`concentration`): small concentration → peaked rows → low entropy. A `smoothing`
    floor mixes in a little of the uniform distribution so every row is strictly positive, which
    makes the chain irreducible and aperiodic: the stationary distribution exists and is unique.
    """

    def __init__(
        self,
        vocab_size: int,
        order: int = 1,
        seed: int = 0,
        concentration: float = 0.1,
        smoothing: float = 1e-3,
    ):
        if vocab_size < 2 or order < 1:
            raise ValueError("MarkovCorpus needs vocab_size >= 2 and order >= 1")
        if vocab_size**order > 1_000_000:
            raise UserError(
                f"Markov corpus with vocab_size={vocab_size} and order={order} has "
                f"{vocab_size ** order} contexts, more than 1,000,000",
                fix="lower data.vocab_size or data.order",
            )
        rng = np.random.default_rng(seed)
        n_contexts = vocab_size**order
        rows = rng.dirichlet(np.full(vocab_size, concentration), size=n_contexts)
        probs = (1.0 - smoothing) * rows + smoothing / vocab_size
        self._init(probs / probs.sum(axis=1, keepdims=True), order)

    @classmethod
    def from_transitions(cls, transitions: np.ndarray, order: int = 1) -> "MarkovCorpus":
        """A chain with given transition rows, shape (vocab_size**order, vocab_size)."""
        self = cls.__new__(cls)
        self._init(np.asarray(transitions, dtype=np.float64), order)
        return self

    def _init(self, probs: np.ndarray, order: int) -> None:
        self.order = order
        self.vocab_size = probs.shape[1]
        if probs.shape[0] != self.vocab_size**order or not np.allclose(probs.sum(axis=1), 1.0):
            raise ValueError("transition rows must be (vocab_size**order, vocab_size) and sum to 1")
        self.transitions = probs
        self.stationary = self._stationary_contexts()
        row_entropy = -np.sum(np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1.0)), 0.0), axis=1)
        # H = −Σ_s π_s Σ_x P(x|s) log P(x|s), in nats per token.
        self.entropy_rate_nats = float(self.stationary @ row_entropy)

    def _next_context(self, dist: np.ndarray) -> np.ndarray:
        """One step of the context chain: context (a, b…) emits x and becomes (b…, x)."""
        v, k = self.vocab_size, self.order
        flow = dist[:, None] * self.transitions  # (contexts, next token)
        return flow.reshape(v, v ** (k - 1), v).sum(axis=0).reshape(-1)

    def _stationary_contexts(self, tol: float = 1e-13, max_iter: int = 100_000) -> np.ndarray:
        dist = np.full(self.vocab_size**self.order, 1.0 / self.vocab_size**self.order)
        for _ in range(max_iter):
            new = self._next_context(dist)
            if np.abs(new - dist).sum() < tol:
                return new / new.sum()
            dist = new
        raise RuntimeError("stationary distribution did not converge")

    @property
    def optimal_perplexity(self) -> float:
        """exp(entropy rate): no model can beat this perplexity on samples of the source."""
        return math.exp(self.entropy_rate_nats)

    def sample_streams(self, n_streams: int, length: int, seed: int) -> np.ndarray:
        """`n_streams` independent stationary runs of `length` tokens, shape (n_streams, length)."""
        rng = np.random.default_rng(seed)
        v, k = self.vocab_size, self.order
        cdf = np.cumsum(self.transitions, axis=1)
        cdf[:, -1] = 1.0  # guard the last bin against rounding
        # Start every stream in the stationary distribution over contexts.
        contexts = rng.choice(len(self.stationary), size=n_streams, p=self.stationary)
        prefix = np.stack([(contexts // v ** (k - 1 - i)) % v for i in range(k)], axis=1)
        out = np.empty((n_streams, length + k), dtype=np.int64)
        out[:, :k] = prefix
        uniforms = rng.random((length, n_streams))
        for t in range(length):
            nxt = (uniforms[t][:, None] > cdf[contexts]).sum(axis=1)
            out[:, k + t] = nxt
            contexts = (contexts * v) % (v**k) + nxt
        return out[:, k:]

    def sample(self, n_tokens: int, seed: int, n_streams: int = 64) -> np.ndarray:
        """`n_tokens` tokens as one array: `n_streams` stationary runs laid end to end.

        Streams are sampled in parallel (vectorised); the n_streams − 1 joins are not Markov
        transitions, a negligible share of a corpus of 10^5+ tokens.
        """
        n_streams = max(1, min(n_streams, n_tokens))
        length = -(-n_tokens // n_streams)
        return self.sample_streams(n_streams, length, seed).reshape(-1)[:n_tokens]


def empirical_conditional_entropy(tokens: np.ndarray, vocab_size: int, order: int = 1) -> float:
    """Plug-in estimate of H(X_t | previous `order` tokens) in nats, with the Miller–Madow correction."""
    tokens = np.asarray(tokens, dtype=np.int64)
    contexts = np.zeros(len(tokens) - order, dtype=np.int64)
    for i in range(order):
        contexts = contexts * vocab_size + tokens[i : len(tokens) - order + i]
    pairs = contexts * vocab_size + tokens[order:]
    joint = np.bincount(pairs, minlength=vocab_size ** (order + 1)).astype(np.float64)
    marginal = joint.reshape(-1, vocab_size).sum(axis=1)
    n = joint.sum()
    nz = joint > 0
    h_joint = -np.sum(joint[nz] / n * np.log(joint[nz] / n))
    mz = marginal > 0
    h_context = -np.sum(marginal[mz] / n * np.log(marginal[mz] / n))
    # Miller–Madow: the plug-in entropy is biased low by (cells − 1)/(2n); the difference of two.
    correction = ((nz.sum() - 1) - (mz.sum() - 1)) / (2 * n)
    return float(h_joint - h_context + correction)


# ----------------------------------------------------------------------------- real text


class ByteTokenizer:
    """UTF-8 bytes as tokens: vocabulary 256, nothing to download."""

    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


_TOKENIZERS: dict[str, object] = {}  # cache folder → tokenizer (train and validation share one load)


def local_gpt2_tokenizer():
    """GPT-2's tokenizer from the local Hugging Face cache only; a UserError if it is not there."""
    from eitp_bench.workloads.assets import cached_snapshot, hub_cache_dir, tokenizer_asset

    cache = str(hub_cache_dir())  # read from the environment now: huggingface_hub fixes its default at import
    if cache in _TOKENIZERS:
        return _TOKENIZERS[cache]
    try:
        from transformers import GPT2TokenizerFast  # GPT-2's own class: no config.json needed to pick it

        # the snapshot folder itself: found under gpt2 or openai-community/gpt2 (assets.HUB_ALIASES)
        snap = cached_snapshot(tokenizer_asset("gpt2"))
        tok = GPT2TokenizerFast.from_pretrained(str(snap) if snap else "gpt2", local_files_only=True, cache_dir=cache)
        _TOKENIZERS[cache] = tok
        return tok
    except Exception as err:  # OSError / ValueError when not cached
        raise UserError(
            f"the GPT-2 tokenizer is not in the local Hugging Face cache {hub_cache_dir()} ({type(err).__name__})",
            fix="run `eitp-bench prepare --model gpt2` (on a connected machine, then copy the cache here), "
            "or use data.tokenizer: byte",
        ) from None


def _tokenize(text: str, tokenizer: str) -> tuple[np.ndarray, int]:
    if tokenizer == "byte":
        tok = ByteTokenizer()
        return tok.encode(text), tok.vocab_size
    if tokenizer == "gpt2":
        tok = local_gpt2_tokenizer()
        # One string, tokenised whole: verbose=False silences the "longer than 1024 tokens" warning,
        # which is about feeding a model, not about making a corpus.
        return np.asarray(tok(text, verbose=False)["input_ids"], dtype=np.int64), len(tok)
    raise UserError(f"unknown tokenizer {tokenizer!r}", fix="use data.tokenizer: byte or gpt2")


def text_file_tokens(path: str | os.PathLike, tokenizer: str = "byte") -> tuple[np.ndarray, int]:
    """Tokens of a local text file and the vocabulary size."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"text file {str(p)!r} (data.text_file) does not exist", fix="give a path to a local text file")
    text = p.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise UserError(f"text file {str(p)!r} (data.text_file) is empty", fix="give a file with text in it")
    return _tokenize(text, tokenizer)


def wikitext2_rows(split: str, revision: Optional[str] = None) -> list[str]:
    """One split of WikiText-2 (raw) from the parquet files in the local hub cache; never downloads.

    The rows are the corpus' lines (each ends in a newline; blank lines are empty rows), so joining
    them gives back the original text.
    """
    from eitp_bench.workloads.assets import WIKITEXT2_REPO, hub_cache_dir, repo_folder, wikitext2_split_files

    files = wikitext2_split_files(split, revision=revision)
    if not files:
        raise UserError(
            f"WikiText-2 ({split} split) is not in the local Hugging Face cache "
            f"({repo_folder(WIKITEXT2_REPO, 'dataset', hub_cache_dir())})" + (f" at revision {revision}" if revision else ""),
            fix="run `eitp-bench prepare --data wikitext-2` (on a connected machine, then copy the cache here), "
            "or use data.kind: text_file / markov",
        )
    import pandas as pd

    try:
        columns = [pd.read_parquet(f, columns=["text"])["text"] for f in files]
    except Exception as err:  # a truncated copy, or a file that is not WikiText's
        raise UserError(
            f"cannot read WikiText-2 ({split}) from {files[0].parent}: {type(err).__name__}: {str(err).splitlines()[0]}",
            fix="run `eitp-bench prepare --data wikitext-2` again (or re-copy the cache folder)",
        ) from None
    return [t for col in columns for t in col.fillna("").astype(str)]


def wikitext2_text(split: str, revision: Optional[str] = None) -> str:
    return "".join(wikitext2_rows(split, revision))


def _word_start_chunks(rows: list[str], rows_per_chunk: int = 1000) -> list[str]:
    """The rows joined into chunks that are cut only before a row starting " <non-space>".

    GPT-2's pre-tokenizer always starts a new piece at a single space before a non-space, so
    encoding these chunks separately gives exactly the ids of the whole text (tested), and the
    fast tokenizer encodes a batch on every core.
    """
    chunks, current = [], []
    for row in rows:
        if len(current) >= rows_per_chunk and len(row) > 1 and row[0] == " " and not row[1].isspace():
            chunks.append("".join(current))
            current = []
        current.append(row)
    if current:
        chunks.append("".join(current))
    return chunks


def wikitext2_tokens(
    split: str, tokenizer: str = "gpt2", rows_per_chunk: int = 1000, revision: Optional[str] = None
) -> tuple[np.ndarray, int]:
    """Tokens of one WikiText-2 (raw) split from the local cache, and the vocabulary size."""
    rows = wikitext2_rows(split, revision)
    if tokenizer != "gpt2":
        return _tokenize("".join(rows), tokenizer)
    tok = local_gpt2_tokenizer()
    ids = tok(_word_start_chunks(rows, rows_per_chunk), verbose=False)["input_ids"]
    return np.fromiter((i for chunk in ids for i in chunk), dtype=np.int64), len(tok)


# ----------------------------------------------------------------------------- language-model batches


@dataclass
class LMData:
    """Train and validation token streams cut into fixed blocks of `block_size` tokens."""

    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    block_size: int
    optimal_perplexity: Optional[float] = None  # exp(entropy rate) when the source is known
    entropy_rate_nats: Optional[float] = None
    source: str = "markov"

    def __post_init__(self):
        for name, arr in (("train", self.train), ("validation", self.val)):
            if len(arr) < self.block_size + 1:
                raise UserError(
                    f"the {name} split has {len(arr)} tokens, fewer than one block of {self.block_size}",
                    fix="raise data.train_tokens/data.val_tokens or lower data.block_size",
                )

    def train_batches(self, batch_size: int, seed: int) -> Iterator[np.ndarray]:
        """Endless random training blocks, (batch_size, block_size); the same sequence for a given seed."""
        rng = np.random.default_rng(seed)
        high = len(self.train) - self.block_size + 1
        while True:
            starts = rng.integers(0, high, size=batch_size)
            yield np.stack([self.train[s : s + self.block_size] for s in starts])

    def val_blocks(self, max_blocks: Optional[int] = None) -> np.ndarray:
        """Non-overlapping validation blocks from the start of the split, (n, block_size)."""
        n = len(self.val) // self.block_size
        if max_blocks is not None:
            n = min(n, max_blocks)
        return self.val[: n * self.block_size].reshape(n, self.block_size)


def build_lm_data(cfg, seed: int) -> LMData:
    """LMData from a suite's `data` section (kind markov, text_file or wikitext2).

    `seed` selects the Markov source and its samples; the runner passes the suite's data seed,
    which is the same for every arm and repetition (the data is fixed; model seeds vary).
    """
    if cfg.kind == "markov":
        corpus = MarkovCorpus(cfg.vocab_size, order=cfg.order, seed=seed, concentration=cfg.concentration)
        train = corpus.sample(cfg.train_tokens, seed=seed + 1)
        val = corpus.sample(cfg.val_tokens, seed=seed + 2)
        return LMData(train, val, cfg.vocab_size, cfg.block_size, corpus.optimal_perplexity, corpus.entropy_rate_nats, "markov")
    if cfg.kind == "text_file":
        tokens, vocab = text_file_tokens(cfg.text_file, cfg.tokenizer)
        n_val = max(cfg.block_size + 1, int(len(tokens) * cfg.val_fraction))
        return LMData(tokens[:-n_val], tokens[-n_val:], vocab, cfg.block_size, source="text_file")
    if cfg.kind == "wikitext2":
        train, vocab = wikitext2_tokens("train", cfg.tokenizer, revision=cfg.revision)
        val, _ = wikitext2_tokens("validation", cfg.tokenizer, revision=cfg.revision)
        return LMData(train, val, vocab, cfg.block_size, source="wikitext2")
    raise UserError(f"unknown data.kind {cfg.kind!r}", fix="use markov, text_file or wikitext2")


def as_tensors(block: np.ndarray, device):
    """(input_ids, labels) for a Hugging Face causal LM, which shifts labels itself."""
    import torch

    ids = torch.as_tensor(block, dtype=torch.long, device=device)
    return ids, ids.clone()


# ----------------------------------------------------------------------------- long-range retrieval

IGNORE_INDEX = -100  # Hugging Face's "no loss here" label


@dataclass
class RetrievalBatch:
    input_ids: np.ndarray  # (batch, seq_len); the last token is the answer (teacher forcing)
    labels: np.ndarray  # IGNORE_INDEX everywhere but the answer position
    answers: np.ndarray  # (batch,) the value token to retrieve
    distances: np.ndarray  # (batch,) query position − position of the stored key


class RetrievalTask:
    """Key→value recall across a controlled distance.

    Token layout of the vocabulary: 0 = QUERY marker, then filler tokens, then key tokens, then
    value tokens. A sequence is filler with `n_keys` stored pairs `K V` (distinct keys), ending in
    `QUERY K* V*`: the model sees the query key K* at position seq_len−2 and must predict V*, the
    value stored right after K* earlier. The distance is (seq_len−2) − (position of the stored K*).
    """

    QUERY = 0

    def __init__(self, vocab_size: int, seq_len: int, distances: list[int], n_keys: int = 4, seed: int = 0):
        self.vocab_size, self.seq_len, self.n_keys, self.seed = vocab_size, seq_len, n_keys, seed
        self.distances = list(distances)
        self.n_filler = max(2, vocab_size // 4)
        self.n_symbols = (vocab_size - 1 - self.n_filler) // 2  # keys and values each
        if self.n_symbols < n_keys:
            raise UserError(
                f"retrieval: vocab_size={vocab_size} leaves {self.n_symbols} key tokens, fewer than n_keys={n_keys}",
                fix="raise data.vocab_size or lower retrieval.n_keys",
            )
        self.key_base = 1 + self.n_filler
        self.value_base = self.key_base + self.n_symbols
        bad = [d for d in self.distances if not self.min_distance <= d <= self.max_distance]
        if bad:
            raise UserError(
                f"retrieval.distances {bad} are outside [{self.min_distance}, {self.max_distance}] for seq_len={seq_len}",
                fix=f"use distances from {self.min_distance} to {self.max_distance}, or change retrieval.seq_len",
            )
        # Distractor pairs need room outside the target pair and the final QUERY K V.
        if seq_len < 2 * n_keys + 4:
            raise UserError(f"retrieval.seq_len={seq_len} is too short for n_keys={n_keys}", fix="raise retrieval.seq_len")

    @property
    def min_distance(self) -> int:
        return 3  # stored K V must end before the QUERY marker at seq_len−3

    @property
    def max_distance(self) -> int:
        return self.seq_len - 2  # stored key at position 0

    def batch(self, distances: np.ndarray, rng: np.random.Generator) -> RetrievalBatch:
        n, length = len(distances), self.seq_len
        ids = rng.integers(1, 1 + self.n_filler, size=(n, length))
        answers = np.empty(n, dtype=np.int64)
        q = length - 2  # query key position
        for i, d in enumerate(distances):
            keys = rng.choice(self.n_symbols, size=self.n_keys, replace=False)
            values = rng.integers(0, self.n_symbols, size=self.n_keys)
            # Target pair first, then distractors on free, non-overlapping slots before the query.
            taken = np.zeros(length, dtype=bool)
            taken[q - 1 :] = True
            p = q - d
            taken[p : p + 2] = True
            slots = [p]
            free = [s for s in range(0, q - 2) if not taken[s] and not taken[s + 1]]
            rng.shuffle(free)
            for s in free:
                if len(slots) == self.n_keys:
                    break
                if not taken[s] and not taken[s + 1]:
                    taken[s : s + 2] = True
                    slots.append(s)
            for slot, key, value in zip(slots, keys, values):
                ids[i, slot] = self.key_base + key
                ids[i, slot + 1] = self.value_base + value
            ids[i, q - 1] = self.QUERY
            ids[i, q] = self.key_base + keys[0]
            ids[i, q + 1] = self.value_base + values[0]
            answers[i] = self.value_base + values[0]
        labels = np.full_like(ids, IGNORE_INDEX)
        labels[:, -1] = answers
        return RetrievalBatch(ids, labels, answers, np.asarray(distances, dtype=np.int64))

    def train_batches(self, batch_size: int, seed: int) -> Iterator[RetrievalBatch]:
        """Endless training batches with distances uniform over every allowed distance."""
        rng = np.random.default_rng([self.seed, seed, 1])
        while True:
            yield self.batch(rng.integers(self.min_distance, self.max_distance + 1, size=batch_size), rng)

    def eval_batches(self, per_distance: int, batch_size: int = 32) -> Iterator[RetrievalBatch]:
        """The fixed evaluation set: `per_distance` sequences at each distance (same for every arm)."""
        rng = np.random.default_rng([self.seed, 2])
        all_d = np.repeat(self.distances, per_distance)
        for start in range(0, len(all_d), batch_size):
            yield self.batch(all_d[start : start + batch_size], rng)

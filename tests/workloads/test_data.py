"""Corpora with known entropy, text loading, LM batches and the retrieval generator."""

import math

import numpy as np
import pytest

from eitp_bench.errors import UserError
from eitp_bench.workloads.data import (
    IGNORE_INDEX,
    LMData,
    MarkovCorpus,
    RetrievalTask,
    build_lm_data,
    empirical_conditional_entropy,
    text_file_tokens,
    wikitext2_tokens,
)


def binary_entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_two_state_chain_matches_hand_computed_rate():
    # P = [[0.9, 0.1], [0.4, 0.6]]: π solves π0·0.1 = π1·0.4 → π = (0.8, 0.2).
    corpus = MarkovCorpus.from_transitions(np.array([[0.9, 0.1], [0.4, 0.6]]))
    np.testing.assert_allclose(corpus.stationary, [0.8, 0.2], atol=1e-10)
    expected = 0.8 * binary_entropy(0.1) + 0.2 * binary_entropy(0.4)  # 0.3947… nats
    assert corpus.entropy_rate_nats == pytest.approx(expected, abs=1e-10)
    assert corpus.optimal_perplexity == pytest.approx(math.exp(expected))


def test_flat_dirichlet_rows_approach_log_vocab():
    # A huge concentration makes every row nearly uniform: H → log V.
    corpus = MarkovCorpus(16, seed=3, concentration=1e6)
    assert corpus.entropy_rate_nats == pytest.approx(math.log(16), abs=1e-4)


@pytest.mark.parametrize("vocab,order", [(16, 1), (6, 2)])
def test_empirical_conditional_entropy_matches_analytic_rate(vocab, order):
    corpus = MarkovCorpus(vocab, order=order, seed=7, concentration=0.3)
    tokens = corpus.sample(400_000, seed=11)
    h_hat = empirical_conditional_entropy(tokens, vocab, order)
    # Tolerance: the estimator's standard error is σ/√N with σ = std of −log P(x|ctx) ≲ 1.5
    # nats here, so ≈ 0.0024 at N = 4·10^5; the Miller–Madow-corrected bias is O(cells/N²) and the
    # 63 non-Markov joins between streams add < 63·log V / N ≈ 4·10^-4. 0.012 ≈ 5 standard errors.
    assert h_hat == pytest.approx(corpus.entropy_rate_nats, abs=0.012)
    # The empirical frequencies follow the stationary distribution (marginal over tokens).
    freq = np.bincount(tokens, minlength=vocab) / len(tokens)
    marginal = corpus.stationary.reshape(-1, vocab).sum(axis=0) if order == 1 else None
    if marginal is not None:
        np.testing.assert_allclose(freq, marginal, atol=0.01)


def test_entropy_check_tells_different_sources_apart():
    a = MarkovCorpus(16, seed=1, concentration=0.1)
    b = MarkovCorpus(16, seed=2, concentration=1.0)
    h_a = empirical_conditional_entropy(a.sample(200_000, seed=0), 16)
    assert abs(h_a - b.entropy_rate_nats) > 0.2


def test_sampling_is_reproducible_by_seed():
    corpus = MarkovCorpus(32, seed=5)
    assert np.array_equal(corpus.sample(5000, seed=1), corpus.sample(5000, seed=1))
    assert not np.array_equal(corpus.sample(5000, seed=1), corpus.sample(5000, seed=2))
    assert np.array_equal(MarkovCorpus(32, seed=5).transitions, corpus.transitions)


def test_lm_batches_are_deterministic_and_in_range():
    corpus = MarkovCorpus(32, seed=0)
    data = LMData(corpus.sample(10_000, 1), corpus.sample(2_000, 2), 32, 16)
    a = [next(data.train_batches(4, seed=9)) for _ in range(1)][0]
    gen1, gen2 = data.train_batches(4, seed=9), data.train_batches(4, seed=9)
    for _ in range(3):
        assert np.array_equal(next(gen1), next(gen2))
    assert a.shape == (4, 16) and a.max() < 32
    blocks = data.val_blocks()
    assert blocks.shape == (2000 // 16, 16)
    assert np.array_equal(blocks.reshape(-1), data.val[: blocks.size])
    assert data.val_blocks(3).shape == (3, 16)


def test_too_small_split_is_a_user_error():
    with pytest.raises(UserError, match="fewer than one block"):
        LMData(np.arange(100) % 8, np.arange(5) % 8, 8, 16)


def test_text_file_is_byte_tokenized(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("héllo world\n" * 50, encoding="utf-8")
    tokens, vocab = text_file_tokens(path)
    assert vocab == 256
    assert bytes(tokens[:6].astype(np.uint8)).decode("utf-8") == "héllo"
    with pytest.raises(UserError, match="does not exist"):
        text_file_tokens(tmp_path / "missing.txt")


def test_build_lm_data_from_text_file_splits_train_and_validation(tmp_path):
    from eitp_bench.suite import DataConfig

    path = tmp_path / "c.txt"
    path.write_text("abcdefghij" * 200)
    cfg = DataConfig(kind="text_file", text_file=str(path), block_size=16, val_fraction=0.1)
    data = build_lm_data(cfg, seed=0)
    assert len(data.train) + len(data.val) == 2000 and len(data.val) == 200
    assert data.optimal_perplexity is None


def test_markov_lm_data_reports_its_optimum():
    from eitp_bench.suite import DataConfig

    cfg = DataConfig(vocab_size=16, block_size=8, train_tokens=2000, val_tokens=500)
    data = build_lm_data(cfg, seed=3)
    assert data.optimal_perplexity == pytest.approx(MarkovCorpus(16, seed=3, concentration=0.1).optimal_perplexity)


def test_wikitext_without_cache_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))  # never the real ~/.cache
    with pytest.raises(UserError, match="not in the local Hugging Face cache") as err:
        wikitext2_tokens("train")
    assert "eitp-bench prepare" in err.value.fix and "text_file" in err.value.fix


# ----------------------------------------------------------------------------- retrieval


def test_retrieval_answer_is_at_the_given_distance():
    task = RetrievalTask(vocab_size=64, seq_len=48, distances=[3, 10, 30, 46], n_keys=4, seed=1)
    batches = list(task.eval_batches(per_distance=20, batch_size=16))
    seen = set()
    for b in batches:
        q = task.seq_len - 2
        for ids, labels, ans, d in zip(b.input_ids, b.labels, b.answers, b.distances):
            key = ids[q]
            assert ids[q - 1] == task.QUERY
            assert task.key_base <= key < task.value_base
            # The queried key occurs exactly once before the query, exactly d positions back …
            where = np.flatnonzero(ids[: q - 1] == key)
            assert list(where) == [q - d]
            # … followed by its value, which is the answer (and the final token).
            assert ids[q - d + 1] == ans == ids[-1]
            assert task.value_base <= ans < task.value_base + task.n_symbols
            # Exactly n_keys stored pairs of distinct keys, and the loss only on the answer.
            stored = ids[: q - 1][(ids[: q - 1] >= task.key_base) & (ids[: q - 1] < task.value_base)]
            assert len(stored) == len(set(stored)) == task.n_keys
            assert (labels[:-1] == IGNORE_INDEX).all() and labels[-1] == ans
            seen.add(int(d))
    assert seen == {3, 10, 30, 46}


def test_retrieval_is_reproducible_by_seed():
    def first(seed):
        t = RetrievalTask(64, 32, [4, 20], n_keys=2, seed=seed)
        return next(t.eval_batches(8)).input_ids, next(t.train_batches(8, seed=0)).input_ids

    assert all(np.array_equal(x, y) for x, y in zip(first(1), first(1)))
    assert not np.array_equal(first(1)[0], first(2)[0])


def test_retrieval_rejects_impossible_distances():
    with pytest.raises(UserError, match="outside"):
        RetrievalTask(64, 32, [2], n_keys=2)
    with pytest.raises(UserError, match="outside"):
        RetrievalTask(64, 32, [31], n_keys=2)
    with pytest.raises(UserError, match="n_keys"):
        RetrievalTask(16, 32, [4], n_keys=10)

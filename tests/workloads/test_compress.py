import copy
import math
import os

import pytest
import torch
from torch import nn

from eitp_bench.errors import UserError
from eitp_bench.workloads import compress as Z
from eitp_bench.workloads.models import build_model


@pytest.fixture(scope="module")
def model():
    return build_model("tiny", vocab_size=97, n_positions=32, seed=0).eval()


def ids(seed=0, shape=(2, 12)):
    return torch.randint(0, 97, shape, generator=torch.Generator().manual_seed(seed))


def test_serialized_bytes_is_the_size_of_the_packed_file(model, tmp_path):
    path = tmp_path / "model.pt"  # torch.save embeds the stem in the archive
    assert Z.serialized_bytes(model) == Z.save_packed(model, path) == os.path.getsize(path)
    # a dense fp32 model's packed file is its state_dict plus a small header (config, structure)
    torch.save(model.state_dict(), path)
    assert 0 < Z.serialized_bytes(model) - os.path.getsize(path) < 4000


def test_int8_shrinks_linear_weights_about_four_times():
    dense = nn.Sequential(nn.Linear(512, 512, bias=False))
    q = Z.quantize_int8_dynamic(dense)
    ratio = Z.serialized_bytes(dense) / Z.serialized_bytes(q)
    assert 3.5 < ratio < 4.05  # 1 MiB of fp32 → 256 KiB of int8 plus scale/zero-point/bias/pickle overhead


def test_conv1d_to_linear_is_exact_in_fp32(model):
    from transformers.pytorch_utils import Conv1D

    x = ids()
    converted = Z.conv1d_to_linear(copy.deepcopy(model))
    assert not any(isinstance(m, Conv1D) for m in converted.modules())
    assert torch.equal(model(x).logits, converted(x).logits)


def test_quantization_reaches_the_blocks_and_the_tied_embedding(model):
    q = Z.quantize_int8_dynamic(model)
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from transformers.pytorch_utils import Conv1D

    block_modules = list(q.transformer.h.modules())
    assert sum(isinstance(m, QLinear) for m in block_modules) == 4 * 2  # qkv, proj, fc, proj per block
    assert not any(type(m) in (nn.Linear, Conv1D) for m in block_modules)
    assert isinstance(q.transformer.wte, Z.Int8Embedding) and isinstance(q.lm_head, Z.Int8TiedHead)
    assert q.lm_head.embedding is q.transformer.wte  # one set of int8 rows serves lookup and logits
    assert Z.serialized_bytes(q) < 0.35 * Z.serialized_bytes(model)
    # Each int8 step rounds within 1/254 of a tensor's (or row's) range, and 9 quantized products
    # (4 per block + the head) compound that to a few percent at most; 5 % of the largest logit
    # still catches a wrong scale, row or transpose (errors of order 100 %).
    x = ids()
    ref, got = model(x).logits, q(x).logits
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()
    assert type(model.transformer.h[0].attn.c_attn).__name__ == "Conv1D"  # original untouched


def test_int8_embedding_rows_are_within_half_a_step_and_looked_up_exactly(model):
    w = model.transformer.wte.weight.detach()
    e = Z.Int8Embedding.from_float(w)
    assert e.qweight.dtype == torch.int8 and e.scale.dtype == torch.float32 and e.scale.shape == (w.shape[0],)
    torch.testing.assert_close(e.scale, w.abs().amax(1) / 127)  # symmetric: the row maximum maps to ±127
    assert int(e.qweight.abs().max()) == 127
    assert ((e.dequantize() - w).abs() <= e.scale[:, None] / 2 + 1e-7).all()
    x = ids()
    assert torch.equal(e(x), e.dequantize()[x])
    # the tied head computes x · dequantized rowsᵀ up to the 7-bit dynamic quantisation of x
    h = torch.randn(3, w.shape[1], generator=torch.Generator().manual_seed(1))
    exact = h @ e.dequantize().T
    assert (Z.Int8TiedHead(e)(h) - exact).abs().max() < 0.02 * exact.abs().max()


def test_tied_embedding_is_stored_once_in_int8():
    dim, extra = 64, 1000  # "tiny": n_embd 64; a vocabulary 1000 rows larger

    def sizes(vocab):
        m = build_model("tiny", vocab_size=vocab, n_positions=32, seed=0)
        return Z.serialized_bytes(m), Z.serialized_bytes(Z.quantize_int8_dynamic(m))

    (fp_small, q_small), (fp_large, q_large) = sizes(97), sizes(97 + extra)
    # fp32: 1000 more rows of 64 floats, once (lm_head shares wte's storage): exactly 256 000 bytes
    assert fp_large - fp_small == extra * dim * 4
    # int8: 1000 more int8 rows plus one fp32 scale each, once; the header differs by a few
    # characters (vocab_size, eos id) and the archive pads each tensor to 64 bytes
    assert abs((q_large - q_small) - extra * (dim + 4)) < 256
    packed = Z.pack(Z.quantize_int8_dynamic(build_model("tiny", vocab_size=97, n_positions=32, seed=0)))
    big = {k: v for k, v in packed["state"].items() if isinstance(v, torch.Tensor) and v.numel() >= 97 * dim}
    assert {k: (v.dtype, tuple(v.shape)) for k, v in big.items()} == {"transformer.wte.qweight": (torch.int8, (97, dim))}


def test_bitmask_is_used_exactly_when_it_is_smaller():
    def stored(dtype, n, zeros):
        t = torch.ones(n // 100, 100, dtype=dtype)
        t.view(-1)[:zeros] = 0
        return Z._maybe_masked(t)

    # int8, n = 8000: the mask costs 1000 bytes, so it pays once more than 1000 values are zero
    assert isinstance(stored(torch.int8, 8000, 1000), torch.Tensor)
    packed = stored(torch.int8, 8000, 1001)
    assert packed["mask"].numel() == 1000 and packed["values"].numel() == 6999
    # fp32, n = 3200: the mask costs 400 bytes = 100 floats
    assert isinstance(stored(torch.float32, 3200, 100), torch.Tensor)
    packed = stored(torch.float32, 3200, 101)
    assert packed["values"].dtype == torch.float32 and packed["values"].numel() == 3099
    assert int((Z._unmasked(packed) == 0).sum()) == 101 and Z._unmasked(packed).shape == (32, 100)
    t = torch.randint(-3, 4, (37, 29), generator=torch.Generator().manual_seed(0)).to(torch.int8)  # ~1/7 zeros
    t[t.abs() == 1] = 0  # ~3/7 zeros
    assert isinstance(Z._maybe_masked(t), dict) and torch.equal(Z._unmasked(Z._maybe_masked(t)), t)


def test_a_half_pruned_int8_model_saves_what_the_mask_format_predicts(model):
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    dense = Z.quantize_int8_dynamic(model)
    pruned = Z.compress_eitp(model, calib_batches=[ids(3), ids(4)], prune_amount=0.5, distill_steps=0)
    # per pruned n-element int8 matrix: n bytes dense against n/8 (mask) + nnz (kept values)
    predicted, total = 0, 0
    for m in pruned.modules():
        if isinstance(m, QLinear):
            q = m.weight().int_repr()
            n, nnz = q.numel(), int((q != 0).sum())
            assert nnz <= n // 2
            predicted += n - (n + 7) // 8 - nnz
            total += n
    assert predicted >= 0.375 * total  # at least 3/8 of the int8 bytes, since nnz ≤ n/2
    saved = Z.serialized_bytes(dense) - Z.serialized_bytes(pruned)
    # each masked matrix adds one archive record and a small dict (< 300 bytes): 8 matrices here
    assert predicted - 8 * 300 < saved <= predicted


@pytest.mark.parametrize("kind", ["fp32", "int8", "pruned-int8"])
def test_the_packed_file_alone_rebuilds_the_same_model(model, tmp_path, kind):
    built = {
        "fp32": lambda: model,
        "int8": lambda: Z.quantize_int8_dynamic(model),
        "pruned-int8": lambda: Z.compress_eitp(model, calib_batches=[ids(3)], prune_amount=0.5, distill_steps=0),
    }[kind]()
    path = tmp_path / "model.pt"
    Z.save_packed(built, path)
    loaded = Z.load_packed(path)  # torch.load(weights_only=True): plain tensors and dicts only
    x = ids(7)
    assert torch.equal(loaded(x).logits, built(x).logits)
    if kind == "fp32":
        assert loaded.lm_head.weight is loaded.transformer.wte.weight  # still tied after loading
    out = loaded.generate(ids(8, (1, 4)), max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape == (1, 9)


def test_an_untied_head_is_quantized_as_a_linear():
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=97, n_positions=32, n_layer=1, n_head=2, n_embd=64,
                                   tie_word_embeddings=False)).eval()
    q = Z.quantize_int8_dynamic(m)
    assert isinstance(q.transformer.wte, Z.Int8Embedding) and isinstance(q.lm_head, QLinear)
    x = ids()
    assert (q(x).logits - m(x).logits).abs().max() < 0.05 * m(x).logits.abs().max()


def test_not_a_packed_file_is_a_user_error():
    with pytest.raises(UserError, match="packed"):
        Z.unpack_state_dict({"state": {}})


def test_iem_importance_by_hand():
    layer = nn.Sequential(nn.Linear(2, 3))
    x = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0]])
    scores = Z.iem_importance(layer, ["0"], [x])["0"]
    w = layer[0].weight.detach()
    # column 0 is constant (0 bits): importance 0; column 1 has 4 distinct values (2 bits), ‖x‖ = √14
    torch.testing.assert_close(scores[:, 0], torch.zeros(3))
    torch.testing.assert_close(scores[:, 1], w[:, 1].abs() * math.sqrt(14) * 2.0)


def test_distillation_reduces_kl(model):
    student = Z.conv1d_to_linear(build_model("tiny", vocab_size=97, n_positions=32, seed=5))
    losses = Z.distill(student, model, [ids(1), ids(2)], steps=12, lr=3e-3)
    assert losses[-1] < 0.7 * losses[0]


def test_compress_eitp_gives_a_working_pruned_int8_model(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    c = Z.compress_eitp(model, calib_batches=[ids(3), ids(4)], prune_amount=0.3, distill_steps=3, lr=1e-4)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input not modified
    assert c.eitp_compression["order"] == "prune→distil→quantize"
    assert c.eitp_compression["sparsity"] == pytest.approx(0.3, abs=1e-3)
    w = c.transformer.h[0].mlp.c_fc.weight().dequantize()
    assert (w == 0).float().mean() >= 0.299  # pruned zeros survive int8 (0 is exactly representable)
    out = c.generate(ids(5, (1, 4)), max_new_tokens=6, do_sample=False)
    assert out.shape == (1, 10)
    assert torch.isfinite(c(ids()).logits).all()
    assert isinstance(c.transformer.wte, Z.Int8Embedding)  # the same embedding scheme as the control


def test_quality_metrics_compute_on_the_compressed_models(model):
    from eitp_bench.workloads.train import lm_quality

    blocks = ids(9, (6, 32)).numpy()
    loss, acc = lm_quality(model, blocks, batch_size=4, device="cpu")
    for c in (Z.quantize_int8_dynamic(model),
              Z.compress_eitp(model, calib_batches=[ids(3)], prune_amount=0.3, distill_steps=0)):
        closs, cacc = lm_quality(c, blocks, batch_size=4, device="cpu")
        assert math.isfinite(closs) and 0.0 <= cacc <= 1.0
        # an untrained model sits near ln(97) = 4.57 nats; int8 and 30 % pruning move it by < 2 %
        assert abs(closs - loss) < 0.02 * loss


def test_compression_report_ratio_and_quality(model):
    c = Z.quantize_int8_dynamic(model)
    x = ids(6)

    def ppl(m):
        return math.exp(float(m(x, labels=x).loss.detach()))

    r = Z.compression_report(model, c, ppl)
    assert r["size_ratio"] == pytest.approx(Z.serialized_bytes(c) / Z.serialized_bytes(model))
    assert r["compression_factor"] == pytest.approx(1 / r["size_ratio"])
    assert r["quality_before"] == pytest.approx(ppl(model))
    assert r["quality_change"] == pytest.approx((r["quality_after"] - r["quality_before"]) / r["quality_before"])


def test_bad_compression_input_is_a_user_error(model):
    with pytest.raises(UserError, match="calibration"):
        Z.compress_eitp(model, calib_batches=[])
    with pytest.raises(UserError, match="prune_amount"):
        Z.compress_eitp(model, calib_batches=[ids()], prune_amount=1.5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compress_eitp_distils_where_the_model_is_and_quantizes_on_cpu(model, precision):
    """Distillation runs on the trained model's device under the suite's precision; the teacher (the trained
    model) keeps its weights and its mode; the artefact is on CPU and says where it was distilled."""
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        c = Z.compress_eitp(model, calib_batches=[ids(3)], prune_amount=0.3, distill_steps=2, precision=precision)
        assert model.training
    finally:
        model.eval()  # the module's shared fixture
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert c.eitp_compression["distill_device"] == next(model.parameters()).device.type == "cpu"
    assert c.eitp_compression["distill_precision"] == precision
    assert {p.device.type for p in c.parameters()} <= {"cpu"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_compress_eitp_distils_on_the_gpu(model):
    gpu_model = model.to("cuda")
    c = Z.compress_eitp(gpu_model, calib_batches=[ids(3)], prune_amount=0.3, distill_steps=2, precision="bf16")
    assert c.eitp_compression["distill_device"] == "cuda"
    assert {p.device.type for p in c.parameters()} <= {"cpu"}  # int8 kernels are CPU-only
    assert c(ids(4).to("cpu")).logits.isfinite().all()

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


def test_serialized_bytes_is_the_file_size(model, tmp_path):
    path = tmp_path / "model.pt"  # torch.save embeds the stem in the archive
    torch.save(model.state_dict(), path)
    assert Z.serialized_bytes(model) == os.path.getsize(path)


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


def test_quantization_reaches_the_blocks(model):
    q = Z.quantize_int8_dynamic(model)
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from transformers.pytorch_utils import Conv1D

    block_modules = list(q.transformer.h.modules())
    assert sum(isinstance(m, QLinear) for m in block_modules) == 4 * 2  # qkv, proj, fc, proj per block
    assert not any(type(m) in (nn.Linear, Conv1D) for m in block_modules)
    assert type(q.lm_head) is nn.Linear  # tied to the embedding: left fp32 by default
    # blocks' Linear weights go int8; the embeddings stay fp32: shrink by that share, not 4×
    assert Z.serialized_bytes(q) < 0.5 * Z.serialized_bytes(model)
    x = ids()
    ref, got = model(x).logits, q(x).logits
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()
    assert type(model.transformer.h[0].attn.c_attn).__name__ == "Conv1D"  # original untouched


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


def test_compression_report_ratio_and_quality(model):
    c = Z.quantize_int8_dynamic(model)
    x = ids(6)

    def ppl(m):
        return math.exp(float(m(x, labels=x).loss))

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

import pytest
import torch

from eitp_bench.errors import UserError
from eitp_bench.workloads.models import SIZES, build_model, count_parameters


def tiny(seed=0, **kw):
    return build_model("tiny", vocab_size=97, n_positions=32, seed=seed, **kw)


def test_tiny_config_and_parameter_count_by_hand():
    m = tiny()
    c = m.config
    assert (c.n_layer, c.n_head, c.n_embd, c.vocab_size, c.n_positions) == (2, 2, 64, 97, 32)
    d, V, P, L = 64, 97, 32, 2
    # wte + wpe + per block (2 LayerNorms 4d, qkv 3d²+3d, proj d²+d, fc 4d²+4d, proj 4d²+d) + ln_f; lm_head tied
    assert count_parameters(m) == V * d + P * d + L * (12 * d * d + 13 * d) + 2 * d
    assert m.lm_head.weight.data_ptr() == m.transformer.wte.weight.data_ptr()


def test_seed_makes_init_reproducible():
    a, b, c = tiny(1), tiny(1), tiny(2)
    assert torch.equal(a.transformer.h[0].attn.c_attn.weight, b.transformer.h[0].attn.c_attn.weight)
    assert not torch.equal(a.transformer.h[0].attn.c_attn.weight, c.transformer.h[0].attn.c_attn.weight)


def test_sdpa_and_eager_attention_agree_and_dropout_is_set():
    ids = torch.randint(0, 97, (2, 12))
    sdpa, eager = tiny(attn_implementation="sdpa").eval(), tiny(attn_implementation="eager").eval()
    assert eager.config._attn_implementation == "eager"
    torch.testing.assert_close(sdpa(ids).logits, eager(ids).logits, atol=1e-5, rtol=1e-5)
    assert tiny(dropout=0.1).config.resid_pdrop == 0.1


def test_unknown_size_lists_sizes():
    with pytest.raises(UserError) as e:
        build_model("huge", vocab_size=97, n_positions=32, seed=0)
    assert "huge" in e.value.message and all(s in e.value.fix for s in SIZES)


def test_pretrained_from_local_directory(tmp_path):
    m = tiny(3)
    m.save_pretrained(tmp_path)
    loaded = build_model("tiny", vocab_size=97, n_positions=32, seed=0, pretrained=str(tmp_path))
    assert torch.equal(loaded.transformer.h[1].mlp.c_fc.weight, m.transformer.h[1].mlp.c_fc.weight)
    with pytest.raises(UserError, match="vocab_size"):
        build_model("tiny", vocab_size=50, n_positions=32, seed=0, pretrained=str(tmp_path))


def test_missing_pretrained_is_a_user_error_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="cannot load pretrained"):
        build_model("tiny", vocab_size=97, n_positions=32, seed=0, pretrained=str(tmp_path / "nope"))

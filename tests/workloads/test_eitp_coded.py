import math

import pytest
import torch

from eitp_bench.workloads import eitp_coded as K
from eitp_bench.workloads.compress import conv1d_to_linear
from eitp_bench.workloads.models import build_model
from eitp_bench.workloads.objectives import make_objective


@pytest.fixture()
def model():
    return build_model("tiny", vocab_size=97, n_positions=32, seed=0)


def test_three_forward_passes_and_the_third_without_gradient(model):
    grad_enabled = []
    hook = model.register_forward_hook(lambda *a: grad_enabled.append(torch.is_grad_enabled()))
    obj = make_objective("eitp-coded")
    ids = torch.randint(0, 97, (1, 16))
    total, c = obj.loss(model, ids, ids, step=0, epoch=0)
    hook.remove()
    assert len(grad_enabled) == obj.forward_passes_per_step == 3
    assert grad_enabled == [True, True, False]  # coherence pass runs under torch.no_grad()
    expect = c["task"] + c["path_norm"] + c["entropy"] + c["chaos"] + 0.1 * c["coherence"] + 0.1 * c["thermo"]
    assert float(total) == pytest.approx(expect, rel=1e-5)
    total.backward()
    assert model.transformer.wte.weight.grad.abs().sum() > 0


def test_coherence_term_contributes_no_gradient(model):
    ids = torch.randint(0, 97, (1, 16))
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    term = K.coded_coherence(out.hidden_states[-1], out.logits)
    assert not term.requires_grad


def test_reference_defaults_and_knobs():
    obj = make_objective("eitp-coded")
    # The reference's lr and clipping are training settings every arm shares, not the objective's.
    assert not hasattr(obj, "default_lr") and not hasattr(obj, "max_grad_norm")
    assert "lr" not in K.DEFAULTS and "max_grad_norm" not in K.DEFAULTS
    d = K.REFERENCE_DEFAULTS
    assert d["lr"] == 5e-5 and d["max_grad_norm"] == 0.1
    assert d["block_size_range"] == (16, 64) and d["max_grad_norm_range"] == (0.1, 0.3)
    assert d["batch_size"] == 1 and d["gradient_accumulation_steps"] == 16
    assert K.LOSS_WEIGHTS == dict(ce=1.0, path_norm=1.0, entropy=1.0, chaos=1.0, coherence=0.1, thermodynamic=0.1)


def test_path_norm_sees_only_lm_head_on_gpt2(model):
    assert [n for n, _ in K.path_norm_modules(model)] == ["lm_head"]
    # once Conv1D is converted to nn.Linear it would see every projection (4 per block)
    assert len(K.path_norm_modules(conv1d_to_linear(model))) == 1 + 4 * 2


def test_path_norm_box_counting_and_self_similarity_hand_values():
    assert float(K.path_norm(torch.tensor([[1.0, -2.0], [3.0, 0.0]]))) == 6.0
    # dense 16×16: box counts 256, 64, 16, 4 at scales 1, 2, 4, 8 → slope exactly −2
    assert float(K.box_counting_dimension(torch.ones(16, 16))) == pytest.approx(2.0, abs=1e-5)
    w = torch.randn(16, 16, requires_grad=True)
    assert not K.box_counting_dimension(w).requires_grad  # binarised: no gradient
    assert float(K.self_similarity(torch.full((8, 8), 3.0))) == pytest.approx(1.0, abs=1e-6)


def test_knife_entropy_hand_value_and_underflow():
    centers, weights, scales = torch.zeros(1, 3), torch.ones(1), torch.ones(1)
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # densities 1 and e^(−1/2)
    expect = -(math.log(1 + 1e-8) + math.log(math.exp(-0.5) + 1e-8)) / 2
    assert float(K.knife_entropy(x, centers, weights, scales)) == pytest.approx(expect, rel=1e-6)
    # GPT-2-sized hidden norms: density underflows, H = −log(1e-8), and no gradient reaches h
    h = (torch.randn(8, 768) * 3).requires_grad_()
    g = torch.Generator().manual_seed(0)
    H = K.knife_entropy(h, torch.randn(10, 768, generator=g) * 0.1, torch.full((10,), 0.1), torch.ones(10))
    assert float(H) == pytest.approx(-math.log(1e-8), rel=1e-6)
    (grad,) = torch.autograd.grad(H, h)
    assert grad.abs().max() == 0


def test_chaos_proxy_is_a_clamped_std_not_a_jacobian():
    h = torch.tensor([[[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]]])  # std_t per dim: 2 and 0 → mean 1
    assert float(K.std_lyapunov_proxy(h)) == pytest.approx(1.0)
    assert float(K.std_lyapunov_proxy(h * 10)) == 2.0  # clamped
    assert float(K.chaos_loss(torch.tensor([0.5]))) == pytest.approx(0.25 + 0.4)
    assert float(K.chaos_loss(torch.tensor([0.05]))) == pytest.approx(0.0025)


def test_thermodynamic_balance_is_the_live_term(model):
    h = torch.tensor([[[0.0, 2.0], [2.0, 0.0]]], requires_grad=True)  # per-feature var 2, 2 → mean 2
    lam = torch.tensor([[0.5]])
    t = K.thermodynamic_loss(model, h, lam)
    assert float(t["balance"]) == pytest.approx((math.log(2.0) + 0.5) ** 2, rel=1e-6)
    # FLOPs = lm_head only (64·97): the energy term's gradient is ~1/FLOPs² smaller
    assert K.reference_flops(model) == 64 * 97
    assert not t["hardware"].requires_grad


def test_hypernetwork_is_untrained_and_sigmoid_bounded(model):
    obj = make_objective("eitp-coded", {"hypernetwork_dropout": 0.0})
    ids = torch.randint(0, 97, (1, 16))
    _, c = obj.loss(model, ids, ids, step=0, epoch=0)
    assert 0.0 < c["hypernet_lambda"] < 1.0
    model_params = {id(p) for p in model.parameters()}
    assert all(id(t) not in model_params for t in (obj._state["w1"], obj._state["w2"]))
    assert not obj._state["w1"].requires_grad  # nothing would ever train it

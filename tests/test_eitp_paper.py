import math

import pytest
import torch
from scipy import constants

from eitp_bench.errors import UserError
from eitp_bench.workloads import eitp_paper as P
from eitp_bench.workloads.models import build_model
from eitp_bench.workloads.objectives import ARMS, make_objective


@pytest.fixture(scope="module")
def model():
    return build_model("tiny", vocab_size=97, n_positions=32, seed=0)


def test_temperature_schedule_values():
    assert P.temperature(0, 1.0, 0.1, 0.5) == 1.0
    assert P.temperature(3, T0=2.0, beta=0.5, gamma=2.0) == pytest.approx(2.0 / 2.5**2)  # 0.32
    assert P.temperature(8, T0=1.0, beta=1.0, gamma=0.5) == pytest.approx(1 / 3)


def test_iem_and_landauer_thermo_with_scipy_kb():
    assert P.iem(0.1, 6.0, 0.5, 0.8) == pytest.approx(0.24)
    e_min = constants.k * 1.0 * math.log(2) * 6.0
    assert P.landauer_e_min(6.0, 1.0) == pytest.approx(e_min, rel=1e-12)
    assert P.thermo_loss(0.05, 6.0, 1.0) == pytest.approx(0.05 - e_min, rel=1e-12)
    # With the paper's dimensionless T = 1 one bit "costs" 9.57e-24 J: physically meaningless.
    assert P.landauer_e_min(1.0, 1.0) == pytest.approx(9.5699e-24, rel=1e-4)
    # At a real bath temperature it is the Landauer energy per bit, 2.87e-21 J at 300 K.
    assert P.landauer_e_min(1.0, 300.0) == pytest.approx(2.8710e-21, rel=1e-4)
    assert float(P.thermo_loss(torch.tensor(0.0), 2.0, 300.0)) == pytest.approx(2 * 2.8710e-21, rel=1e-4)


def test_coherence_is_cos_squared_and_handles_complex():
    assert float(P.coherence(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0]))) == pytest.approx(0.5)
    assert float(P.coherence(torch.tensor([3.0, 4.0]), torch.tensor([4.0, 3.0]))) == pytest.approx(24**2 / 625)
    assert float(P.coherence(torch.tensor([1.0, 2.0]), torch.tensor([-2.0, -4.0]))) == pytest.approx(1.0)
    assert float(P.coherence(torch.tensor([1 + 0j, 1j]), torch.tensor([1 + 0j, 0j]))) == pytest.approx(0.5)
    # pairs (e1, e1+e2) → 0.5, (e1+e2, e2) → 0.5, (e2, 2·e2) → 1
    h = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 2.0]]])
    assert float(P.sequence_coherence(h)) == pytest.approx((0.5 + 0.5 + 1.0) / 3)


def test_coherence_loss_is_frobenius_of_corrcoef_minus_identity():
    # col1 = 2·col0 (r = 1); col2 = [0,1,0,1] has r = 1/√5 with both (hand-computed)
    x = torch.tensor([[1.0, 2.0, 0.0], [2.0, 4.0, 1.0], [3.0, 6.0, 0.0], [4.0, 8.0, 1.0]])
    assert float(P.coherence_loss(x[None])) == pytest.approx(math.sqrt(2 * 1.0 + 4 * 0.2), rel=1e-5)
    # uncorrelated (orthogonal, centred) features give R = I
    y = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert float(P.coherence_loss(y[None])) == pytest.approx(0.0, abs=1e-6)


def test_lyapunov_of_linear_maps_is_log_abs_a():
    z0, v0 = torch.randn(3, 5), torch.randn(3, 5)
    lam, logs = P.lyapunov_from_jvp([lambda x: 2.5 * x] * 3, z0, v0)
    assert float(lam) == pytest.approx(math.log(2.5), rel=1e-6)
    lam, _ = P.lyapunov_from_jvp([lambda x: -0.3 * x], z0, v0)
    assert float(lam) == pytest.approx(math.log(0.3), rel=1e-6)
    lam, _ = P.lyapunov_from_jvp([lambda x: 2.0 * x, lambda x: 8.0 * x], z0, v0)
    assert float(lam) == pytest.approx((math.log(2) + math.log(8)) / 2, rel=1e-6)


def test_lyapunov_of_tanh_uses_the_jacobian_at_the_point():
    z0, v0 = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0])
    lam, _ = P.lyapunov_from_jvp([torch.tanh], z0, v0)
    assert float(lam) == pytest.approx(math.log(1 - math.tanh(0.5) ** 2), rel=1e-6)


def test_soft_histogram_entropy_hand_values_and_gradient():
    assert float(P.soft_histogram_entropy(torch.tensor([0.0, 0.0, 1.0, 1.0]), bins=2)) == pytest.approx(1.0)
    assert float(P.soft_histogram_entropy(torch.tensor([0.0, 1.0, 2.0, 3.0]), bins=4)) == pytest.approx(2.0)
    assert float(P.soft_histogram_entropy(torch.full((5,), 3.0), bins=8)) == 0.0
    # element-weighted mean: 1 bit over 4 values, 0 bits over 4 values → 0.5 bit/parameter
    H = P.parameter_entropy([torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.full((4,), 5.0)], bins=2)
    assert float(H) == pytest.approx(0.5)
    w = torch.tensor([0.0, 0.3, 0.4, 1.0], requires_grad=True)
    P.soft_histogram_entropy(w, bins=3).backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_block_lyapunov_matches_finite_differences(model):
    model.eval()
    ids = torch.randint(0, 97, (1, 10))
    hs = model(ids, output_hidden_states=True).hidden_states
    block = model.transformer.h[0]
    mask = P.causal_mask(10, hs[0])
    # the causal mask makes a lone block reproduce the model's own next hidden state
    torch.testing.assert_close(block(hs[0], attention_mask=mask), hs[1], atol=1e-5, rtol=1e-5)
    # λ from the JVP equals λ from a central finite difference of the same blocks
    g = torch.Generator().manual_seed(7)
    v = torch.randn(hs[0].shape, generator=g)
    v = v / v.norm()
    logs = []
    with torch.no_grad():
        for i, b in enumerate(model.transformer.h):
            eps = 1e-3
            jv = (b(hs[i] + eps * v, attention_mask=mask) - b(hs[i] - eps * v, attention_mask=mask)) / (2 * eps)
            logs.append(math.log(float(jv.norm())))
            v = jv / jv.norm()
    lam = P.block_lyapunov(model, hs, n_sequences=1, seed=7)
    assert float(lam) == pytest.approx(sum(logs) / len(logs), abs=2e-3)


def test_paper_terms_carry_gradients_to_block_weights(model):
    model.train()
    ids = torch.randint(0, 97, (2, 12))
    out = model(ids, output_hidden_states=True)
    w = model.transformer.h[0].attn.c_attn.weight
    for term in (
        P.block_lyapunov(model, out.hidden_states) ** 2,
        P.coherence_loss(out.hidden_states[-1]),
        P.sequence_coherence(out.hidden_states[-1]),
        P.parameter_entropy(model.parameters(), 64),
    ):
        (grad,) = torch.autograd.grad(term, w, retain_graph=True, allow_unused=True)
        assert grad is not None and grad.abs().sum() > 0


def test_paper_objective_one_forward_and_total_from_components(model):
    calls = []
    hook = model.register_forward_hook(lambda *a: calls.append(1))
    obj = make_objective("eitp-paper", {"lambda_chaos": 0.5, "beta": 1.0, "gamma": 1.0})
    ids = torch.randint(0, 97, (2, 12))
    total, c = obj.loss(model, ids, ids, step=3, epoch=1)
    hook.remove()
    assert len(calls) == obj.forward_passes_per_step == 1
    assert not hasattr(obj, "default_lr") and "lr" not in P.DEFAULTS
    assert c["temperature"] == pytest.approx(0.5)
    assert c["iem"] == pytest.approx(0.1 * c["entropy_bits"] * 0.5 * c["coherence_C"], rel=1e-5)
    assert c["chaos"] == pytest.approx(c["lyapunov"] ** 2, rel=1e-5)
    expect = c["task"] + 0.1 * c["thermo"] + 0.5 * c["chaos"] + 0.1 * c["coherence"]
    assert float(total) == pytest.approx(expect, rel=1e-5)
    total.backward()
    assert model.transformer.h[1].mlp.c_fc.weight.grad.abs().sum() > 0
    model.zero_grad()


def test_make_objective_errors_and_baseline():
    with pytest.raises(UserError) as e:
        make_objective("eitp-magic")
    assert all(a in e.value.fix for a in ARMS)
    with pytest.raises(UserError, match="lambda_x"):
        make_objective("eitp-paper", {"lambda_x": 1})
    base = make_objective("baseline")
    assert base.forward_passes_per_step == 1


@pytest.mark.parametrize("arm,term", [("eitp-paper-thermo", "thermo"), ("eitp-paper-chaos", "chaos"),
                                      ("eitp-paper-coherence", "coherence")])
def test_ablation_arm_is_task_loss_plus_one_term(model, arm, term):
    ids = torch.randint(0, 97, (2, 12))
    obj = make_objective(arm)
    total, c = obj.loss(model, ids, ids, step=0, epoch=0)
    others = {"thermo", "chaos", "coherence"} - {term}
    assert term in c and not (others & set(c))
    lam = obj.config[f"lambda_{term}"]
    assert float(total) == pytest.approx(c["task"] + lam * c[term], rel=1e-5)
    full = make_objective("eitp-paper")
    _, cf = full.loss(model, ids, ids, step=0, epoch=0)
    assert c[term] == pytest.approx(cf[term], rel=1e-4)  # the same term as in the full objective

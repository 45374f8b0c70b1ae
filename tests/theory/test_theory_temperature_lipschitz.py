"""ML temperature (dimensionless), activation work efficiency, and the Lipschitz profile."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from eitp_bench.theory import ml_temperature as mt
from eitp_bench.theory.lipschitz import WITHDRAWN, block_profile, finite_difference_ratio, jacobian_spectral_norm


def test_eta_relu_is_exactly_half_at_every_scale():
    for q in (0.01, 1.0, 100.0):
        assert mt.activation_efficiency("relu", q) == pytest.approx(0.5, abs=1e-12)
        assert mt.activation_efficiency("identity", q) == pytest.approx(1.0, abs=1e-12)


def test_eta_limits_of_scale_dependent_activations():
    # tanh ≈ identity near 0 → η → 1; sigmoid ≈ ½ + z/4 near 0 → E[σ²] ≈ ¼ so η ≈ 1/(4q)
    assert mt.activation_efficiency("tanh", 1e-4) == pytest.approx(1.0, abs=1e-3)
    assert mt.activation_efficiency("sigmoid", 1e-4) == pytest.approx(1 / (4e-4), rel=1e-3)
    # GELU(z) = z·Φ(z) → z²/4 near 0 → η → ¼; → ReLU for large q → η → ½
    assert mt.activation_efficiency("gelu", 1e-6) == pytest.approx(0.25, abs=1e-3)
    assert mt.activation_efficiency("gelu", 10.0) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("q", [0.1, 1.0, 10.0])
def test_eta_matches_adaptive_quadrature(name, q):
    from scipy.integrate import quad

    f = mt._ACTIVATIONS[name]
    density = lambda z: math.exp(-z * z / (2 * q)) / math.sqrt(2 * math.pi * q)  # noqa: E731
    span = 40 * math.sqrt(q)
    ref = quad(lambda z: float(f(np.array(z))) ** 2 * density(z), -span, span, points=[0], limit=200)[0] / q
    assert mt.activation_efficiency(name, q) == pytest.approx(ref, rel=1e-3)


def test_gaussian_entropy_and_global_temperature():
    w = torch.tensor([1.0, -1.0] * 8)  # variance 1 exactly
    assert mt.gaussian_entropy_nats(w) == pytest.approx(16 * 0.5 * math.log(2 * math.pi * math.e))
    out = mt.temperatures_between(2.0, 1.0, {"a": 10.0, "b": 5.0}, {"a": 12.0, "b": 5.0})
    assert out["per_layer"]["a"] == pytest.approx(0.5)  # −(1 − 2)/(12 − 10)
    assert out["per_layer"]["b"] is None  # ΔS = 0: undefined, not infinite
    assert out["global"]["value"] == pytest.approx(0.5)
    assert out["global"]["temperature_k"] is None and "never put into k_B·T" in out["global"]["notes"][0]


def test_local_temperature_by_hand():
    # W = [[1,−1],[1,−1]] has variance 1; inputs [1,2], [3,0] give E‖a‖² = (5 + 9)/2 = 7; d = 2
    # T = 2·σ²·E‖a‖²/d = 2·1·7/2 = 7
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -1.0], [1.0, -1.0]]))
    temps = mt.local_temperatures(nn.Sequential(lin), torch.tensor([[1.0, 2.0], [3.0, 0.0]]))
    assert temps == {"0": pytest.approx(7.0)}


def test_spectral_norm_of_a_known_linear_block():
    # A = R·diag(3, 0.5)·Rᵀ has ‖A‖₂ = 3 whatever the rotation R.
    c, s = math.cos(0.3), math.sin(0.3)
    rot = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    a = rot @ torch.diag(torch.tensor([3.0, 0.5], dtype=torch.float64)) @ rot.T
    fn = lambda h: h @ a.T  # noqa: E731 — applied to every row of a (seq, d) state
    h = torch.randn(4, 2, dtype=torch.float64)
    assert jacobian_spectral_norm(fn, h, iters=100) == pytest.approx(3.0, rel=1e-6)
    rho = finite_difference_ratio(fn, h, directions=16)
    assert 0.5 <= rho <= 3.0


def test_gpt2_block_profile_says_withdrawn():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=16,
                                       bos_token_id=49, eos_token_id=49))
    rows = block_profile(model, torch.randint(0, 50, (1, 8)), iters=10)
    assert [r["block"] for r in rows] == [0, 1]
    for r in rows:
        j = r["jacobian_spectral_norm"]
        assert j["value"] > 0 and math.isfinite(j["value"])
        assert WITHDRAWN in j["notes"] and "WITHDRAWN" in j["source"]
        assert "WITHDRAWN" in r["finite_difference_ratio"]["source"]
        # a local estimate: the finite-difference ratio cannot exceed the spectral norm (small δ)
        assert r["finite_difference_ratio"]["value"] <= j["value"] * 1.01
    assert model.transformer.h[0].attn.c_attn.weight.dtype == torch.float32  # the model is untouched


def test_temperature_trajectory_over_checkpoints():
    # Scaling a layer's weights by c adds n·ln c nats: 4 weights × ln 2 between the checkpoints.
    a = nn.Linear(2, 2, bias=False)
    b = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([[1.0, -1.0], [1.0, -1.0]]))
        b.weight.copy_(2 * a.weight)
    (step,) = mt.temperature_trajectory([(3.0, a), (2.0, b)])
    assert step["per_layer"]["weight"] == pytest.approx(1.0 / (4 * math.log(2)))

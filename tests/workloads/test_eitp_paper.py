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


# ---- H(θ) computed in batches equals H(θ) from its definition, tensor by tensor ----------------


def reference_entropy_bits(values: torch.Tensor, bins: int) -> torch.Tensor:
    """The definition, one tensor at a time (the straightforward form the batched code replaced)."""
    x = values.reshape(-1).float()
    lo, hi = float(x.detach().min()), float(x.detach().max())
    if bins < 2 or x.numel() < 2 or hi <= lo:
        return x.sum() * 0.0
    u = (x - lo) / (hi - lo) * (bins - 1)  # distance from the lowest bin centre, in bins
    left = u.detach().floor().clamp(0, bins - 2)
    frac = u - left
    centres = torch.arange(bins, dtype=x.dtype)
    # each value gives 1 − frac to its left centre and frac to the right one (a one-hot sum, no scatter)
    counts = ((1.0 - frac)[:, None] * (left[:, None] == centres)).sum(0) + (
        frac[:, None] * (left[:, None] == centres - 1)
    ).sum(0)
    p = counts / x.numel()
    p = p[p > 0]
    return -(p * torch.log2(p)).sum()


def reference_parameter_entropy(params, bins: int) -> torch.Tensor:
    params = list(params)
    return sum(reference_entropy_bits(p, bins) * p.numel() for p in params) / sum(p.numel() for p in params)


def perturbed_tiny_model(seed: int):
    m = build_model("tiny", vocab_size=97, n_positions=32, seed=seed)
    with torch.no_grad():  # a trained model's LayerNorms and biases are no longer constant
        for i, p in enumerate(m.parameters()):
            if i % 3:
                p.add_(0.01 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("bins", [2, 7, 64])
def test_batched_entropy_equals_the_definition_value_and_gradient(bins):
    m = perturbed_tiny_model(1)
    params = list(m.parameters())
    # constant tensors (LayerNorm weights at 1, biases at 0), one value, ties at min and max
    params += [torch.ones(5, requires_grad=True), torch.tensor([2.0], requires_grad=True),
               torch.tensor([0.0, 0.0, 3.0, 3.0, 1.5], requires_grad=True)]
    assert sum(float(p.detach().max() - p.detach().min()) == 0 for p in params) >= 3
    for group_elements in (1 << 25, 3000):  # one batch, and many (the grouping must not matter)
        new = P.parameter_entropy(params, bins, group_elements=group_elements)
        ref = reference_parameter_entropy(params, bins)
        assert float(new) == pytest.approx(float(ref), rel=1e-6)
        g_new = torch.autograd.grad(new, params, allow_unused=True)
        g_ref = torch.autograd.grad(ref, params, allow_unused=True)
        for p, a, b in zip(params, g_new, g_ref):
            a = torch.zeros_like(p) if a is None else a
            b = torch.zeros_like(p) if b is None else b
            # A value's gradient is a difference of two neighbouring bins' log p: float32 rounding of
            # the counts (summed in another order) leaves ~1e-5 of the tensor's largest gradient
            # (both float32 forms differ that much from float64); a wrong bin or span is off by O(1).
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4 * float(b.abs().max()) + 1e-12)


def test_batched_entropy_per_tensor_values():
    ts = [torch.tensor([0.0, 0.0, 1.0, 1.0]), torch.full((3,), 7.0), torch.tensor([0.0, 1.0, 2.0, 3.0])]
    torch.testing.assert_close(P.tensor_entropies(ts, bins=4), torch.stack([reference_entropy_bits(t, 4) for t in ts]))
    assert P.tensor_entropies(ts, bins=1).tolist() == [0.0, 0.0, 0.0]


def test_thermo_term_makes_no_host_synchronisation():
    """No `.item()`/bool()/float() of a tensor and no boolean indexing in the loss or its backward."""
    from torch.utils._python_dispatch import TorchDispatchMode

    syncing = {"_local_scalar_dense", "nonzero", "masked_select", "is_nonzero", "equal"}

    class SyncCounter(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.calls = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ in syncing:
                self.calls.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    m = perturbed_tiny_model(2)
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(0))
    for arm in ("eitp-paper-thermo", "eitp-paper-coherence", "eitp-paper-chaos"):
        obj = make_objective(arm)
        with SyncCounter() as counter:
            total, _ = obj.loss(m, ids, ids, step=0, epoch=0)
            total.backward()
        assert counter.calls == [], arm
        m.zero_grad()
    with SyncCounter() as counter:  # the counter does see a sync: the old per-tensor min/max check
        reference_entropy_bits(torch.tensor([0.0, 1.0]), 2)
    assert "_local_scalar_dense" in counter.calls


def test_paper_losses_unchanged_along_a_training_run(monkeypatch):
    """Fixed seed, 4 AdamW steps: at every step's weights the loss and its gradients equal those with
    H(θ) from the definition. (Compared at the same weights: float32 rounding alone, even one ulp
    of H, moves the weights a noise-driven gradient touches, e.g. a key bias whose true gradient is
    0, so two whole trajectories part by ~1e-5 after a step whatever the implementation.)"""
    batched = P.parameter_entropy
    reference = lambda params, bins: reference_parameter_entropy(params, bins)  # noqa: E731
    for arm in ("eitp-paper-thermo", "eitp-paper"):
        m = build_model("tiny", vocab_size=97, n_positions=32, seed=3)
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        obj = make_objective(arm)
        g = torch.Generator().manual_seed(4)
        entropies = []
        for step in range(4):
            ids = torch.randint(0, 97, (2, 12), generator=g)
            found = {}
            for which, entropy in (("reference", reference), ("batched", batched)):
                monkeypatch.setattr(P, "parameter_entropy", entropy)
                opt.zero_grad()
                total, c = obj.loss(m, ids, ids, step=step, epoch=step / 2)
                total.backward()
                found[which] = (float(total), c["thermo"], c["entropy_bits"]), [p.grad.clone() for p in m.parameters()]
            (new, new_grads), (ref, ref_grads) = found["batched"], found["reference"]
            assert new == pytest.approx(ref, rel=1e-6), (arm, step)
            for a, b in zip(new_grads, ref_grads):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4 * float(b.abs().max()) + 1e-12)
            entropies.append(new[2])
            opt.step()  # with the batched form's gradients, as training takes it
        assert len(set(entropies)) == 4  # the weights moved, so H did: each step compares a new state


def test_correlation_is_torch_corrcoef():
    g = torch.Generator().manual_seed(5)
    rows = torch.randn(6, 40, generator=g)
    rows[2] = 3.0 * rows[0] - 1.0  # r = 1 exactly: clipped to 1 like corrcoef
    rows[4] = 2.0  # constant: NaN in both (coherence_loss counts it as 0)
    torch.testing.assert_close(P.correlation(rows), torch.corrcoef(rows), equal_nan=True, rtol=1e-6, atol=1e-7)

"""Transition counts on a hand-built ReLU MLP, functional activations, and the Landauer bound."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from eitp_bench.theory.constants import landauer_j_per_bit
from eitp_bench.theory.landauer import compare_measured, count_transitions, landauer_bound_per_inference


class HandMLP(nn.Module):
    """Layer 1 is an nn.ReLU module; layer 2 uses functional F.relu (invisible to module hooks)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2, 3, bias=False)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(3, 2, bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]))
            self.fc2.weight.copy_(torch.tensor([[1.0, 1.0, -1.0], [-1.0, 0.0, 1.0]]))

    def forward(self, x):
        return F.relu(self.fc2(self.act(self.fc1(x))))


# Inputs in stream order, worked by hand (s = 1[z > 0]; a zero pre-activation is inactive):
#   x=[ 1, 2]: z1=[ 1, 2,-1] s1=[1,1,0]  h=[1,2,0]  z2=[ 3,-1] s2=[1,0]
#   x=[-1, 1]: z1=[-1, 1,-2] s1=[0,1,0]  h=[0,1,0]  z2=[ 1, 0] s2=[1,0]
#   x=[ 2, 1]: z1=[ 2, 1, 1] s1=[1,1,1]  h=[2,1,1]  z2=[ 2,-1] s2=[1,0]
#   x=[-1,-1]: z1=[-1,-1, 0] s1=[0,0,0]  h=[0,0,0]  z2=[ 0, 0] s2=[0,0]
# (a) reset: layer 1 has 2+1+3+0 = 6 active, layer 2 1+1+1+0 = 3 → 9/4 = 2.25 per inference
# (b) flips: layer 1 1+2+3 = 6 over 3 pairs = 2; layer 2 0+0+1 = 1 over 3 pairs = 1/3 → 7/3
# (c) entropy: p1 = [1/2, 3/4, 1/4] → 1 + 2·H_b(3/4); p2 = [3/4, 0] → H_b(3/4); H_b(3/4) = 0.811278…
X = torch.tensor([[1.0, 2.0], [-1.0, 1.0], [2.0, 1.0], [-1.0, -1.0]])
HB34 = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))


def test_hand_mlp_all_three_conventions():
    counts = count_transitions(HandMLP(), X)
    assert counts.inferences == 4
    assert counts.gated_units == 5
    assert counts.reset == pytest.approx(2.25)
    assert counts.flips == pytest.approx(7 / 3)
    assert counts.entropy_bits == pytest.approx(1 + 3 * HB34)


def test_functional_relu_is_counted_once_and_module_relu_not_twice():
    sites = {s.name: s for s in count_transitions(HandMLP(), X).sites}
    # nn.ReLU calls F.relu inside: it must appear once, as the module, not again as a functional site.
    assert set(sites) == {"act", "functional:relu#0"}
    assert sites["functional:relu#0"].active_per_inference == pytest.approx(3 / 4)
    assert sites["act"].flips_per_inference == pytest.approx(2.0)


def test_stream_carries_across_batches():
    split = count_transitions(HandMLP(), [X[:2], X[2:]])
    assert split.flips == pytest.approx(7 / 3)
    assert split.reset == pytest.approx(2.25)


def test_tokens_of_a_sequence_are_consecutive_inferences():
    # One sequence (batch 1, 3 tokens, 2 units) straight into a ReLU: s = [1,0],[1,1],[0,1]
    z = torch.tensor([[[1.0, -1.0], [2.0, 3.0], [-1.0, 1.0]]])
    counts = count_transitions(nn.ReLU(), z)
    assert counts.reset == pytest.approx(4 / 3)  # 1 + 2 + 1 active over 3 tokens
    assert counts.flips == pytest.approx(1.0)  # 1 flip then 1 flip over 2 pairs


def test_injective_counts_zero_and_gelu_is_a_labelled_proxy():
    model = nn.Sequential(nn.Tanh(), nn.GELU())
    counts = count_transitions(model, X)
    kinds = {s.activation: s for s in counts.sites}
    assert kinds["Tanh"].kind == "injective" and kinds["Tanh"].active_per_inference == 0
    assert kinds["GELU"].kind == "proxy"
    # GELU's input is tanh(X): its sign gate equals X's → 2+1+2+0 = 5 active over 4 rows
    assert kinds["GELU"].active_per_inference == pytest.approx(1.25)
    assert any("proxy" in n for n in counts.notes)


def test_bound_is_kT_ln2_times_count_and_ratio():
    counts = count_transitions(HandMLP(), X)
    reset, flips, entropy = landauer_bound_per_inference(counts, 300.0)
    assert reset.value == pytest.approx(landauer_j_per_bit(300.0) * 2.25)
    assert flips.value == pytest.approx(landauer_j_per_bit(300.0) * 7 / 3)
    assert entropy.operationalisation and not reset.operationalisation
    assert reset.temperature_k == 300.0 and reset.unit == "J/inference"
    ratio = compare_measured(1e-3, reset)
    assert ratio.value == pytest.approx(1e-3 / reset.value)


def test_gpt2_mlp_activation_is_found():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=50, n_positions=16,
                                       bos_token_id=49, eos_token_id=49))
    counts = count_transitions(model, torch.randint(0, 50, (2, 8)))
    names = [s.name for s in counts.sites]
    assert names == ["transformer.h.0.mlp.act", "transformer.h.1.mlp.act"]
    assert counts.inferences == 16 and counts.gated_units == 2 * 64
    assert 0 < counts.reset < 128 and 0 <= counts.entropy_bits <= 128

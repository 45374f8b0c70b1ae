"""H(θ) over storage codes, Miller–Madow, bin sensitivity, E_min and the theorem checks."""

import math

import numpy as np
import pytest
import torch
from scipy import constants
from torch import nn

from eitp_bench.errors import UserError
from eitp_bench.theory import param_entropy as pe
from eitp_bench.theory.constants import K_B, LN2, landauer_j_per_bit


def test_constants_are_exact_and_match_theory_md():
    assert K_B == constants.Boltzmann == 1.380649e-23
    assert LN2 == math.log(2)
    assert landauer_j_per_bit(300.0) == pytest.approx(2.871e-21, rel=1e-3)  # theory.md §0
    assert landauer_j_per_bit(293.15) == pytest.approx(2.805e-21, rel=1e-3)
    assert landauer_j_per_bit(310.0) == pytest.approx(2.967e-21, rel=1e-3)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "abc", None])
def test_bad_temperature_is_a_user_error(bad):
    with pytest.raises(UserError, match="kelvin"):
        landauer_j_per_bit(bad)


def test_known_histograms():
    assert pe.plugin_entropy_bits([7] * 256) == pytest.approx(8.0)  # uniform over 256 codes
    assert pe.plugin_entropy_bits([5, 5]) == pytest.approx(1.0)
    # counts [3, 1]: H = H_b(1/4) = 0.811278; Miller–Madow adds (K−1)/(2N) nats = 1/8 nat = 0.180337 bit
    assert pe.plugin_entropy_bits([3, 1]) == pytest.approx(0.8112781245)
    assert pe.miller_madow_correction_bits([3, 1, 0]) == pytest.approx(1 / (8 * math.log(2)))
    assert pe.miller_madow_entropy_bits([3, 1]) == pytest.approx(0.8112781245 + 0.1803368801)


def test_storage_codes_of_each_format():
    two = torch.tensor([0.5, -0.25] * 50)  # a two-code 50/50 tensor: 1 bit in every format
    for storage in ("fp32", "bf16", "fp16"):
        h = pe.code_entropy([two], storage)
        assert h["distinct_codes"] == 2 and h["parameters"] == 100
        assert h["plugin_bits_per_param"] == pytest.approx(1.0)
        assert h["miller_madow_bits_per_param"] == pytest.approx(1.0 + 1 / (200 * math.log(2)))
    # fp32 keeps codes that bf16 merges: 1 + 2^-20 and 1 differ in fp32, not in bf16
    close = torch.tensor([1.0, 1.0 + 2**-20])
    assert pe.code_entropy([close], "fp32")["distinct_codes"] == 2
    assert pe.code_entropy([close], "bf16")["distinct_codes"] == 1
    # int8: one row −127..127 (scaled) quantizes to each of the 255 codes once
    ramp = torch.arange(-127, 128, dtype=torch.float32).reshape(1, -1) * 0.01
    h8 = pe.code_entropy([ramp], "int8")
    assert h8["distinct_codes"] == 255
    assert h8["plugin_bits_per_param"] == pytest.approx(math.log2(255))


def test_bin_sensitivity_is_one_bit_per_halving():
    # For N(0,1), H_Δ ≈ h − log2 Δ with h = ½·log2(2πe) = 2.047 bits.
    w = torch.randn(400_000, generator=torch.Generator().manual_seed(0))
    rows = pe.binning_sensitivity([w], base_width=2**-8, steps=5)
    h = 0.5 * math.log2(2 * math.pi * math.e)
    for k, row in enumerate(rows):
        assert row["bin_width"] == pytest.approx(2 ** (k - 8))
        assert row["plugin_bits_per_param"] == pytest.approx(h + 8 - k, abs=0.03)
    diffs = np.diff([r["plugin_bits_per_param"] for r in rows])
    assert diffs == pytest.approx([-1.0] * 4, abs=0.01)


def test_e_min_for_a_two_code_model_and_the_t1_misuse():
    model = nn.Linear(10, 10, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([0.5, -0.5] * 50).reshape(10, 10))
    out = pe.e_min(model, 300.0)
    assert out["native_storage"] == "fp32"
    n = 100
    h1 = 1.0 + 1 / (2 * n * math.log(2))
    assert out["by_storage"]["fp32"]["e_min_j"]["value"] == pytest.approx(landauer_j_per_bit(300) * n * h1)
    assert out["by_storage"]["fp32"]["e_min_j"]["temperature_k"] == 300.0
    misuse = out["paper_t_1_misuse"]["j_per_bit"]
    assert misuse["value"] == pytest.approx(9.57e-24, rel=1e-3)
    assert "misuse" in " ".join(misuse["notes"])


def test_theorem_checks():
    none = pe.theorem_checks(None, 1e-12)
    assert none["theorem_2"]["verdict"] == none["theorem_3"]["verdict"] == "NOT MEASURED"
    open_eps = pe.theorem_checks(10.0, 1e-12)
    assert open_eps["theorem_2"]["verdict"] == "CONSISTENT"
    assert open_eps["theorem_2"]["ratio_measured_over_e_min"] == pytest.approx(1e13)
    assert open_eps["theorem_3"]["verdict"] == "UNTESTABLE"
    assert open_eps["theorem_3"]["implied_epsilon_j"] == pytest.approx(10.0)
    assert pe.theorem_checks(10.0, 1e-12, epsilon_j=5.0)["theorem_3"]["verdict"] == "VIOLATED"
    assert pe.theorem_checks(10.0, 1e-12, epsilon_j=20.0)["theorem_3"]["verdict"] == "CONSISTENT"
    assert pe.theorem_checks(1e-13, 1e-12)["theorem_2"]["verdict"] == "VIOLATED"


def test_fp32_codes_of_a_random_model_are_flagged_sample_limited():
    model = nn.Linear(100, 100, bias=False)  # 10,000 (almost all distinct) fp32 codes
    h = pe.e_min(model, 300.0)["by_storage"]["fp32"]
    assert h["entropy"]["plugin_bits_per_param"] <= math.log2(10_000) + 1e-9
    assert any("sample-limited" in n for n in h["h_bits_per_param"]["notes"])

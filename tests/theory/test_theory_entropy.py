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


def test_constants_are_exact_and_match_the_documented_figures():
    assert K_B == constants.Boltzmann == 1.380649e-23
    assert LN2 == math.log(2)
    assert landauer_j_per_bit(300.0) == pytest.approx(2.871e-21, rel=1e-3)  # docs/physical-floors.md §0
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


def test_fp32_codes_of_a_random_model_are_flagged_degenerate():
    model = nn.Linear(100, 100, bias=False)  # 10,000 (almost all distinct) fp32 codes
    out = pe.e_min(model, 300.0)
    h = out["by_storage"]["fp32"]
    assert h["entropy"]["plugin_bits_per_param"] <= math.log2(10_000) + 1e-9
    assert h["degenerate"] is True
    assert any("degenerate" in n for n in h["h_bits_per_param"]["notes"] + h["e_min_j"]["notes"])
    # bf16 is judged on the same data rule: 10,000 parameters are too few for 2^16 codes to be well sampled
    bf16 = out["by_storage"]["bf16"]["entropy"]
    assert out["by_storage"]["bf16"]["degenerate"] is (bf16["distinct_codes"] > 1000)


# 1024 distinct fp32 values that per-row absmax int8 maps onto 4 codes with counts 512, 256, 128, 128:
# int8 H = ½·1 + ¼·2 + ⅛·3 + ⅛·3 = 1.75 bits exactly. The absmax 1.27 makes the scale 0.01.
def _distinct_fp32_four_int8_codes() -> torch.Tensor:
    i = torch.arange(512, dtype=torch.float64)
    parts = [i * 1e-7,                           # code 0     (512)
             1.27 - i[:256] * 1e-6,              # code 127   (256); 1.27 is the absmax
             0.32 + i[:128] * 1e-6,              # code 32    (128)
             -0.64 - i[:128] * 1e-6]             # code −64   (128)
    return torch.cat(parts).float()


def test_n_distinct_fp32_values_are_degenerate_and_their_int8_codes_exact():
    w = _distinct_fp32_four_int8_codes()
    n = 1024
    fp32 = pe.code_entropy([w], "fp32")
    assert fp32["distinct_codes"] == n and fp32["degenerate"] is True
    assert fp32["plugin_bits_per_param"] == pytest.approx(10.0, abs=1e-12)  # log2 1024: every value its own bin
    assert fp32["miller_madow_bits_per_param"] == pytest.approx(10.0 + (n - 1) / (2 * n * math.log(2)), abs=1e-12)
    assert sorted(pe.code_counts([w], "int8")[pe.code_counts([w], "int8") > 0].tolist()) == [128, 128, 256, 512]
    int8 = pe.code_entropy([w], "int8")
    assert int8["distinct_codes"] == 4 and int8["degenerate"] is False
    assert int8["plugin_bits_per_param"] == pytest.approx(1.75, abs=1e-12)
    assert int8["miller_madow_bits_per_param"] == pytest.approx(1.75 + 3 / (2 * n * math.log(2)), abs=1e-12)


def test_bf16_entropy_of_a_known_distribution():
    # 128 bf16 codes (the integers 128..255: ulp 1 there), each hit by 16 distinct fp32 values v + k·0.02,
    # k = 0..15, that round to v: a uniform distribution over 128 codes, 7 bits; fp32 sees 2048 codes.
    v = torch.arange(128, 256, dtype=torch.float32).repeat_interleave(16)
    w = v + torch.arange(16, dtype=torch.float32).repeat(128) * 0.02
    bf16 = pe.code_entropy([w], "bf16")
    assert bf16["distinct_codes"] == 128 and bf16["parameters"] == 2048 and bf16["degenerate"] is False
    assert bf16["plugin_bits_per_param"] == pytest.approx(7.0, abs=1e-12)
    assert pe.code_entropy([w], "fp32")["degenerate"] is True


def test_degenerate_threshold_is_a_tenth_of_a_code_per_parameter():
    assert pe.DEGENERATE_CODES_PER_PARAM == 0.1
    assert pe.is_degenerate(100, 1000) is False and pe.is_degenerate(101, 1000) is True
    assert pe.is_degenerate(0, 0) is True  # no parameters: nothing to say


def test_e_min_per_storage_is_k_t_ln2_n_h_to_the_digit():
    class Holder(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(_distinct_fp32_four_int8_codes())

    out = pe.e_min(Holder(), 300.0)
    n = 1024
    e_l = 1.380649e-23 * 300.0 * math.log(2)
    h_int8 = 1.75 + 3 / (2 * n * math.log(2))
    h_fp32 = 10.0 + (n - 1) / (2 * n * math.log(2))
    assert out["by_storage"]["int8"]["e_min_j"]["value"] == pytest.approx(e_l * n * h_int8, rel=1e-12)
    assert out["by_storage"]["fp32"]["e_min_j"]["value"] == pytest.approx(e_l * n * h_fp32, rel=1e-12)
    assert out["by_storage"]["int8"]["e_min_j"]["unit"] == "J"
    assert out["by_storage"]["int8"]["e_min_j"]["temperature_k"] == 300.0
    assert out["by_storage"]["fp32"]["degenerate"] is True and out["by_storage"]["int8"]["degenerate"] is False


def test_metric_names_are_declared_once():
    assert pe.param_entropy_metric("bf16") == "param_entropy_bits@bf16"
    assert pe.e_min_metric_name("int8") == "e_min_j@int8"
    assert pe.degenerate_metric("fp32") == "param_entropy_degenerate@fp32"
    assert pe.PRIMARY_STORAGE == pe.REPORTED_STORAGES[0] == "bf16"

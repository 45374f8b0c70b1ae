"""Training floors against docs/physical-floors.md's worked figures; the energy ladder's order and ratios."""

import pytest

from eitp_bench.errors import UserError
from eitp_bench.theory import floors
from eitp_bench.theory.constants import landauer_j_per_bit
from eitp_bench.report.plots import ladder_svg
from eitp_bench.theory.ladder import ladder_rungs

E_L = landauer_j_per_bit(300.0)


def test_tkachenko_floor_matches_the_paper_scale():
    # docs/physical-floors.md §1: N = 1.24e8, D = 1e10 → ≥ 0.010 J  (2·1.24e8·1e10·1.380649e-23·300 = 0.01027)
    q = floors.tkachenko_training_floor(1.24e8, 1e10, 300.0)
    assert q.value == pytest.approx(2 * 1.24e8 * 1e10 * 1.380649e-23 * 300)
    assert q.value == pytest.approx(0.0103, rel=0.01)
    assert "tokens" in q.notes[0]


def test_write_once_and_state_overwrite():
    # docs/physical-floors.md §6 (i): 8e9 params × 16 bits → 3.7e-10 J
    assert floors.write_once_floor(8e9, 16, 300.0).value == pytest.approx(3.7e-10, rel=0.01)
    q = floors.state_overwrite_floor(100, 10, "bf16", 300.0)
    assert q.value == pytest.approx(10 * 100 * 128 * E_L)
    assert "fp32 master" in q.notes[0]
    with pytest.raises(UserError):
        floors.state_overwrite_floor(100, 10, "int3")
    with pytest.raises(UserError):
        floors.tkachenko_training_floor(-1, 10)


def test_ladder_sorted_with_ratios():
    profile = {"name": "H100 SXM", "sources": ["NVIDIA spec"],
               "energy_per_flop": {"joules": 7.1e-13, "basis": "derived: tdp_w / peak_flops.bf16"},
               "energy_per_byte_j": {"hbm": 4.8e-11}}
    rungs = ladder_rungs(300.0, profile=profile, joules_per_token=0.5, joules_per_step=20.0)
    assert [r["per"] for r in rungs] == ["bit", "FLOP", "byte", "token", "step"]
    assert rungs[0]["ratio_to_landauer"] == 1.0 and rungs[0]["ratio_to_previous"] is None
    assert rungs[1]["ratio_to_landauer"] == pytest.approx(7.1e-13 / E_L)  # ≈ 2.5e8, docs/physical-floors.md §5
    assert rungs[1]["ratio_to_landauer"] == pytest.approx(2.5e8, rel=0.02)
    assert rungs[2]["ratio_to_previous"] == pytest.approx(4.8e-11 / 7.1e-13)
    assert rungs[4]["ratio_to_previous"] == pytest.approx(40.0)
    assert "derived" in rungs[1]["source"] and rungs[3]["method"] == "measured"


def test_ladder_svg_is_inline_svg():
    svg = ladder_svg(ladder_rungs(300.0, joules_per_token=0.5))
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")

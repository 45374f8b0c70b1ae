"""`eitp-bench bounds` end to end."""

import json
import math

import pytest
import torch

from eitp_bench.cli import main


@pytest.fixture(autouse=True)
def one_thread():
    # The shared 2-core test machine oversubscribes badly with 2 intra-op threads.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def test_bounds_tiny_json(capsys):
    assert main(["bounds", "--model", "tiny", "--json", "--temperature", "300"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # exactly one JSON object: json.loads rejects trailing text
    assert isinstance(result, dict)
    assert all(math.isfinite(x) for x in _numbers(result))
    assert result["temperature"]["value"] == 300.0
    assert result["constants"]["landauer_j_per_bit"]["value"] == pytest.approx(2.871e-21, rel=1e-3)
    assert result["model"]["parameters"] > 0
    assert result["transitions"]["reset_per_inference"] > 0
    assert "WITHDRAWN" in result["lipschitz"]["withdrawn"]
    assert len(result["lipschitz"]["blocks"]) == 2
    # E_min is headlined over bf16 codes; tiny's fp32 codes are nearly all distinct: flagged degenerate
    e_min = result["e_min"]
    assert e_min["primary_storage"] == "bf16" and list(e_min["by_storage"]) == ["bf16", "int8", "fp32"]
    assert e_min["by_storage"]["fp32"]["degenerate"] is True
    assert e_min["by_storage"]["bf16"]["degenerate"] is False and e_min["by_storage"]["int8"]["degenerate"] is False
    assert any("degenerate" in n for n in e_min["by_storage"]["fp32"]["e_min_j"]["notes"])
    bf16_e_min = e_min["by_storage"]["bf16"]["e_min_j"]["value"]
    assert result["theorems"]["e_min_j"] == bf16_e_min and result["theorems"]["e_min_storage"] == "bf16"
    write_once = next(q for q in result["floors"]["quantities"] if q["name"] == "floor_write_once_j")
    assert write_once["value"] == bf16_e_min


def test_bounds_table_says_degenerate_beside_every_fp32_figure(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    assert main(["bounds", "--model", "tiny"]) == 0
    out = capsys.readouterr().out
    fp32_rows = [line for line in out.splitlines() if "_fp32" in line]
    assert len(fp32_rows) == 2  # H(θ) and E_min
    assert all("(degenerate)" in line for line in fp32_rows)
    assert not any("degenerate" in line for line in out.splitlines() if "_bf16" in line or "_int8" in line)


@pytest.mark.parametrize("bad", ["0", "-5", "abc", "nan"])
def test_bad_temperature_exits_2(bad, capsys):
    assert main(["bounds", "--model", "tiny", f"--temperature={bad}"]) == 2
    err = capsys.readouterr().err
    assert "temperature" in err and "kelvin" in err and "Traceback" not in err


def test_missing_model_directory(tmp_path, capsys):
    assert main(["bounds", "--model", str(tmp_path / "nowhere")]) == 2
    assert "local model directory" in capsys.readouterr().err


def test_bounds_text_prints_every_figure_the_json_has(capsys, monkeypatch):
    """The text tables and --json say the same things: ML temperatures, η_φ, theorems, transitions, E_min."""
    from eitp_bench.commands.bounds import _fmt

    monkeypatch.setenv("COLUMNS", "240")
    assert main(["bounds", "--model", "tiny", "--json", "--profile", "nvidia-h100-sxm"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert main(["bounds", "--model", "tiny", "--profile", "nvidia-h100-sxm"]) == 0
    text = capsys.readouterr().out
    figures = list(result["ml_temperature_local"]["per_layer"].items())
    figures += [(a["activation"], a["eta"]) for a in result["activation_efficiency"]]
    figures += [(s["name"], s["flips_per_inference"]) for s in result["transitions"]["sites"]]
    figures += [(k, v["h_bits_per_param"]["value"]) for k, v in result["e_min"]["by_storage"].items()]
    figures += [(f"{b['bin_width']:.4g}", b["plugin_bits_per_param"]) for b in result["e_min"]["binning_sensitivity"]]
    for name, value in figures:
        assert any(name in line and _fmt(value) in line for line in text.splitlines()), (name, value)
    for theorem in ("theorem_2", "theorem_3"):
        assert result["theorems"][theorem]["verdict"] in text
    assert "E[φ(z)²]/E[z²]" in text  # titles are text, not rich markup
    assert "Python" not in text and "None" not in text and "{'" not in text


@pytest.mark.parametrize("name", ["nvidia-h100-sxm", "NVIDIA-H100-SXM.yaml", "NVIDIA H100 SXM5 80GB"])
def test_hardware_profiles_by_id_file_stem_or_display_name(name):
    from eitp_bench.commands.bounds import _load_profile

    assert _load_profile(name)["name"] == "NVIDIA H100 SXM5 80GB"


def test_unknown_profile_lists_the_ids(capsys):
    assert main(["bounds", "--model", "tiny", "--profile", "nvidia-h900"]) == 2
    err = capsys.readouterr().err
    assert "no hardware profile named 'nvidia-h900'" in err and "nvidia-h100-sxm" in err and "Traceback" not in err

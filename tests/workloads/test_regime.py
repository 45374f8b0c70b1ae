"""The paper's regime without a network: `prepare` (mirror and a fake hub), the cached loaders,
`missing_assets`, and a whole `run` of pretrained "gpt2" on WikiText-shaped data.

A tiny GPT-2 and a tiny byte-level BPE stand in for `gpt2`, three small parquet files for
`Salesforce/wikitext` (tests/tiny_hub.py). Every Hugging Face variable points into tmp_path and
HF_ENDPOINT at a port nothing listens on, so a stray download fails instead of reaching the hub.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tiny_hub import FakeHub, hub_cache, mirror  # noqa: F401  (fixtures)

from eitp_bench.cli import main
from eitp_bench.errors import UserError
from eitp_bench.suite import DataConfig, load_suite
from eitp_bench.workloads import assets as A


@pytest.fixture
def cached(hub_cache, mirror) -> Path:
    """The tiny gpt2 and WikiText in the temporary hub cache, as `prepare standard --mirror` leaves them
    (at the revisions standard pins)."""
    for asset in A.suite_assets(load_suite("standard")):
        A.import_mirror(asset, mirror)
    return hub_cache


def test_the_cache_follows_hf_home_and_hf_hub_cache(tmp_path, monkeypatch):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert A.hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert A.hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert A.hub_cache_dir() == tmp_path / "hub"


# ----------------------------------------------------------------------------- prepare


def test_prepare_mirror_fills_the_hub_layout_once(hub_cache, mirror, capsys):
    assert main(["prepare", "standard", "--mirror", str(mirror)]) == 0
    out = capsys.readouterr().out
    assert out.count("imported from") == 2 and str(hub_cache) in out and "kB" in out
    model = hub_cache / "models--gpt2"
    rev = (model / "refs" / "main").read_text()
    snap = model / "snapshots" / rev
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(A.snapshot_files(snap))
    assert (snap / "model.safetensors").is_symlink() and (snap / "model.safetensors").resolve().parent == model / "blobs"
    data = A.wikitext2_split_files("validation")
    assert [f.name for f in data] == ["validation-00000-of-00001.parquet"]
    assert A.missing_assets(load_suite("standard")) == []

    assert main(["prepare", "standard", "--mirror", str(mirror)]) == 0  # idempotent: same snapshot
    out = capsys.readouterr().out
    assert out.count("already cached, nothing downloaded") == 2 and "imported" not in out
    assert (model / "refs" / "main").read_text() == rev and len(list((model / "snapshots").iterdir())) == 1


def test_prepare_downloads_from_a_hub_and_then_stays_offline(hub_cache, mirror, monkeypatch, capsys):
    import huggingface_hub.constants

    if huggingface_hub.constants.HF_HUB_OFFLINE:  # fixed when huggingface_hub was first imported
        pytest.skip("HF_HUB_OFFLINE was set when huggingface_hub was imported")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with FakeHub(mirror) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        assert main(["prepare", "--model", "gpt2", "--data", "wikitext-2"]) == 0
        out = capsys.readouterr().out
        assert out.count(": downloaded") == 2
        fetched = [r for r in hub.requests if "/resolve/" in r]
        assert any(r.endswith("/model.safetensors") for r in fetched)
        assert any(r.endswith("wikitext-2-raw-v1/train-00000-of-00001.parquet") for r in fetched)
        assert not any(r.endswith("README.md") for r in fetched)  # allow_patterns: only what runs need
        seen = len(hub.requests)
        assert main(["prepare", "--model", "gpt2", "--data", "wikitext-2"]) == 0
        assert capsys.readouterr().out.count("already cached, nothing downloaded") == 2
        assert len(hub.requests) == seen  # nothing asked of the hub the second time
        # standard pins hub commits: those are fetched (the main snapshot is not them), then kept
        standard = load_suite("standard")
        assert main(["prepare", "standard"]) == 0
        capsys.readouterr()
        asked = hub.requests[seen:]
        assert any(f"/gpt2/resolve/{standard.model.revision}/model.safetensors" in r for r in asked)
        assert any(f"/Salesforce/wikitext/resolve/{standard.data.revision}/" in r for r in asked)
        seen = len(hub.requests)
        assert main(["prepare", "standard"]) == 0
        assert capsys.readouterr().out.count("already cached, nothing downloaded") == 2
        assert len(hub.requests) == seen
    assert A.missing_assets(standard) == []
    inputs = A.resolved_inputs(standard)
    assert inputs["model"]["revision"] == standard.model.revision == inputs["model"]["pinned"]
    assert inputs["data"]["revision"] == standard.data.revision and inputs["data"]["mirror"] is None
    assert (hub_cache / "models--gpt2" / "snapshots" / standard.model.revision / "model.safetensors").is_file()


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE=1", "closed port"])
def test_prepare_offline_is_one_clear_message(hub_cache, monkeypatch, capsys, offline):
    if offline == "closed port":
        monkeypatch.delenv("HF_HUB_OFFLINE")  # HF_ENDPOINT already points at a port nothing answers on
    code = main(["prepare", "standard"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    first, fix = err.strip().splitlines()
    assert first.startswith("eitp-bench: error: could not fetch the pretrained model 'gpt2'")
    assert "WikiText-2" in first
    assert "eitp-bench prepare standard" in fix and "--mirror DIR" in fix and str(hub_cache) in fix
    assert not (hub_cache / "models--gpt2" / "refs").exists()


def test_prepare_mirror_without_the_files_names_the_layout(hub_cache, tmp_path, capsys):
    (tmp_path / "empty-mirror" / "gpt2").mkdir(parents=True)
    assert main(["prepare", "--model", "gpt2", "--mirror", str(tmp_path / "empty-mirror")]) == 2
    err = capsys.readouterr().err
    assert "lacks config.json" in err and "Salesforce/wikitext/wikitext-2-raw-v1" in err


def test_prepare_of_a_synthetic_suite_fetches_nothing(hub_cache, capsys):
    assert main(["prepare", "smoke"]) == 0
    assert "needs nothing" in capsys.readouterr().out and not hub_cache.exists()


# ----------------------------------------------------------------------------- missing_assets


def test_missing_assets_lists_each_missing_piece(hub_cache, mirror, tmp_path):
    standard = load_suite("standard")
    missing = A.missing_assets(standard)
    assert [m["what"] for m in missing] == ["pretrained model 'gpt2' and its tokenizer", "data set WikiText-2 (raw)"]
    assert all(m["fix"] == "eitp-bench prepare standard" and str(hub_cache) in m["why"] for m in missing)

    model, data = A.suite_assets(standard)
    A.import_mirror(A.model_asset("gpt2", with_tokenizer=True), mirror)  # unpinned: not the commit standard pins
    [m, _] = A.missing_assets(standard)
    assert f"at the pinned revision {standard.model.revision}" in m["why"] and "model.revision=null" in m["why"]
    assert [m["what"] for m in A.missing_assets(load_suite("standard", ["model.revision=null"]))] == [
        "data set WikiText-2 (raw)"]
    A.import_mirror(model, mirror)
    assert [m["what"] for m in A.missing_assets(standard)] == ["data set WikiText-2 (raw)"]
    A.import_mirror(data, mirror)
    assert A.missing_assets(standard) == []

    # an override the bundled suite does not have: the hint names it
    medium = A.missing_assets(load_suite("standard", ["model.pretrained=gpt2-medium"]))
    assert medium[0]["what"] == "pretrained model 'gpt2-medium'" and medium[0]["fix"] == "eitp-bench prepare --model gpt2-medium"
    assert A.missing_assets(load_suite("smoke")) == []
    assert A.missing_assets(load_suite("standard", ["data.kind=markov", "model.pretrained=null"])) == []
    assert A.missing_assets(load_suite("standard", ["data.kind=markov"])) == []  # synthetic: fresh weights
    text = A.missing_assets(load_suite("smoke", ["data.kind=text_file", f"data.text_file={tmp_path / 'nope.txt'}"]))
    assert [m["what"] for m in text] == [f"text file '{tmp_path / 'nope.txt'}' (data.text_file)"]
    local = A.missing_assets(load_suite("standard", [f"model.pretrained={tmp_path / 'no-model'}"]))
    assert "does not exist" in local[0]["why"]


def test_an_incomplete_snapshot_is_missing(cached):
    snap = A.snapshot_dir("gpt2", "model")
    (snap / "model.safetensors").unlink()
    [m] = A.missing_assets(load_suite("standard"))
    assert "incomplete" in m["why"] and "model*.safetensors" in m["why"]


def test_missing_assets_is_cheap(cached):
    # The preflight calls it before every run: files only, no torch or transformers import.
    code = textwrap.dedent("""
        import sys
        from eitp_bench.suite import load_suite
        from eitp_bench.workloads.assets import missing_assets
        assert missing_assets(load_suite("standard")) == []
        heavy = [m for m in ("torch", "transformers", "huggingface_hub") if m in sys.modules]
        assert not heavy, heavy
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ----------------------------------------------------------------------------- the cached loaders


def test_wikitext2_blocks_are_gpt2_tokens_from_the_cache(cached):
    from eitp_bench.workloads.data import build_lm_data, local_gpt2_tokenizer, wikitext2_text

    data = build_lm_data(DataConfig(kind="wikitext2", tokenizer="gpt2", block_size=16), seed=0)
    tok = local_gpt2_tokenizer()
    assert data.vocab_size == len(tok) == 300 and data.source == "wikitext2"
    assert np.array_equal(data.val, tok(wikitext2_text("validation"))["input_ids"])
    assert data.val_blocks().shape == (len(data.val) // 16, 16)
    assert "Valkyria Chronicles" in tok.decode(data.train[:64])


def test_wikitext2_chunked_encoding_equals_the_whole_text(cached):
    from eitp_bench.workloads.data import local_gpt2_tokenizer, wikitext2_text, wikitext2_tokens

    tok = local_gpt2_tokenizer()
    whole = tok(wikitext2_text("train"), verbose=False)["input_ids"]
    chunked, _ = wikitext2_tokens("train", rows_per_chunk=3)  # ~130 chunk boundaries
    assert chunked.tolist() == whole


def test_pretrained_gpt2_loads_from_the_cache_only(cached):
    from eitp_bench.workloads.models import build_model

    model = build_model("small", vocab_size=300, n_positions=32, seed=0, pretrained="gpt2")
    assert model.config.n_layer == 2 and model.config.n_embd == 32  # the checkpoint, not SIZES["small"]


def test_without_the_cache_loaders_name_prepare(hub_cache):
    from eitp_bench.workloads.data import wikitext2_tokens
    from eitp_bench.workloads.models import build_model

    with pytest.raises(UserError, match="not in the local Hugging Face cache") as err:
        wikitext2_tokens("train")
    assert "eitp-bench prepare --data wikitext-2" in err.value.fix
    with pytest.raises(UserError, match="cannot load pretrained model 'gpt2'") as err:
        build_model("small", vocab_size=300, n_positions=32, seed=0, pretrained="gpt2")
    assert "eitp-bench prepare --model gpt2" in err.value.fix


# ----------------------------------------------------------------------------- end to end

SUITE = """
name: regime-e2e
arms: [baseline, eitp-paper]
tasks: [train, lm]
sizes: [small]
repetitions: 1
device: cpu
threads: 1
timeout_s: 300
meters: {interval: 0.1, idle_s: 0, timeline: false}
model: {pretrained: gpt2, revision: 607a30d783dfa663caf39e06633721c8d4cfcd7e}
data: {kind: wikitext2, tokenizer: gpt2, block_size: 16, revision: b08601e04326c79dfdd32d625aee71d232d685c3}
train: {steps: 3, batch_size: 4, eval_every: 3, eval_batches: 1, target_val_loss: 30.0, target_excess_nats: null}
generate: {prompt_len: 4, new_tokens: 4}
retrieval: {seq_len: 16, distances: [4, 8], n_keys: 2}
"""


@pytest.mark.slow  # two worker processes, each importing torch and transformers
def test_run_fine_tunes_cached_gpt2_on_cached_wikitext(cached, tmp_path, capsys):
    suite = tmp_path / "regime.yaml"
    suite.write_text(SUITE)
    out = tmp_path / "out"
    code = main(["run", str(suite), "--out", str(out), "--no-report", "--quiet"])
    assert code == 0, capsys.readouterr().err
    recs = [json.loads(p.read_text()) for p in out.glob("*.json") if p.name != "suite.json"]
    assert {(r["arm"], r["task"]) for r in recs} == {(a, t) for a in ("baseline", "eitp-paper") for t in ("train", "lm")}
    assert all(r["status"] == "ok" for r in recs), [r.get("error") for r in recs]
    metrics = {(r["arm"], r["task"]): {m["name"]: m["value"] for m in r["metrics"]} for r in recs}
    # The tiny checkpoint's own size, not SIZES["small"]: the weights came from the cache.
    n_params = metrics[("baseline", "train")]["parameters"]
    assert n_params < 100_000
    assert 0 < metrics[("baseline", "lm")]["val_loss"] < 10 and "optimal_ppl" not in metrics[("baseline", "lm")]
    # every record names the commits it read (the pinned ones, from the `cached` mirror import)
    for r in recs:
        inputs = r["provenance"]["hardware"]["inputs"]
        assert inputs["model"]["revision"] == "607a30d783dfa663caf39e06633721c8d4cfcd7e" == inputs["model"]["pinned"]
        assert inputs["data"]["revision"] == "b08601e04326c79dfdd32d625aee71d232d685c3"
        assert inputs["model"]["mirror"].startswith("imported from")
    # target 30 nats is above the untrained model's loss (≈ ln 300 ≈ 5.7): refused, with the reason
    train = next(r for r in recs if (r["arm"], r["task"]) == ("baseline", "train"))
    [target] = [m for m in train["metrics"] if m["name"] == "target_val_loss"]
    assert [f["code"] for f in target["flags"]] == ["target_not_below_zero_shot"]
    assert "target_reached" not in metrics[("baseline", "train")]
    assert metrics[("baseline", "train")]["zero_shot_val_loss"] < 30

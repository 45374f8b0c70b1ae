"""Reproducible inputs: pinned hub revisions, hub-name aliases, the quality target's calibration,
and a target at or above the zero-shot loss refused with its reason. No network: tiny hubs made in
tmp_path (tests/tiny_hub.py); the calibration runs the tiny model on the Markov corpus, on CPU."""

import math
from pathlib import Path

import pytest
import yaml
from synthetic_store import eitp_records, frames_from_records
from tiny_hub import hub_cache, mirror  # noqa: F401  (fixtures)

from eitp_bench.analysis.claims import INCONCLUSIVE, judge_claims, load_claims
from eitp_bench.runner.calibrate import target_from_pilots
from eitp_bench.cli import main
from eitp_bench.errors import UserError
from eitp_bench.flags import flag
from eitp_bench.records import Metric
from eitp_bench.suite import load_suite, suite_config_hash
from eitp_bench.suite.problems import SuiteInvalid
from eitp_bench.workloads import assets as A

REV = "abcdef0123456789abcdef0123456789abcdef01"


# ----------------------------------------------------------------------------- revisions in the suite


def test_bundled_suites_pin_hub_commits():
    for name in ("standard", "full"):
        s = load_suite(name)
        assert s.model.revision == "607a30d783dfa663caf39e06633721c8d4cfcd7e"  # openai-community/gpt2
        assert s.data.revision == "b08601e04326c79dfdd32d625aee71d232d685c3"  # Salesforce/wikitext
        assert [a.revision for a in A.suite_assets(s)] == [s.model.revision, s.data.revision]


def test_a_revision_is_a_commit_hash_and_an_unpinned_suite_hashes_as_before():
    with pytest.raises(SuiteInvalid, match="model.revision"):
        load_suite("standard", ["model.revision=main"])  # a branch moves: not reproducible
    with pytest.raises(SuiteInvalid, match="must be quoted"):
        load_suite("standard", ["model.revision=1111111111111111111111111111111111111111"])
    unpinned = load_suite("smoke")
    assert suite_config_hash(unpinned) == suite_config_hash(load_suite("smoke", ["model.revision=null"]))
    assert suite_config_hash(load_suite("smoke", [f"data.revision={REV}"])) != suite_config_hash(unpinned)
    # how the target was set is a note: it does not change the experiment's hash
    noted = load_suite("standard", ["train.target_source={method: user, note: mine}"])
    assert suite_config_hash(noted) == suite_config_hash(load_suite("standard"))


# ----------------------------------------------------------------------------- the cache


def test_a_cache_filled_under_openai_community_gpt2_serves_gpt2(hub_cache, mirror, tmp_path):
    from eitp_bench.workloads.data import local_gpt2_tokenizer
    from eitp_bench.workloads.models import build_model

    other = tmp_path / "mirror-owner"  # the same files under the hub's current name
    (other / "openai-community").mkdir(parents=True)
    (other / "openai-community" / "gpt2").symlink_to(mirror / "gpt2")
    snap = A.import_mirror(A.model_asset("openai-community/gpt2", with_tokenizer=True), other)
    assert not (hub_cache / "models--gpt2").exists()
    assert A.cached_snapshot(A.model_asset("gpt2", with_tokenizer=True)) == snap
    suite = load_suite("standard", ["model.revision=null", "data.kind=text_file", f"data.text_file={__file__}"])
    assert A.missing_assets(suite) == []
    model = build_model("small", vocab_size=300, n_positions=32, seed=0, pretrained="gpt2")
    assert model.config.n_embd == 32  # the tiny checkpoint, read from models--openai-community--gpt2
    assert len(local_gpt2_tokenizer()) == 300
    inputs = A.resolved_inputs(suite)
    assert inputs["model"]["cached_as"] == "models--openai-community--gpt2" and inputs["model"]["revision"] == snap.name
    # and the other way round: a cache under gpt2 serves openai-community/gpt2
    assert A.snapshots("openai-community/gpt2", "model") == [snap]


def test_a_pinned_revision_reads_that_snapshot_only(hub_cache, mirror):
    data = A.dataset_asset("wikitext-2", revision=REV)
    assert A.cached_snapshot(data) is None
    main_snap = A.import_mirror(A.dataset_asset("wikitext-2"), mirror)  # unpinned: a content hash
    assert A.cached_snapshot(data) is None and A.wikitext2_split_files("train", revision=REV) == []
    assert A.wikitext2_split_files("train") != []  # whatever the cache holds
    pinned = A.import_mirror(data, mirror)  # --mirror with a pin: the user vouches for the commit
    assert pinned.name == REV and pinned != main_snap
    assert A.wikitext2_split_files("train", revision=REV)[0].parent.parent == pinned
    suite = load_suite("standard", ["data.kind=wikitext2", f"data.revision={REV}", "model.pretrained=null"])
    inputs = A.resolved_inputs(suite)
    assert inputs["data"]["revision"] == inputs["data"]["pinned"] == REV
    assert "imported from" in inputs["data"]["mirror"] and "not checked against the hub" in inputs["data"]["mirror"]


# ----------------------------------------------------------------------------- the target


def test_target_rule_on_exact_pilot_figures():
    assert target_from_pilots([3.101, 3.0942, 3.12], [3.9, 3.8, 3.85]) == 3.12
    assert target_from_pilots([3.1201], [3.9]) == 3.121  # rounded up: every pilot still reaches it
    with pytest.raises(UserError, match="zero-shot validation loss 3.1000"):
        target_from_pilots([3.1], [3.1, 3.2])
    with pytest.raises(UserError, match="not finite"):
        target_from_pilots([math.nan], [3.2])


def test_calibrate_target_writes_a_suite_whose_target_every_pilot_reached(tmp_path, capsys):
    out = tmp_path / "cal.yaml"
    code = main(["calibrate-target", "smoke", "--pilots", "2", "--out", str(out), "--set", "train.steps=20",
                 "--set", "train.eval_every=5"])
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    suite = load_suite(str(out))
    source = suite.train.target_source
    assert source.method == "calibrated" and source.pilots == 2 and source.hardware_profile
    assert suite.train.target_excess_nats is None  # the calibrated target is the one used
    assert suite.train.steps == 20  # the --set overrides are part of the copy
    best = source.pilot_best_losses
    assert suite.train.target_val_loss == math.ceil(max(best) * 1000) / 1000
    assert suite.train.target_val_loss < source.zero_shot_loss  # the fresh model starts near ln(32) ≈ 3.47
    assert source.zero_shot_loss > 3.0 and all(b < 3.0 for b in best)
    assert f"target_val_loss {suite.train.target_val_loss:.3f}" in text
    assert yaml.safe_load(out.read_text())["train"]["target_source"]["rule"].startswith("max over pilots")


def test_calibrate_target_refuses_a_baseline_that_does_not_learn(tmp_path, capsys):
    out = tmp_path / "cal.yaml"
    code = main(["calibrate-target", "smoke", "--pilots", "1", "--out", str(out), "--set", "train.steps=1",
                 "--set", "train.eval_every=1", "--set", "train.lr=1.0e-12"])
    err = capsys.readouterr().err
    assert code == 2 and "does not get below its zero-shot validation loss" in err and "raise train.steps" in err
    assert not out.exists()


def test_a_suite_target_at_or_above_its_measured_zero_shot_loss_is_refused():
    with pytest.raises(SuiteInvalid, match="at or above the zero-shot validation loss 3.55"):
        load_suite("standard", ["train.target_source={method: calibrated, zero_shot_loss: 3.55}",
                                "train.target_val_loss=3.6"])
    load_suite("standard", ["train.target_source={method: calibrated, zero_shot_loss: 3.65}"])


def _text_suite(tmp_path, target):
    text = tmp_path / "corpus.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    return load_suite("smoke", ["data.kind=text_file", f"data.text_file={text}", "data.tokenizer=byte",
                                "data.block_size=16", "train.steps=4", "train.eval_every=2",
                                f"train.target_val_loss={target}", "train.target_excess_nats=null"])


def test_a_target_the_untrained_model_meets_records_no_time_to_target(tmp_path):
    from eitp_bench.workloads.tasks import TASKS, TaskContext

    refused = TASKS["train"](TaskContext(_text_suite(tmp_path, 50.0), "baseline", "tiny", 0, 0, "cpu"))
    by_name = {m.name: m for m in refused}
    zero_shot = by_name["zero_shot_val_loss"].value
    assert 4.0 < zero_shot < 50.0  # a fresh model on 256 byte tokens: about ln 256 ≈ 5.5
    assert [f.code for f in by_name["target_val_loss"].flags] == ["target_not_below_zero_shot"]
    assert f"{zero_shot:.4f}" in by_name["target_val_loss"].flags[0].message
    assert not {"target_reached", "time_to_target_s", "steps_to_target"} & set(by_name)

    kept = {m.name: m for m in TASKS["train"](TaskContext(_text_suite(tmp_path, 5.0), "baseline", "tiny", 0, 0, "cpu"))}
    assert kept["target_val_loss"].flags == [] and "target_reached" in kept
    assert kept["zero_shot_val_loss"].value == pytest.approx(zero_shot)  # the same seeded start


def test_the_judge_calls_to_target_claims_inconclusive_with_the_reason():
    why = "train.target_val_loss 3.6 is at or above the zero-shot validation loss 3.5400"
    records = eitp_records(n_reps=8, failed=0)
    for r in records:
        if r.task == "train":
            r.metrics = [m for m in r.metrics if m.name not in ("target_reached", "joules_to_target", "target_val_loss")]
            r.metrics.append(Metric(name="target_val_loss", value=3.6, unit="nats/token",
                                    flags=[flag("target_not_below_zero_shot", why)]))
    f = frames_from_records(records)
    verdicts = judge_claims(f["metrics"], f["energy"], load_claims("eitp"), n_resamples=500)
    to_target = [v for v in verdicts if v.claim.to_target]
    assert to_target
    for v in to_target:
        assert v.verdict == INCONCLUSIVE and why in v.reason and "repetition(s)" in v.reason, v.reason
    assert any(v.verdict != INCONCLUSIVE for v in verdicts if not v.claim.to_target)  # the others are judged

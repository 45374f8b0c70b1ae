"""Every verdict says what it is about: regime, model size, machine, precision, stored rounds."""

import pytest
from synthetic_store import eitp_records, frames_from_records

from eitp_bench.analysis.claims import load_claims
from eitp_bench.analysis.findings import analyse
from eitp_bench.analysis.frames import load_frames
from eitp_bench.suite import load_suite


def findings_for(suite_name: str, n_reps: int, **kw):
    frames = frames_from_records(eitp_records(n_reps=n_reps, suite=suite_name, **kw))
    frames["configs"] = {"cfg1": load_suite(suite_name).model_dump(mode="json")}
    return analyse(load_frames(frames), load_claims("eitp"), n_resamples=200)


def test_a_smoke_verdict_is_a_verdict_here_with_its_setting():
    findings = findings_for("smoke", 6)
    [group] = findings.groups
    scope = group.scope
    assert scope.regime == "synthetic" and scope.model_sizes == ("tiny",) and scope.smoke
    assert scope.precision == "fp32" and scope.device == "cpu" and scope.hardware_profile == "hp-test-cpu"
    assert not scope.about_paper
    assert scope.qualifier() == ("here — a smoke run, synthetic regime, tiny model, fp32 on cpu; "
                                 "says nothing about the paper's regime")
    rows = findings.to_json()["groups"][0]["verdicts"]
    assert rows and all(r["scope"]["regime"] == "synthetic" and r["scope"]["about_paper"] is False for r in rows)
    assert all(r["verdict_here"] == f"{r['verdict']} {scope.qualifier()}" for r in rows)


def test_rounds_are_counted_as_stored_not_as_configured():
    """smoke configures 2 rounds; a store holding 6 of them says 6 (the n the verdicts use)."""
    scope = findings_for("smoke", 6).groups[0].scope
    assert scope.rounds == (6, 6) and scope.rounds_text == "6 rounds"


def test_the_papers_regime_needs_no_qualifier():
    findings = findings_for("standard", 10, speedup=5.0)
    scope = findings.groups[0].scope
    assert scope.regime == "paper" and scope.model_sizes == ("small",) and scope.about_paper
    assert scope.qualifier() == "" and scope.setting == "the paper's regime, small model, bf16 on cuda"  # standard trains in bf16
    speed = next(r for r in findings.to_json()["groups"][0]["verdicts"] if r["claim"] == "inference-speedup")
    assert speed["verdict"] == "VERIFIED" and speed["verdict_here"] == "VERIFIED"


@pytest.mark.parametrize("override", ["data.kind=markov", "sizes=[tiny]"])
def test_the_papers_claims_need_the_papers_data_and_model(override):
    from eitp_bench.analysis.scope import Scope

    base = dict(regime="paper", model_sizes=("small",), hardware_profile="p", hardware="H100", precision="fp32",
                device="cuda", rounds=(10, 10), smoke=False)
    key = override.split("=")[0]
    changed = {"data.kind": {"regime": "synthetic"}, "sizes": {"model_sizes": ("tiny",)}}[key]
    assert Scope(**base).about_paper and not Scope(**{**base, **changed}).about_paper

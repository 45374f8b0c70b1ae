"""Smaller gaps of issue 17: the ablation table's labels, stored configs that no longer validate,
compressed arms' learning rate, and the suite's claims/thresholds keys."""

import pytest
from synthetic_store import eitp_records, frames_from_records

from eitp_bench.analysis.claims import NOT_COMPARABLE, load_claims
from eitp_bench.analysis.findings import analyse
from eitp_bench.analysis.frames import load_frames
from eitp_bench.suite import load_suite


def findings_with_config(config):
    frames = frames_from_records(eitp_records(n_reps=8, seed=7, speedup=5.0, failed=0))
    frames["configs"] = {"cfg1": config}
    return analyse(load_frames(frames), load_claims("eitp"), n_resamples=500)


def test_a_stored_config_that_no_longer_validates_issues_no_comparison():
    valid = load_suite("smoke").model_dump(mode="json")
    [ok] = findings_with_config(valid).groups
    assert ok.experiment.unchecked is None
    assert {v.verdict for v in ok.verdicts} - {NOT_COMPARABLE}  # fairness checked: verdicts issued
    broken = dict(valid, repetitions=-3)  # a field this version refuses
    [g] = findings_with_config(broken).groups
    assert "repetitions" in g.experiment.unchecked
    speed = next(v for v in g.verdicts if v.claim.id == "inference-speedup")
    assert speed.verdict == NOT_COMPARABLE and "cannot be checked for fairness" in speed.reason
    assert "the statistics would say" in speed.reason  # what was withheld stays readable
    theorem = next(v for v in g.verdicts if v.claim.id == "theorem-3")
    assert theorem.verdict != NOT_COMPARABLE  # compares no arms: not a fairness question


def test_the_ablation_columns_say_what_they_judge():
    [g] = findings_with_config(load_suite("smoke").model_dump(mode="json")).groups
    assert g.ablation_columns["speed"].startswith("training time to target")
    claims = {c.aspect: c.metric for c in load_claims("eitp").claims if c.group == "ablation"}
    assert claims["speed"] == "time_to_target_s"  # the label matches the metric the claims judge


def test_a_compressed_arm_is_checked_against_the_lr_of_the_model_it_compresses():
    from eitp_bench.records import Metric

    def with_lr(records, lr):
        return [r.model_copy(update={"metrics": r.metrics + [Metric(name="lr", value=lr, unit="1")]})
                if r.arm == "eitp-compressed" else r for r in records]

    config = load_suite("smoke").model_dump(mode="json")
    for lr, unequal in ((5e-5, False), (1e-3, True)):  # the trained arms record 5e-5
        frames = frames_from_records(with_lr(eitp_records(n_reps=6, seed=8, failed=0), lr))
        frames["configs"] = {"cfg1": config}
        [g] = analyse(load_frames(frames), load_claims("eitp"), n_resamples=200).groups
        assert g.experiment.settings["eitp-compressed"]["lr"] == pytest.approx(lr)
        assert ("lr" in g.experiment.differ) == unequal


def test_the_suites_claims_and_thresholds_keys_are_honoured():
    """A suite that lists claims gets those judged (its declared family); a threshold it sets is the one
    judged, and the verdict says so. Unlisted claims are named in the findings, not silently dropped."""
    base = load_suite("smoke").model_dump(mode="json")
    [everything] = findings_with_config(base).groups
    judged = {v.claim.id for v in everything.verdicts}
    assert {"inference-speedup", "training-energy", "theorem-3"} <= judged and not everything.claims_not_selected

    [g] = findings_with_config(dict(base, claims=["inference_speedup"], thresholds={"inference_speedup": 3.0})).groups
    assert {v.claim.id for v in g.verdicts} == {"inference-speedup", "inference-speedup-compressed"}
    assert "training-energy" in g.claims_not_selected and "theorem-3" in g.claims_not_selected
    assert {v.claim.id for row in g.ablation for v in row["cells"].values()} == \
        {v.claim.id for row in everything.ablation for v in row["cells"].values()}  # ablations follow the arms
    speed = next(v for v in g.verdicts if v.claim.id == "inference-speedup")
    assert speed.claim.threshold == 3.0 and "threshold 3 from the suite" in speed.reason
    assert speed.family_size <= 2  # the family the suite declared, not the registry's
    before = next(v for v in everything.verdicts if v.claim.id == "inference-speedup")
    assert before.claim.threshold == 4.0 and "from the suite" not in before.reason

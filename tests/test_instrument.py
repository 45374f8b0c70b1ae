"""The judge and the report use the sensors' qualification and the isolation check from provenance."""

from __future__ import annotations

import pytest
from synthetic_store import frames_from_records, record

from eitp_bench.analysis.claims import INCONCLUSIVE, VERIFIED, judge_claims, load_claims
from eitp_bench.analysis.findings import analyse
from eitp_bench.analysis.frames import load_frames
from eitp_bench.flags import flag
from eitp_bench.report import build_report

CLAIM = next(c for c in load_claims("eitp").claims if c.id == "training-energy-per-step")  # ≤ 0.75 × baseline


def qualification(edge_s: float) -> dict:
    """Stored qualification (qualify.as_dict form) of the RAPL package counter with this edge span."""
    return {"sensors": [{"meter": "rapl", "device": "cpu:0", "domain": "package", "quantity": "energy",
                         "source": "intel-rapl:0/energy_uj", "windows": True, "update_period_s": edge_s,
                         "averaging_window_s": edge_s, "delay_s": 0.0, "edge_s": edge_s}]}


def records(edge_s=None, candidate_j=700.0, gpu_shared_reps=(), qualified_reps=None):
    """12 rounds of baseline (1000 J) and eitp-paper (candidate_j) training, 10-s windows."""
    out = []
    for rep in range(12):
        for arm, joules in (("baseline", 1000.0 + rep), ("eitp-paper", candidate_j + rep)):
            r = record(arm, "train", rep, {"train_joules_per_step": joules / 100, "final_val_loss": 3.0},
                       energy_window="train", energy_joules=joules)
            hw = dict(r.provenance.hardware)
            if edge_s is not None and (qualified_reps is None or rep in qualified_reps):
                hw["qualification"] = qualification(edge_s)
            shared = arm == "eitp-paper" and rep in gpu_shared_reps
            hw["isolation"] = {"gpu_processes": {}, "cpu_busy_processes": [],
                               "flags": [flag("gpu_shared", "1 other compute process on gpu:0").model_dump()]
                               if shared else []}
            out.append(r.model_copy(update={"provenance": r.provenance.model_copy(update={"hardware": hw})}))
    return out


def judge(recs):
    from eitp_bench.analysis.instrument import isolation_codes, qualifications

    f = frames_from_records(recs)
    return judge_claims(f["metrics"], f["energy"], [CLAIM], n_resamples=2000,
                        instrument=qualifications(f["provenance"]), conditions=isolation_codes(f["provenance"]))[0]


def test_an_effect_below_instrument_resolution_is_inconclusive_with_the_figures():
    # 10-s windows, 1 s of edge per side: ±20 % per arm, ±40 % for the comparison; the effect is 30 %
    v = judge(records(edge_s=1.0))
    assert v.verdict == INCONCLUSIVE
    assert v.reason.startswith("below instrument resolution") and "would say VERIFIED" in v.reason
    assert v.resolution["uncertainty"] == pytest.approx(0.4)
    assert v.resolution["effect"] == pytest.approx(0.3, abs=0.01)
    assert v.resolution["baseline"]["window_s"] == 10.0 and v.resolution["eitp-paper"]["runs"] == 12
    assert "energy windows of about" in v.plan  # longer windows, not more repetitions


def test_an_effect_above_instrument_resolution_keeps_its_verdict():
    v = judge(records(edge_s=0.01))  # ±0.2 % per arm
    assert v.verdict == VERIFIED and v.resolution["uncertainty"] == pytest.approx(0.004)
    assert "below instrument resolution" not in v.reason


def test_without_qualification_of_every_run_the_usual_rules_apply():
    assert judge(records()).verdict == VERIFIED
    v = judge(records(edge_s=1.0, qualified_reps=set(range(11))))  # one run not qualified: no stated figure
    assert v.verdict == VERIFIED and v.resolution is None


def test_isolation_caveats_are_named_in_energy_verdicts_and_counted_in_findings():
    recs = records(gpu_shared_reps={0, 3, 5})
    v = judge(recs)
    assert v.verdict == VERIFIED  # a caveat, not a fault
    assert v.isolation == {"eitp-paper": 3, "baseline": 0}
    assert "caveat" in v.reason and "gpu_shared" in v.reason and "eitp-paper 3 of 12" in v.reason
    frames = load_frames(frames_from_records(recs))
    g = analyse(frames, load_claims("eitp"), n_resamples=500).to_json()["groups"][0]
    assert g["isolation"]["eitp-paper"] == {"repetitions": 12, "gpu_shared": 3, "cpu_busy": 0}
    assert g["isolation"]["baseline"]["gpu_shared"] == 0
    html = build_report(frames_from_records(recs), n_resamples=500)
    assert "Run conditions" in html and "3 of 12 with other GPU compute processes" in html


def test_skipped_not_steady_windows_are_counted_in_findings_and_report():
    recs = records()
    short = [flag("not_steady", "window of 2 s is shorter than the steady-state minimum of 5 s")]
    recs = [r.model_copy(update={"energy": [e.model_copy(update={"flags": short}) for e in r.energy]})
            if r.arm == "baseline" and r.repetition < 4 else r for r in recs]
    g = analyse(load_frames(frames_from_records(recs)), load_claims("eitp"), n_resamples=500).to_json()["groups"][0]
    assert g["energy_windows_skipped"] == {"not_steady": 4}
    verdict = next(x for x in g["verdicts"] if x["claim"] == CLAIM.id)
    assert "not_steady" in verdict["why"] and verdict["n"] == [8, 8]
    html = build_report(frames_from_records(recs), n_resamples=500)
    assert "skipped" in html and "not_steady</b> 4" in html

"""The judge and the report use the sensors' qualification and the isolation check from provenance."""

from __future__ import annotations

import pytest
from synthetic_store import frames_from_records, record

from eitp_bench.analysis.claims import INCONCLUSIVE, REFUTED, VERIFIED, judge_claims, load_claims
from eitp_bench.analysis.findings import analyse
from eitp_bench.analysis.frames import load_frames
from eitp_bench.flags import flag
from eitp_bench.report import build_report

CLAIM = next(c for c in load_claims("eitp").claims if c.id == "training-energy-per-step")  # ≤ 0.75 × baseline


def qualification(edge_s: float, delay_s: float = 0.0) -> dict:
    """Stored qualification (qualify.as_dict form) of the RAPL package counter updating every `edge_s`."""
    return {"sensors": [{"meter": "rapl", "device": "cpu:0", "domain": "package", "quantity": "energy",
                         "source": "intel-rapl:0/energy_uj", "windows": True, "update_period_s": edge_s,
                         "averaging_window_s": edge_s, "delay_s": delay_s, "edge_s": delay_s + edge_s}]}


def records(edge_s=None, candidate_j=700.0, gpu_shared_reps=(), qualified_reps=None, *, delay_s=0.0,
            window_s=(10.0, 10.0), n=12, noise=0.0, seed=0, extra=None):
    """n rounds of baseline (1000 J) and eitp-paper (candidate_j) training; window_s = (candidate,
    baseline) seconds; `noise` a per-run lognormal spread; `extra` metrics per arm."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for rep in range(n):
        arms = (("baseline", 1000.0 + rep, window_s[1]), ("eitp-paper", candidate_j + rep, window_s[0]))
        for arm, joules, dur in arms:
            joules *= float(rng.lognormal(0, noise)) if noise else 1.0
            r = record(arm, "train", rep, {"train_joules_per_step": joules / 100, "final_val_loss": 3.0,
                                           **(extra or {}).get(arm, {})},
                       energy_window="train", energy_joules=joules)
            r = r.model_copy(update={"energy": [e.model_copy(update={"duration_s": dur}) for e in r.energy]})
            hw = dict(r.provenance.hardware)
            if edge_s is not None and (qualified_reps is None or rep in qualified_reps):
                hw["qualification"] = qualification(edge_s, delay_s)
            shared = arm == "eitp-paper" and rep in gpu_shared_reps
            hw["isolation"] = {"gpu_processes": {}, "cpu_busy_processes": [],
                               "flags": [flag("gpu_shared", "1 other compute process on gpu:0").model_dump()]
                               if shared else []}
            out.append(r.model_copy(update={"provenance": r.provenance.model_copy(update={"hardware": hw})}))
    return out


def judge(recs, claim=CLAIM):
    from eitp_bench.analysis.instrument import isolation_codes, qualifications

    f = frames_from_records(recs)
    return judge_claims(f["metrics"], f["energy"], [claim], n_resamples=2000,
                        instrument=qualifications(f["provenance"]), conditions=isolation_codes(f["provenance"]))[0]


def test_the_interval_is_widened_by_the_residual_systematic_bound():
    # counters updating every 1 s (lag e = P/2 = 0.5 s): candidate 5-s windows (bias ≤ 10 %), baseline
    # 10-s windows (≤ 5 %): δ = 5 %; the statistical interval is divided by (1 + δ) and (1 − δ)
    v = judge(records(edge_s=1.0, window_s=(5.0, 10.0)))
    r = v.resolution
    assert r["systematic"] == pytest.approx(0.05)
    assert r["eitp-paper"]["bias"] == pytest.approx(0.10) and r["baseline"]["bias"] == pytest.approx(0.05)
    assert r["eitp-paper"]["lag_s"] == pytest.approx(0.5) and r["baseline"]["edges"] == 2
    lo, hi = r["statistical_ci"]
    assert (v.ci_low, v.ci_high) == pytest.approx((lo / 1.05, hi / 0.95))
    assert v.verdict == VERIFIED and "widened by ±5 % instrument bound" in v.reason  # 0.70 / 0.95 < 0.75


def test_an_effect_inside_the_widened_interval_is_inconclusive_not_below_resolution():
    # windows 2 s vs 10 s with a 1-s counter: δ = 25 % − 5 % = 20 %; the ratio 0.70 clears 0.75 on its
    # statistics alone but not once the instrument's residual bias is inside the interval
    v = judge(records(edge_s=1.0, window_s=(2.0, 10.0)))
    assert v.resolution["systematic"] == pytest.approx(0.20)
    assert v.resolution["statistical_ci"][1] < 0.75 < v.ci_high
    assert v.verdict == INCONCLUSIVE and "straddles" in v.reason
    assert "longer energy windows" in v.plan  # more repetitions would not shrink a systematic bound


def test_equal_windows_cancel_the_lag_in_the_ratio():
    # the old rule charged 2 × 2·edge/T per arm (±40 % here) and could neither verify nor refute
    v = judge(records(edge_s=1.0))
    assert v.resolution["systematic"] == 0.0 and v.verdict == VERIFIED


def test_segments_and_window_of_a_to_target_figure_are_read_when_recorded():
    # `<metric>_window_s` and `<metric>_segments` (k segments → 2k edges) replace the entry's duration
    extra = {"eitp-paper": {"train_joules_per_step_window_s": 4.0, "train_joules_per_step_segments": 2},
             "baseline": {"train_joules_per_step_window_s": 10.0, "train_joules_per_step_segments": 1}}
    v = judge(records(edge_s=0.2, delay_s=0.1, extra=extra))
    c, b = v.resolution["eitp-paper"], v.resolution["baseline"]
    assert c["edges"] == 4 and b["edges"] == 2 and c["window_s"] == 4.0
    assert c["bias"] == pytest.approx(2 * 0.2 / 4.0) and b["bias"] == pytest.approx(0.2 / 10.0)  # e = 0.1 + 0.1


def test_no_gain_is_refuted_and_a_true_25_percent_gain_verified_with_100_ms_counters():
    # qualified 100-ms counters (delay 50 ms: e = 0.1 s), 5-s baseline windows, 10 rounds, 3 % noise
    no_gain = judge(records(edge_s=0.1, delay_s=0.05, candidate_j=1000.0, window_s=(5.0, 5.0), n=10,
                            noise=0.03, seed=1))
    assert no_gain.verdict == REFUTED, no_gain.reason  # against "−25 % energy"
    gain_claim = CLAIM.model_copy(update={"threshold": 0.8})  # "at least 20 % less energy"
    gain = judge(records(edge_s=0.1, delay_s=0.05, candidate_j=750.0, window_s=(3.75, 5.0), n=10, noise=0.03,
                         seed=2), gain_claim)
    assert gain.resolution["systematic"] == pytest.approx(0.1 / 3.75 - 0.1 / 5.0)
    assert gain.verdict == VERIFIED, gain.reason


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


def test_unqualified_nvml_runs_use_the_counters_observed_update_step():
    from eitp_bench.analysis.instrument import lags_for_judge

    recs = []
    for r in records(window_s=(5.0, 10.0)):
        hw = {**r.provenance.hardware,
              "meter_info": {"nvml": {"gpus": [{"device": "gpu:0", "counter_update_period_s": 0.1}]}}}
        energy = [e.model_copy(update={"meter": "nvml", "device": "gpu:0", "domain": "gpu"}) for e in r.energy]
        recs.append(r.model_copy(update={"energy": energy,
                                         "provenance": r.provenance.model_copy(update={"hardware": hw})}))
    f = frames_from_records(recs)
    v = judge_claims(f["metrics"], f["energy"], [CLAIM], n_resamples=500,
                     instrument=lags_for_judge(f["provenance"]))[0]
    c = v.resolution["eitp-paper"]
    assert c["lag_from"] == "counter step" and c["lag_s"] == pytest.approx(0.05)  # P/2, delay not known
    assert v.resolution["systematic"] == pytest.approx(0.05 / 5.0 - 0.05 / 10.0)

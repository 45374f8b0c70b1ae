"""The hardware's state, recorded and guarded (issue 20 §2): throttled windows flagged and skipped by name,
runs under different power limits never pooled."""

from __future__ import annotations

import pytest
from fake_nvml import FakeGpu, FakeNvml, ManualClock
from synthetic_store import ab_records, frames_from_records, record

from eitp_bench.analysis.claims import Claim, judge_claims, load_claims
from eitp_bench.energy.gpu_state import THROTTLE_SHARE, merge_states, throttle_flags
from eitp_bench.energy.nvml import NvmlMeter
from eitp_bench.hardware.cpu_state import cpu_state
from eitp_bench.hardware.state import run_state


def window(gpu: FakeGpu, seconds: float = 10.0, during=None):
    """One window of `seconds` on a fake GPU; `during(nvml, clock)` runs halfway through."""
    clock = ManualClock(100.0)
    nvml = FakeNvml(gpus=[gpu], clock=clock)
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock, torch_uuids=None, env={})
    begin = meter.mark()
    clock.advance(seconds / 2)
    if during:
        during(nvml, clock)
    meter.sample_now()
    clock.advance(seconds / 2)
    entry = meter.energy_between(begin, meter.mark())[0]
    return entry, meter


def codes(entry) -> set[str]:
    return {f.code for f in entry.flags}


def test_a_window_power_capped_30_percent_of_its_time_is_flagged_with_its_share():
    entry, _ = window(FakeGpu(power_throttle_share=0.30))
    assert "throttled_power" in codes(entry) and "throttled_thermal" not in codes(entry)
    assert entry.hw_state["throttle_share"]["power"] == pytest.approx(0.30, abs=1e-6)
    assert entry.hw_state["throttle_s"]["power"] == pytest.approx(3.0, abs=1e-5)
    assert entry.hw_state["throttle_share"]["thermal"] == 0.0
    assert entry.joules == pytest.approx(3000.0, rel=0.02)  # the figure is still measured; the judge decides
    message = next(f.message for f in entry.flags if f.code == "throttled_power")
    assert "30%" in message and "3.00 s of 10.00 s" in message


def test_capping_below_the_stated_share_is_recorded_but_not_flagged():
    entry, _ = window(FakeGpu(power_throttle_share=THROTTLE_SHARE / 2, thermal_throttle_share=0.0))
    assert not codes(entry) & {"throttled_power", "throttled_thermal"}
    assert entry.hw_state["throttle_share"]["power"] == pytest.approx(THROTTLE_SHARE / 2, abs=1e-6)


def test_thermal_capping_added_mid_window_counts_only_inside_the_window():
    def heat(nvml, clock):
        nvml.add_violation(0, "thermal", 2.5)
        nvml.gpu(0).temperature_c = 88
        nvml.gpu(0).clock_event_reasons = 0x20 | 0x40

    entry, _ = window(FakeGpu(temperature_c=60), during=heat)
    assert "throttled_thermal" in codes(entry)
    assert entry.hw_state["throttle_share"]["thermal"] == pytest.approx(0.25, abs=1e-6)
    assert entry.hw_state["temperature_c"] == {"start": 60.0, "end": 88.0, "max": 88.0}
    assert entry.hw_state["clock_event_reasons"] == ["hw_thermal_slowdown", "sw_thermal_slowdown"]
    assert entry.hw_state["power_limit_w"] == 700.0


def test_a_gpu_without_violation_counters_has_no_share_and_no_flag():
    gpu = FakeGpu(power_throttle_share=0.5)
    clock = ManualClock(0.0)
    nvml = FakeNvml(gpus=[gpu], clock=clock)
    nvml.nvmlDeviceGetViolationStatus = lambda h, p: (_ for _ in ()).throw(nvml.NVMLError(nvml.NVML_ERROR_NOT_SUPPORTED))
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock, torch_uuids=None, env={})
    b = meter.mark()
    clock.advance(10)
    entry = meter.energy_between(b, meter.mark())[0]
    assert entry.hw_state["throttle_share"] == {"power": None, "thermal": None}
    assert not codes(entry) & {"throttled_power", "throttled_thermal"}  # unknown is never "throttled"


def test_a_phase_in_segments_is_judged_by_its_summed_capped_time():
    a = {"power_limit_w": 700.0, "sm_clock_mhz": [1980, 1800], "mem_clock_mhz": [2619, 2619],
         "temperature_c": {"start": 50, "end": 60, "max": 61}, "clock_event_reasons": [],
         "throttle_share": {"power": 0.5, "thermal": 0.0}, "throttle_s": {"power": 1.0, "thermal": 0.0},
         "duration_s": 2.0}
    b = {**a, "throttle_share": {"power": 0.0, "thermal": 0.0}, "throttle_s": {"power": 0.0, "thermal": 0.0},
         "duration_s": 18.0, "temperature_c": {"start": 60, "end": 70, "max": 72}}
    merged = merge_states([a, b])
    assert merged["throttle_share"]["power"] == pytest.approx(0.05)
    assert merged["temperature_c"] == {"start": 50, "end": 70, "max": 72}
    assert throttle_flags(a) and not throttle_flags(merged)


def test_run_state_names_the_board_its_settings_and_the_cpu(tmp_path):
    gpu = FakeGpu(app_sm_clock_mhz=1400, default_app_sm_clock_mhz=1755, power_limit_w=350.0, power_profile=2)
    _, meter = window(gpu)
    cpu = tmp_path / "cpu"
    for name, text in {"cpufreq/policy0/scaling_governor": "performance", "cpufreq/policy0/scaling_min_freq": "800000",
                       "cpufreq/policy0/scaling_max_freq": "3500000", "cpufreq/policy0/scaling_driver": "intel_pstate",
                       "intel_pstate/no_turbo": "1", "smt/control": "off"}.items():
        (cpu / name).parent.mkdir(parents=True, exist_ok=True)
        (cpu / name).write_text(text + "\n")
    state = run_state(meter, cpu_root=str(cpu))
    g = state["gpus"][0]
    assert g["uuid"] == gpu.uuid and g["serial"] == gpu.serial and g["ecc_mode"] == 1 and g["persistence_mode"] == 1
    assert g["clocks_locked"] is True and g["power_limit_w"] == 350.0 and g["power_profile"] == "COMPUTE"
    assert state["driver_version"] == "550.54.15"
    assert state["cpu"] == {"driver": "intel_pstate", "governors": ["performance"], "min_mhz": 800.0,
                            "max_mhz": 3500.0, "hw_min_mhz": None, "hw_max_mhz": None, "boost": False,
                            "boost_source": "intel_pstate/no_turbo", "smt": "off"}
    assert cpu_state(tmp_path / "absent")["governors"] is None  # nothing readable: unknown, no error


# ---------------------------------------------------------------- the judge


def throttled_gpu_entry(window_name: str):
    entry, _ = window(FakeGpu(power_throttle_share=0.30))
    return entry.model_copy(update={"window": window_name})


def with_gpu_entry(rec, window_name):
    return rec.model_copy(update={"energy": [*rec.energy, throttled_gpu_entry(window_name)]})


def test_an_energy_claim_skips_and_names_the_throttled_windows():
    claim = next(c for c in load_claims("eitp").claims if c.id == "training-energy-per-step")
    recs = []
    for rep in range(12):
        for arm, joules in (("baseline", 1000.0 + rep), ("eitp-paper", 400.0 + rep)):
            r = record(arm, "train", rep, {"train_joules_per_step": joules / 100, "final_val_loss": 3.0},
                       energy_window="train", energy_joules=joules)
            recs.append(with_gpu_entry(r, "train") if arm == "eitp-paper" and rep < 3 else r)
    f = frames_from_records(recs)
    v = judge_claims(f["metrics"], f["energy"], [claim])[0]
    assert v.n_candidate == 9  # the three throttled rounds are out
    assert len(v.throttled) == 3 and {h["arm"] for h in v.throttled} == {"eitp-paper"}
    assert "throttled" in v.reason and "eitp-paper rep 0 train (gpu:0, power 30%)" in v.reason


def test_a_speed_claim_skips_throttled_runs_and_a_quality_claim_does_not():
    speed = Claim(id="speed", quote="q", paper_figure="f", metric="tokens_per_s", task="generate",
                  candidate="eitp-paper", baseline="baseline", direction="higher_is_better", threshold=1.5)
    recs = ab_records("tokens_per_s", "generate", [200.0 + i for i in range(10)], [100.0 + i for i in range(10)],
                      energy_window="gen", energy_joules=50.0)
    recs = [with_gpu_entry(r, "gen") if r.arm == "baseline" and r.repetition in (4, 5) else r for r in recs]
    f = frames_from_records(recs)
    v = judge_claims(f["metrics"], f["energy"], [speed], n_resamples=1000)[0]
    assert v.n_baseline == 8 and len(v.throttled) == 2
    assert "baseline rep 4 gen" in v.reason and "baseline rep 5 gen" in v.reason
    loss = Claim(id="loss", quote="q", paper_figure="f", metric="tokens_per_s_quality", task="generate",
                 candidate="eitp-paper", baseline="baseline", direction="higher_is_better", threshold=1.5)
    assert not loss.energy
    from eitp_bench.analysis.throttle import touches_speed

    assert touches_speed("tokens_per_s") and touches_speed("time_to_target_s") and touches_speed("step_s")
    assert not touches_speed("val_loss") and not touches_speed("model_bytes")


# ---------------------------------------------------------------- never pooled


def state(limit: float, uuid: str = "GPU-a", locked: bool = False, driver: str = "550.54.15") -> dict:
    return {"driver_version": driver, "cpu": {"governors": ["performance"], "boost": False, "smt": "on"},
            "gpus": [{"device": "gpu:0", "uuid": uuid, "serial": None, "power_limit_w": limit,
                      "clocks_locked": locked, "power_profile": None}]}


def with_state(rec, st: dict):
    prov = rec.provenance.model_copy(update={"hardware": {**rec.provenance.hardware, "state": st}})
    return rec.model_copy(update={"provenance": prov})


def test_runs_at_two_power_limits_are_separate_groups_each_saying_not_comparable():
    from eitp_bench.analysis.resultset import ResultSet

    recs = ab_records("tokens_per_s", "generate", [200.0] * 6, [100.0] * 6)
    recs = [with_state(r, state(700.0 if r.repetition < 3 else 350.0)) for r in recs]
    groups = ResultSet(frames_from_records_loaded(recs)).groups()
    assert len(groups) == 2
    labels = sorted(g.key.energy_state for g in groups)
    assert labels == ["power limit 350 W · locked clocks no · driver major version 550",
                      "power limit 700 W · locked clocks no · driver major version 550"]
    for g in groups:
        assert len(set(g.metrics["run_id"])) == 6  # 3 rounds × 2 arms, never the other limit's
        assert g.not_pooled.startswith("NOT COMPARABLE") and "power limit (" in g.not_pooled
        assert "700 W vs 350 W" in g.not_pooled or "350 W vs 700 W" in g.not_pooled


def test_a_driver_major_or_clock_lock_splits_too_but_a_minor_driver_does_not():
    from eitp_bench.analysis.resultset import ResultSet

    recs = ab_records("tokens_per_s", "generate", [200.0] * 4, [100.0] * 4)
    minor = [with_state(r, state(700.0, driver="550.54.15" if r.repetition < 2 else "550.90.07")) for r in recs]
    assert len(ResultSet(frames_from_records_loaded(minor)).groups()) == 1
    major = [with_state(r, state(700.0, driver="550.54.15" if r.repetition < 2 else "560.28.03")) for r in recs]
    (g, _) = ResultSet(frames_from_records_loaded(major)).groups()
    assert "driver major version (550 vs 560)" in g.not_pooled or "driver major version (560 vs 550)" in g.not_pooled
    locked = [with_state(r, state(700.0, locked=r.repetition < 2)) for r in recs]
    assert {"locked clocks (yes vs no) differ", "locked clocks (no vs yes) differ"} & {
        g.not_pooled.split(": ", 2)[-1] for g in ResultSet(frames_from_records_loaded(locked)).groups()}


def test_findings_json_says_not_pooled_and_carries_each_arms_state():
    from eitp_bench.analysis.findings import analyse

    recs = ab_records("tokens_per_s", "generate", [200.0] * 6, [100.0] * 6)
    recs = [with_state(r, state(700.0 if r.repetition < 3 else 350.0)) for r in recs]
    out = analyse(frames_from_records_loaded(recs), load_claims("eitp"), n_resamples=200).to_json()
    assert len(out["groups"]) == 2
    assert all(g["not_pooled"] and "power limit" in g["not_pooled"] for g in out["groups"])
    assert {g["hardware_state"].split(" · ")[0] for g in out["groups"]} == {"power limit 700 W", "power limit 350 W"}
    assert out["groups"][0]["arm_hardware"]["baseline"]["boards"] == 1


def frames_from_records_loaded(recs):
    from eitp_bench.analysis.frames import load_frames

    return load_frames(frames_from_records(recs))


# ---------------------------------------------------------------- board to board (§3)


def fleet_records(boards: dict[str, float], n: int = 6, *, profile: str = "nvidia-h100-sxm", limit=700.0):
    """`n` baseline generate runs per board, J/token around the board's level (±1 %, known values)."""
    recs = []
    for b, level in boards.items():
        for i in range(n):
            r = record("baseline", "generate", i, {"joules_per_token": level * (1 + 0.01 * (i - n / 2) / n)},
                       profile=profile, started=len(recs))
            recs.append(with_state(r, state(limit, uuid=b)))
    return recs


def test_compare_over_two_boards_shows_their_spread_and_a_wider_interval():
    from eitp_bench.analysis.boards import board_spread
    from eitp_bench.analysis.compare import compare_hardware
    from eitp_bench.report.compare import _cell_text

    f = frames_from_records_loaded(fleet_records({"GPU-a": 1.00, "GPU-b": 1.20}))
    (table,) = compare_hardware(f.metrics, provenance=f.provenance)
    cell = table.rows[0].cells["nvidia-h100-sxm"]
    assert cell.boards is not None and set(cell.boards.medians) == {"GPU-a", "GPU-b"}
    assert cell.boards.spread == pytest.approx(0.20, abs=0.005)
    assert cell.boards.method == "DerSimonian-Laird" and cell.boards.tau == pytest.approx(0.129, abs=0.005)
    lo, hi = cell.runs_ci
    assert cell.ci_low < lo and cell.ci_high > hi  # widened by the between-board component
    assert cell.ci_high / cell.median > 1.2  # z·τ ≈ 25 % on top of the runs' own interval
    assert "2 boards" in _cell_text(cell) and "spread 20%" in _cell_text(cell)
    # one board: no between-board component, the runs' interval as it was
    f1 = frames_from_records_loaded(fleet_records({"GPU-a": 1.00}, n=12))
    (t1,) = compare_hardware(f1.metrics, provenance=f1.provenance)
    c1 = t1.rows[0].cells["nvidia-h100-sxm"]
    assert c1.boards is None and c1.runs_ci is None
    # boards that agree within their own noise: τ² = 0, nothing widened
    same = board_spread({"a": [1.0, 1.01, 0.99, 1.0], "b": [1.0, 0.99, 1.01, 1.0]})
    assert same.tau == 0.0


def test_compare_never_pools_two_power_limits():
    from eitp_bench.analysis.compare import compare_hardware

    recs = fleet_records({"GPU-a": 1.0}, limit=700.0) + fleet_records({"GPU-a": 0.8}, limit=350.0)
    f = frames_from_records_loaded(recs)
    tables = compare_hardware(f.metrics, provenance=f.provenance)
    assert len(tables) == 2 and {t.rows[0].cells["nvidia-h100-sxm"].n for t in tables} == {6}
    assert all("NOT COMPARABLE" in t.note for t in tables)
    assert sorted(t.energy_state.split(" · ")[0] for t in tables) == ["power limit 350 W", "power limit 700 W"]


def test_regress_keys_a_series_by_board_where_the_fleet_has_several():
    from eitp_bench.analysis.regress import find_changes, series_keys, testable_series

    # board b is 20 % hungrier; the runs alternate boards: pooled, that is a zig-zag, per board two flat series
    recs = []
    for i in range(16):
        board, level = ("GPU-a", 1.0) if i % 2 == 0 else ("GPU-b", 1.2)
        r = record("baseline", "generate", i, {"joules_per_token": level}, profile="nvidia-h100-sxm", started=i)
        recs.append(with_state(r, state(700.0, uuid=board)))
    # then board b is swapped for a hungrier one at run 16 onwards: a change on that board's series only
    for i in range(16, 32):
        board, level = ("GPU-a", 1.0) if i % 2 == 0 else ("GPU-b", 1.2)
        r = record("baseline", "generate", i, {"joules_per_token": level + (0.3 if board == "GPU-b" else 0.0)},
                   profile="nvidia-h100-sxm", started=i)
        recs.append(with_state(r, state(700.0, uuid=board)))
    f = frames_from_records_loaded(recs)
    from eitp_bench.analysis.rounds import energy_state_key

    assert "board" in series_keys(energy_state_key(f.metrics, f.provenance))
    assert testable_series(f.metrics, provenance=f.provenance) == (2, 2)
    changes = [c for c in find_changes(f.metrics, provenance=f.provenance, window=6) if c.confirmed]
    assert [c.board for c in changes] == ["GPU-b"] and changes[0].kind == "regression"
    assert "@nvidia-h100-sxm#GPU-b [power limit 700 W" in changes[0].series
    # one board per profile: no board key (the series stays whole)
    single = frames_from_records_loaded([r for r in recs if r.provenance.hardware["state"]["gpus"][0]["uuid"] == "GPU-a"])
    assert "board" not in series_keys(energy_state_key(single.metrics, single.provenance))


def test_the_report_shows_each_arms_hardware_state_and_the_not_comparable_note():
    from eitp_bench.report import build_report

    recs = []
    for rep in range(6):
        for arm in ("baseline", "eitp-paper"):
            r = record(arm, "train", rep, {"train_joules_per_step": 10.0 if arm == "baseline" else 4.0,
                                           "final_val_loss": 3.0}, energy_window="train", energy_joules=100.0)
            r = with_gpu_entry(r, "train") if arm == "eitp-paper" and rep < 2 else r
            recs.append(with_state(r, state(700.0 if rep < 3 else 350.0)))
    html = build_report(frames_from_records(recs), n_resamples=200)
    assert html.count("NOT COMPARABLE with this configuration&#39;s other runs") == 2
    assert "power limit 700 W · locked clocks no · driver major version 550" in html
    assert ("<b>eitp-paper</b> 1 board, CPU governor performance · boost off · SMT on, 2 of 2 GPU windows "
            "throttled") in html
    assert "skip the throttled windows" in html


def test_the_energy_table_keeps_two_power_limits_apart():
    from eitp_bench.analysis.findings import analyse

    recs = []
    for rep in range(6):
        for arm in ("baseline", "eitp-paper"):
            r = record(arm, "train", rep, {"train_joules_per_step": 1.0}, energy_window="train",
                       energy_joules=100.0 if rep < 3 else 60.0, profile="nvidia-h100-sxm")
            recs.append(with_state(r, state(700.0 if rep < 3 else 350.0)))
    found = analyse(frames_from_records_loaded(recs), load_claims("eitp"), n_resamples=200)
    rows = {(r["hardware_profile_id"], r["arm"]): r["joules"] for r in found.energy_table}
    assert rows[("nvidia-h100-sxm (power limit 700 W · locked clocks no · driver major version 550)", "baseline")] == 100.0
    assert rows[("nvidia-h100-sxm (power limit 350 W · locked clocks no · driver major version 550)", "baseline")] == 60.0


def test_a_phase_merged_from_real_meter_segments_is_flagged_by_its_summed_capped_time():
    from eitp_bench.energy.monitor import EnergyMonitor, merge_windows

    clock = ManualClock(0.0)
    nvml = FakeNvml(gpus=[FakeGpu()], clock=clock)
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock, torch_uuids=None, env={})
    monitor = EnergyMonitor(meters=[meter], cuda_sync=False)
    results = []
    for seconds, capped in ((2.0, 1.0), (18.0, 0.0)):  # 50 % capped for 2 s, then 18 s free: 5 % overall
        with monitor.window("train") as w:
            nvml.add_violation(0, "power", capped)
            clock.advance(seconds)
        results.append(w.result)
    assert "throttled_power" in codes(results[0].energy[0])
    (merged,) = merge_windows(results, "train")
    assert merged.hw_state["throttle_share"]["power"] == pytest.approx(0.05, abs=1e-6)
    assert "throttled_power" not in codes(merged)
    monitor.close()


def test_the_fake_pynvml_module_throttles_from_the_environment(monkeypatch):
    import importlib
    import sys as _sys
    from pathlib import Path

    monkeypatch.setenv("EITP_TEST_FAKE_GPU_POWER_THROTTLE", "0.3")
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "fake_pynvml"))
    monkeypatch.delitem(_sys.modules, "pynvml", raising=False)
    fake = importlib.import_module("pynvml")
    try:
        assert fake.gpu(0).power_throttle_share == 0.3
    finally:
        _sys.modules.pop("pynvml", None)


def test_the_worker_records_the_state_and_never_fails_on_it(tmp_path):
    from eitp_bench.runner.worker import _run_state

    cpu_only = _run_state(None)
    assert cpu_only["gpus"] == [] and cpu_only["driver_version"] is None and "governors" in cpu_only["cpu"]

    class Broken:
        def static_state(self):
            raise RuntimeError("driver gone")

        def info(self):
            raise RuntimeError("driver gone")

    assert run_state(Broken(), cpu_root=str(tmp_path))["gpus"] == []


def test_a_windows_maximum_temperature_includes_the_samplers_polls():
    clock = ManualClock(0.0)
    nvml = FakeNvml(gpus=[FakeGpu(temperature_c=60)], clock=clock)
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock, torch_uuids=None, env={})
    meter.sample_now()  # a poll before the window: not the window's
    nvml.gpu(0).temperature_c = 99
    clock.advance(1.0)
    meter.sample_now()
    nvml.gpu(0).temperature_c = 60
    clock.advance(1.0)
    b = meter.mark()
    for temp in (70, 91, 75):  # one poll a second
        nvml.gpu(0).temperature_c = temp
        clock.advance(1.0)
        meter.sample_now()
    nvml.gpu(0).temperature_c = 72
    clock.advance(1.0)
    entry = meter.energy_between(b, meter.mark())[0]
    assert entry.hw_state["temperature_c"] == {"start": 60.0, "end": 72.0, "max": 91.0}


def test_regress_does_not_call_a_power_limit_change_a_regression():
    from eitp_bench.analysis.regress import find_changes, testable_series

    recs = []
    for i in range(24):  # the limit is lowered at run 12: J/token drops, s/step would rise
        limit = 700.0 if i < 12 else 350.0
        r = record("baseline", "generate", i, {"joules_per_token": 1.0 if i < 12 else 0.8},
                   profile="nvidia-h100-sxm", started=i)
        recs.append(with_state(r, state(limit)))
    f = frames_from_records_loaded(recs)
    assert [c for c in find_changes(f.metrics) if c.confirmed]  # pooled, as before: a "change"
    assert testable_series(f.metrics, provenance=f.provenance) == (2, 2)
    assert not [c for c in find_changes(f.metrics, provenance=f.provenance) if c.confirmed]


def test_measure_json_carries_the_window_state_and_the_throttle_flag(tmp_path):
    import json

    from fake_nvml import measure_a_sleep_with_fake_gpus

    proc = measure_a_sleep_with_fake_gpus(tmp_path, WATTS="300", POWER_THROTTLE="0.3")
    assert proc.returncode == 0, proc.stderr
    [gpu] = json.loads(proc.stdout)["energy"]
    assert gpu["hw_state"]["throttle_share"]["power"] == pytest.approx(0.3, abs=0.01)
    assert gpu["hw_state"]["power_limit_w"] == 700.0
    assert [f["code"] for f in gpu["flags"] if f["code"].startswith("throttled")] == ["throttled_power"]


def test_rows_labelled_by_state_id_read_as_rows_labelled_by_their_runs_provenance():
    """hwstate.StateLabels (compare and regress on a SQL store: each row carries its run's
    energy_state_id) gives each row the label and board that the run's provenance row gives it, a run
    without a state (null id) the empty label and no board, and drops the id column."""
    import numpy as np
    import pandas as pd

    from eitp_bench.analysis.hwstate import state_labels, with_state

    def state(uuid, limit, driver="550.54"):
        return {"driver_version": driver, "gpus": [{"uuid": uuid, "power_limit_w": limit, "clocks_locked": False}]}

    stored = {7: state("GPU-1", 700.0), 9: state("GPU-2", 350.0, "560.1"), 12: None}  # 12: text not JSON
    runs = ["r1", "r2", "r3", "r4", "r5"]
    ids = [7, 9, np.nan, 7, 12]
    provenance = pd.DataFrame({"run_id": runs, "hardware.state": [stored.get(i) for i in ids]})
    rows = pd.DataFrame({"run_id": runs * 2, "value": np.arange(10.0), "energy_state_id": ids * 2})
    by_id = with_state(rows, state_labels(stored))
    by_run = with_state(rows.drop(columns="energy_state_id"), provenance)
    assert list(by_id.columns) == list(by_run.columns) and "energy_state_id" not in by_id.columns
    assert by_id["energy_state"].tolist() == by_run["energy_state"].tolist()
    assert by_id["board"].equals(by_run["board"])
    assert [b if isinstance(b, str) else None for b in by_id["board"]][:5] == ["GPU-1", "GPU-2", None, "GPU-1", None]
    assert by_id["energy_state"].tolist()[:3] == [
        "power limit 700 W · locked clocks no · driver major version 550",
        "power limit 350 W · locked clocks no · driver major version 560", ""]

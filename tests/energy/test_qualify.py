"""Instrument qualification against simulated sensors whose update period, averaging and delay are known.

Every test runs on a ManualClock (sleep advances it), so the figures are exact functions of the
simulation, never of the machine's load.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from fake_nvml import FakeGpu, FakeNvml, ManualClock
from fake_powercap import FakePowercap
from fake_sensor import FakeLoad, SimulatedSensor

from eitp_bench.energy import qualify as q
from eitp_bench.energy.steady import flag_unsteady, required_s
from eitp_bench.flags import flag
from eitp_bench.records import EnergyEntry


def run(sensor_kw: dict, *, half=1.0, cycles=4, poll=0.001, load_kw=None):
    clock = ManualClock(100.0)
    load = FakeLoad(clock, **(load_kw or {}))
    sensor = SimulatedSensor(load, clock, **sensor_kw)
    result = q.qualify([sensor.as_sensor()], load, half_period_s=half, cycles=cycles, poll_s=poll,
                       clock=clock, sleep=clock.advance)
    return result.sensors[0]


@pytest.mark.parametrize("kw, half", [
    (dict(quantity="energy", period_s=0.001, phase_s=0.0003), 0.25),                   # RAPL-like counter
    (dict(quantity="energy", period_s=0.1, delay_s=0.02, phase_s=0.037), 1.0),          # NVML energy counter
    (dict(quantity="power", period_s=0.1, averaging_s=1.0, delay_s=0.05, phase_s=0.011), 2.0),  # 1-s average
    (dict(quantity="power", period_s=0.02, averaging_s=0.25, phase_s=0.005), 0.75),
])
def test_recovers_known_period_averaging_and_delay(kw, half):
    s = run(kw, half=half, poll=min(0.001, kw["period_s"] / 4))
    period = kw["period_s"]
    assert s.update_period_s == pytest.approx(period, rel=0.01)
    expected_w = max(kw.get("averaging_s", 0.0), period)
    assert s.averaging_window_s == pytest.approx(expected_w, rel=0.10)
    # the delay is resolved to a fraction of an update (phases average out over the 8 edges)
    assert s.delay_s == pytest.approx(kw.get("delay_s", 0.0), abs=0.15 * period + 0.002)
    assert s.edges_used == 8 and s.note == ""


def test_a_counter_that_never_moves_is_not_qualified():
    clock = ManualClock()
    load = FakeLoad(clock)
    frozen = q.Sensor("rapl", "cpu:0", "package", "energy", "energy_uj", lambda: 123.0)
    s = q.qualify([frozen], load, half_period_s=0.1, cycles=2, poll_s=0.001, clock=clock, sleep=clock.advance).sensors[0]
    assert s.update_period_s is None and s.edge_s is None and s.uncertainty(10) is None
    assert "did not update" in s.note


def test_a_sensor_that_does_not_follow_the_load_gets_its_period_only():
    s = run(dict(quantity="energy", period_s=0.001), half=0.2, load_kw={"step_w": 0.0})
    assert s.update_period_s == pytest.approx(0.001, rel=0.01)
    assert s.averaging_window_s is None and s.delay_s is None
    assert "no response" in s.note and s.step_fraction == pytest.approx(0.0, abs=1e-9)


def test_too_short_a_half_period_is_said():
    s = run(dict(quantity="power", period_s=0.1, averaging_s=1.0), half=0.6)
    assert s.averaging_window_s is None or "lower bounds" in s.note or "lengthen" in s.note


def test_uncertainty_formula():
    s = q.SensorQualification("nvml", "gpu:0", "gpu", "power", "power_usage", True, 0.1, 1.0, 0.05, 8, 100, 0.8)
    assert s.edge_s == pytest.approx(1.05)
    assert s.uncertainty(10.0) == pytest.approx(0.21)
    assert s.min_window_s(0.01) == pytest.approx(210.0)
    counter = q.SensorQualification("rapl", "cpu:0", "package", "energy", "energy_uj", True, 0.001, 0.001, 0.0, 8, 9, 0.5)
    assert counter.uncertainty(5.0) == pytest.approx(0.0004)
    stored = {"sensors": [s.as_dict(), counter.as_dict()]}
    assert q.window_uncertainty(stored, "nvml", "gpu:0", 10.0) == pytest.approx(0.21)
    assert q.window_uncertainty(stored, "rapl", "cpu:0", 5.0) == pytest.approx(0.0004)
    assert q.window_uncertainty(stored, "rapl", "cpu:1", 5.0) is None
    assert q.window_uncertainty(None, "rapl", "cpu:0", 5.0) is None


def test_fake_nvml_gpu_counter_and_averaged_power():
    clock = ManualClock(50.0)
    load = FakeLoad(clock, idle_w=60.0, step_w=240.0)
    nvml = FakeNvml(gpus=[FakeGpu(name="NVIDIA A100", arch="ampere", instant_field=False, counter_period_s=0.1,
                                  watts=load.power)], clock=clock)
    plan = q.Plan(gpu_half_period_s=2.0, gpu_cycles=3, gpu_poll_s=0.01)
    out = q.qualify_here(rapl_root="/nonexistent", nvml=nvml, plan=plan, gpu_load=lambda device: load,
                         clock=clock, sleep=clock.advance)
    by_source = {s["source"]: s for s in out["sensors"]}
    counter, power = by_source["total_energy"], by_source["power_usage"]
    assert counter["windows"] and not power["windows"]  # windows rest on the counter
    assert counter["update_period_s"] == pytest.approx(0.1, rel=0.02)
    assert power["averaging_window_s"] == pytest.approx(1.0, rel=0.10)  # the 1-s mean of GetPowerUsage
    assert out["runs"][0]["meter"] == "nvml" and out["problems"] == []
    assert nvml._init_count == 0  # the meter it opened was shut down


def test_rapl_zones_read_from_a_fake_tree(tmp_path):
    """The real file path: a fake powercap tree whose counters follow the load, updated every 1 ms."""
    fake = FakePowercap(tmp_path / "sys")
    fake.add_package(0, children=("dram",))
    clock = ManualClock(0.0)
    load = FakeLoad(clock, idle_w=10.0, step_w=30.0)
    state = {"u": 0.0, "e": 0.0}

    def sleep(dt):
        clock.advance(dt)
        while state["u"] + 0.001 <= clock() + 1e-12:  # every 1 ms update: package follows, dram stays
            state["u"] += 0.001
            e = load.energy_until(state["u"])
            fake.advance("intel-rapl:0", e - state["e"])
            fake.advance("intel-rapl:0:0", 0.002)
            state["e"] = e

    plan = q.Plan(cpu_half_period_s=0.1, cpu_cycles=3, cpu_poll_s=0.00025)
    out = q.qualify_here(rapl_root=fake.root, gpu=False, plan=plan, cpu_load=lambda: load, clock=clock, sleep=sleep)
    by_domain = {s["domain"]: s for s in out["sensors"]}
    assert by_domain["package"]["update_period_s"] == pytest.approx(0.001, rel=0.05)
    assert by_domain["package"]["delay_s"] == pytest.approx(0.0, abs=0.0005)
    assert "no response" in by_domain["dram"]["note"]  # constant dram power: period only


def test_qualify_for_suite_is_off_by_default():
    from eitp_bench.suite import load_suite

    suite = load_suite("smoke")
    assert suite.meters.qualify is False and q.qualify_for_suite(suite) is None


def test_doctor_qualify_end_to_end(tmp_path):
    fake = FakePowercap(tmp_path / "sys")
    fake.add_package(0, max_range_uj=400_000_000)
    env = dict(os.environ, EITP_BENCH_POWERCAP_ROOT=str(fake.root))
    watts = {"intel-rapl:0": 30.0, "intel-rapl:0:0": 20.0, "intel-rapl:0:1": 3.0, "intel-rapl:0:2": 5.0}
    with fake.simulate(watts):
        proc = subprocess.run([sys.executable, "-m", "eitp_bench.cli", "doctor", "--qualify", "--json"],
                              capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    qual = out["qualification"]
    zones = {(s["device"], s["domain"]) for s in qual["sensors"]}
    assert {("cpu:0", "package"), ("cpu:0", "core"), ("cpu:0", "dram")} <= zones
    # real time on a shared machine: only what cannot depend on the load is asserted. A loaded machine can
    # starve the fake's writer thread (too few changes) or make it catch up in one jump (refused): then the
    # sensor has no period and says why, never a period of 0 or below
    for sensor in qual["sensors"]:
        if sensor["update_period_s"] is None:
            assert sensor["note"].startswith(("only ", "refused: ")), sensor
        else:
            assert sensor["update_period_s"] > 0
    assert qual["runs"][0]["meter"] == "rapl" and qual["uncertainty_formula"].startswith("u(T) = 2")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_kill_9_of_doctor_qualify_takes_its_load_processes(tmp_path):
    from process_checks import cmdline, descendants, kill_9_and_check_the_tree_dies, wait_for

    fake = FakePowercap(tmp_path / "sys")
    fake.add_package(0, max_range_uj=400_000_000)
    env = dict(os.environ, EITP_BENCH_POWERCAP_ROOT=str(fake.root))
    with fake.simulate({"intel-rapl:0": 30.0}):
        proc = subprocess.Popen([sys.executable, "-m", "eitp_bench.cli", "doctor", "--qualify", "--json"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            loads = lambda: [p for p in descendants(proc.pid) if "while True" in cmdline(p)]  # noqa: E731
            wait_for(lambda: loads() or proc.poll() is not None, "the load processes", timeout=60)
            assert proc.poll() is None
            kill_9_and_check_the_tree_dies(proc)  # the busy loops (running or stopped) die with it
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


def test_doctor_qualify_without_sensors_exits_1(tmp_path):
    env = dict(os.environ, EITP_BENCH_POWERCAP_ROOT=str(tmp_path / "none"))
    proc = subprocess.run([sys.executable, "-m", "eitp_bench.cli", "doctor", "--qualify", "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    out = json.loads(proc.stdout)
    assert proc.returncode == 1 and out["qualification"] is None and out["can_measure"] is False


# --- steady-state windows ------------------------------------------------------------------------

def entry(meter="rapl", duration=4.9, method="counter", flags=()):
    return EnergyEntry(meter=meter, device="cpu:0", domain="package", joules=10.0, method=method,
                       duration_s=duration, samples=10, flags=list(flags))


def test_windows_under_five_seconds_are_not_steady():
    short, long_, est = entry(duration=4.9), entry(duration=5.0), entry(duration=1.0, method="estimated")
    out = flag_unsteady([short, long_, est])
    assert [f.code for f in out[0].flags] == ["not_steady"] and "4.9 s" in out[0].flags[0].message
    assert out[1].flags == [] and out[2].flags == []
    assert short.flags == []  # copies: the input is untouched
    assert flag_unsteady(out)[0].flags == out[0].flags  # flagged once


def test_a_suite_can_raise_the_minimum_but_never_lower_it():
    assert required_s("rapl", 0.0) == 5.0 and required_s("rapl", 0.05) == 5.0
    assert required_s("rapl", 12.0) == 12.0
    assert required_s("nvml", None) == pytest.approx(5.0)  # 50 updates of 100 ms
    assert [f.code for f in flag_unsteady([entry(duration=8.0)], 10.0)[0].flags] == ["not_steady"]


def test_not_steady_is_a_fault_for_the_judge():
    from eitp_bench.flags import FAULT_CODES

    assert "not_steady" in FAULT_CODES and flag("not_steady", "x").code == "not_steady"


def test_a_poller_too_slow_for_the_update_period_says_so():
    s = run(dict(quantity="energy", period_s=0.001), half=0.2, poll=0.0006)
    assert "too slowly" in s.note
    assert "too slowly" not in run(dict(quantity="energy", period_s=0.001), half=0.2, poll=0.0002).note


# --- counters qualification refuses, and every sensor listed ---------------------------------------

def test_counters_that_go_back_jump_or_read_at_random_are_refused_and_every_sensor_is_listed():
    import dataclasses
    import random as rnd

    clock = ManualClock()
    load = FakeLoad(clock, idle_w=20.0, step_w=40.0)
    healthy = SimulatedSensor(load, clock, quantity="energy", period_s=0.001, domain="package").as_sensor()
    base = SimulatedSensor(load, clock, quantity="energy", period_s=0.001, domain="core")
    jumper = dataclasses.replace(base.as_sensor(), domain="core",
                                 read=lambda: base.read() + (8.0 if clock() > 0.3 else 0.0))  # +8 J at 0.3 s
    down = dataclasses.replace(base.as_sensor(), domain="uncore", read=lambda: 1000.0 - base.read())
    noise = rnd.Random(1)
    random_counter = dataclasses.replace(base.as_sensor(), domain="dram", read=lambda: noise.uniform(0, 400))

    def unreadable() -> float:
        raise OSError("energy_uj unreadable (PermissionError: root-only since CVE-2020-8694)")

    gone = q.Sensor("rapl", "cpu:1", "package", "energy", "intel-rapl:1/energy_uj", unreadable)
    sensors = [dataclasses.replace(s, max_watts=1000.0) for s in (healthy, jumper, down, random_counter, gone)]
    result = q.qualify(sensors, load, half_period_s=0.2, cycles=2, poll_s=0.0002, clock=clock, sleep=clock.advance)
    listed = {(s.device, s.domain) for s in result.sensors} | {
        (p.split()[1].split("/")[0], p.split()[1].split("/")[1]) for p in result.problems}
    assert listed == {("cpu:0", "package"), ("cpu:0", "core"), ("cpu:0", "uncore"), ("cpu:0", "dram"),
                      ("cpu:1", "package")}  # all five, none dropped
    by_domain = {s.domain: s for s in result.sensors}
    assert by_domain["package"].update_period_s == pytest.approx(0.001, rel=0.01)  # the healthy one qualifies
    for domain, why in (("core", "jumping or random"), ("uncore", "not monotonic"), ("dram", "")):
        refused = by_domain[domain]
        assert refused.note.startswith("refused:") and why in refused.note
        assert refused.update_period_s is None and refused.uncertainty(10.0) is None  # no finite uncertainty
        assert any(f"cpu:0/{domain}" in p and "refused" in p for p in result.problems)
    assert any("cpu:1/package" in p and "PermissionError" in p for p in result.problems)


def test_rapl_sensors_list_an_unreadable_zone_with_its_reason(tmp_path):
    fake = FakePowercap(tmp_path / "sys")
    fake.add_package(0, children=("dram",))
    from fake_powercap import FailingReader

    reader = FailingReader()
    reader.fail("intel-rapl:0:0/energy_uj", PermissionError(13, "Permission denied"))
    sensors = q.rapl_sensors(fake.root, reader=reader)
    assert {(s.device, s.domain) for s in sensors} == {("cpu:0", "package"), ("cpu:0", "dram")}
    with pytest.raises(OSError, match="PermissionError"):
        next(s for s in sensors if s.domain == "dram").read()

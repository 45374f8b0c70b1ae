"""Whole-node meters (IPMI DCMI through a fake `ipmitool` on PATH, Redfish through a fake BMC on
127.0.0.1) and the layers check: node ≥ GPU + CPU package + DRAM within the stated uncertainties."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_powercap import FakePowercap
from fake_redfish import PASSWORD, USER, FakeRedfish

from eitp_bench.energy import layers
from eitp_bench.energy.ipmi import IpmiDcmiMeter, parse_reading
from eitp_bench.energy.node_power import NodeReadError
from eitp_bench.energy.redfish import RedfishClient, RedfishMeter, shown
from eitp_bench.records import EnergyEntry

FAKE_BIN = Path(__file__).parents[1] / "fake_ipmitool"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def ipmi(tmp_path, monkeypatch):
    """The fake ipmitool first on PATH; write watts (or `fail: …`) with the returned function."""
    reading = tmp_path / "ipmi_reading"
    monkeypatch.setenv("PATH", f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("EITP_FAKE_IPMI_READING", str(reading))
    monkeypatch.delenv("EITP_BENCH_IPMI", raising=False)

    def set_reading(value) -> None:
        reading.write_text(f"{value}\n")

    set_reading(200)
    return set_reading


# --- IPMI DCMI ------------------------------------------------------------------------------------

def test_parse_reading_takes_the_instantaneous_watts():
    text = "    Instantaneous power reading:     231 Watts\n    Power reading state is:     activated\n"
    assert parse_reading(text) == 231.0
    with pytest.raises(NodeReadError, match="deactivated"):
        parse_reading(text.replace("activated", "deactivated"))
    with pytest.raises(NodeReadError, match="Instantaneous power reading"):
        parse_reading("Power reading state is: activated\n")


def test_ipmi_probe_reads_through_the_fake_ipmitool(ipmi):
    ipmi(315)
    [status] = IpmiDcmiMeter.probe()
    assert status.available and status.domain == "node" and "315 W" in status.reason


def test_ipmi_probe_without_ipmitool_gives_reason_and_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    [status] = IpmiDcmiMeter.probe()
    assert not status.available and "not on PATH" in status.reason and "ipmitool" in status.fix


def test_ipmi_probe_names_the_bmc_failure(ipmi):
    ipmi("fail: Could not open device at /dev/ipmi0: No such file or directory")
    [status] = IpmiDcmiMeter.probe()
    assert not status.available and "Could not open device" in status.reason and status.fix


def test_ipmi_switched_off(ipmi, monkeypatch):
    monkeypatch.setenv("EITP_BENCH_IPMI", "0")
    [status] = IpmiDcmiMeter.probe()
    assert not status.available and "EITP_BENCH_IPMI" in status.reason


def test_ipmi_meter_integrates_its_readings(ipmi):
    clock = Clock()
    meter = IpmiDcmiMeter(interval=1.0, clock=clock)  # not started: the test takes each reading
    ipmi(100)
    meter.sample_now()
    begin = meter.mark()
    clock.t = 1.0
    ipmi(200)
    meter.sample_now()
    clock.t = 2.0
    meter.sample_now()
    clock.t = 2.5
    end = meter.mark()
    [e] = meter.energy_between(begin, end)
    # trapezoids: 0–1 s at (100+200)/2, 1–2 s at 200, 2–2.5 s the last reading held
    assert e.joules == pytest.approx(150 + 200 + 100)
    assert (e.method, e.meter, e.device, e.domain) == ("sampled", "ipmi", "node:0", "node")
    assert e.samples == 3 and e.max_gap_s == pytest.approx(1.0) and e.flags == []


def test_ipmi_failed_reads_are_flags_never_numbers(ipmi):
    clock = Clock()
    meter = IpmiDcmiMeter(interval=1.0, clock=clock)
    ipmi("fail: BMC busy")
    meter.sample_now()
    begin = meter.mark()
    clock.t = 1.0
    meter.sample_now()
    [e] = meter.energy_between(begin, meter.mark())
    assert e.joules is None and [f.code for f in e.flags] == ["unreadable"] and "BMC busy" in e.flags[0].message

    ipmi(100)
    clock.t = 2.0
    meter.sample_now()
    begin = meter.mark()
    ipmi("fail: BMC busy")
    clock.t = 3.0
    meter.sample_now()
    ipmi(100)
    clock.t = 4.0
    meter.sample_now()
    [e] = meter.energy_between(begin, meter.mark())
    assert e.joules == pytest.approx(200.0)  # 2 s at 100 W over the hole
    assert [f.code for f in e.flags] == ["read_failed"] and e.max_gap_s == pytest.approx(2.0)


def test_a_window_shorter_than_the_poll_holds_the_last_reading_and_says_so(ipmi):
    clock = Clock()
    meter = IpmiDcmiMeter(interval=1.0, clock=clock)
    ipmi(300)
    meter.sample_now()
    clock.t = 0.2
    begin = meter.mark()
    clock.t = 0.5
    [e] = meter.energy_between(begin, meter.mark())
    assert e.joules == pytest.approx(90.0) and [f.code for f in e.flags] == ["few_readings"]


# --- Redfish --------------------------------------------------------------------------------------

def redfish_env(url: str, password: str = PASSWORD) -> dict[str, str]:
    return {"EITP_BENCH_REDFISH_URL": url, "EITP_BENCH_REDFISH_USER": USER, "EITP_BENCH_REDFISH_PASSWORD": password}


@pytest.mark.parametrize("kind", ["Power", "EnvironmentMetrics", "PowerSubsystem"])
def test_redfish_reads_the_chassis_power(kind):
    with FakeRedfish(watts=412.5, kind=kind) as bmc:
        [status] = RedfishMeter.probe(env=redfish_env(bmc.url))
        assert status.available and "412.5 W" in status.reason and kind in status.reason
        clock = Clock()
        meter = RedfishMeter(RedfishClient(bmc.url, USER, PASSWORD), interval=1.0, clock=clock)
        meter.sample_now()
        begin = meter.mark()
        bmc.watts = 400.0
        clock.t = 2.0
        meter.sample_now()
        [e] = meter.energy_between(begin, meter.mark())
    assert e.joules == pytest.approx((412.5 + 400.0) / 2 * 2)
    assert (e.meter, e.domain, e.method) == ("redfish", "node", "sampled")


def test_redfish_is_opt_in():
    [status] = RedfishMeter.probe(env={})
    assert not status.available and "EITP_BENCH_REDFISH_URL is not set" in status.reason
    assert "EITP_BENCH_REDFISH_USER" in status.fix


def test_redfish_wrong_password_is_named_and_never_printed():
    with FakeRedfish() as bmc:
        [status] = RedfishMeter.probe(env=redfish_env(bmc.url, password="wrong-pass"))
        host = bmc.url.split("//")[1]
        [inline] = RedfishMeter.probe(env={"EITP_BENCH_REDFISH_URL": f"http://{USER}:hunter2@{host}"})
    assert not status.available and "authentication failed" in status.reason
    assert "wrong-pass" not in status.reason + (status.fix or "")
    assert not inline.available and "hunter2" not in inline.reason + (inline.fix or "")
    assert shown(f"https://{USER}:hunter2@bmc:8443/redfish/v1") == "https://bmc:8443/redfish/v1"


def test_redfish_unreachable_bmc_is_a_status_not_a_crash():
    with FakeRedfish() as bmc:
        url = bmc.url
    [status] = RedfishMeter.probe(env=redfish_env(url))  # the server has gone
    assert not status.available and "Redfish GET" in status.reason


# --- the layers check -----------------------------------------------------------------------------

def entry(meter, device, domain, joules, method="counter"):
    return EnergyEntry(window="w", device=device, domain=domain, joules=joules, method=method, meter=meter,
                       duration_s=10.0)


def parts():
    return [entry("nvml", "gpu:0", "gpu", 800.0), entry("rapl", "cpu:0", "package", 300.0),
            entry("rapl", "cpu:0", "dram", 50.0), entry("rapl", "cpu:0", "core", 200.0)]  # core is inside package


def test_layers_show_the_remainder_when_the_node_adds_up():
    energy = layers.check_layers([*parts(), entry("ipmi", "node:0", "node", 1500.0, "sampled")])
    [c] = layers.layers_of(energy)
    assert c.parts_joules == pytest.approx(1150.0)  # gpu + package + dram, never core
    assert c.remainder_joules == pytest.approx(350.0) and c.adds_up
    assert not any(f.code == "layers_mismatch" for e in energy for f in e.flags)


def test_node_below_the_parts_beyond_the_uncertainties_is_flagged():
    # tolerance: 5 % of node (50) + 5 % of each part (57.5) = 107.5 J; the deficit is 150 J
    energy = layers.check_layers([*parts(), entry("ipmi", "node:0", "node", 1000.0, "sampled")])
    [c] = layers.layers_of(energy)
    assert c.tolerance_joules == pytest.approx(107.5) and not c.adds_up
    flagged = {(e.device, e.domain) for e in energy if any(f.code == "layers_mismatch" for f in e.flags)}
    assert flagged == {("node:0", "node"), ("gpu:0", "gpu"), ("cpu:0", "package"), ("cpu:0", "dram")}


def test_node_below_the_parts_within_the_uncertainties_is_not_flagged():
    energy = layers.check_layers([*parts(), entry("ipmi", "node:0", "node", 1100.0, "sampled")])
    [c] = layers.layers_of(energy)
    assert c.remainder_joules == pytest.approx(-50.0) and c.adds_up


def test_no_node_meter_no_check():
    assert layers.summary(parts()) is None


# --- the CLI: doctor and measure ------------------------------------------------------------------

def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "eitp_bench.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_doctor_lists_both_node_meters_with_reason_and_fix(ipmi, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("EITP_BENCH_REDFISH")}
    env["EITP_BENCH_POWERCAP_ROOT"] = str(tmp_path / "none")
    ipmi(250)
    out = json.loads(cli("doctor", "--json", env=env).stdout)
    rows = {m["meter"]: m for m in out["meters"] if m["domain"] == "node"}
    assert rows["ipmi"]["available"] and "250 W" in rows["ipmi"]["reason"]
    assert not rows["redfish"]["available"] and rows["redfish"]["reason"] and rows["redfish"]["fix"]
    assert not out["can_measure"]  # a node meter alone does not measure the workload's devices


@pytest.mark.parametrize("node_watts, adds_up", [(400, True), (10, False)])
def test_measure_json_shows_the_node_beside_measured_joules_never_in_it(ipmi, tmp_path, node_watts, adds_up):
    tree = FakePowercap(tmp_path / "sys")
    tree.add_package(0, max_range_uj=400_000_000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EITP_BENCH_REDFISH")}
    env["EITP_BENCH_POWERCAP_ROOT"] = str(tree.root)
    ipmi(node_watts)
    with tree.simulate({"intel-rapl:0": 40.0, "intel-rapl:0:0": 25.0, "intel-rapl:0:2": 6.0}):
        proc = cli("measure", "--json", "--", sys.executable, "-c", "import time; time.sleep(0.6)", env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    rows = {(r["meter"], r["domain"]): r for r in out["energy"]}
    node, pkg, dram = rows[("ipmi", "node")], rows[("rapl", "package")], rows[("rapl", "dram")]
    assert node["method"] == "sampled" and node["joules"] == pytest.approx(node_watts * node["duration_s"])
    assert out["measured_joules"] == pytest.approx(pkg["joules"] + dram["joules"])  # the node is not in it
    [check] = out["layers"]
    assert check["node_meter"] == "ipmi" and check["adds_up"] is adds_up
    assert check["remainder_joules"] == pytest.approx(node["joules"] - pkg["joules"] - dram["joules"])
    codes = {f["code"] for f in node["flags"]}
    assert ("layers_mismatch" in codes) is not adds_up
    assert ("layers_mismatch" in out["measured_joules_flags"]) is not adds_up


# --- what the judge and the report make of node entries ------------------------------------------

def _judged(records):
    from synthetic_store import frames_from_records

    from eitp_bench.analysis.frames import load_frames
    from eitp_bench.report.build import findings_of

    findings = findings_of(load_frames(frames_from_records(records)), "eitp", n_resamples=200)
    [group] = findings.to_json()["groups"]
    return findings, group, {v["claim"]: v for v in group["verdicts"]}


def _with_node(mismatch: bool):
    from synthetic_store import eitp_records

    from eitp_bench.flags import flag

    records = eitp_records(n_reps=10)
    for r in records:
        for e in [e for e in r.energy if e.domain == "package" and e.valid]:
            node_j = e.joules * (0.5 if mismatch else 2.0)
            node = EnergyEntry(window=e.window, device="node:0", domain="node", joules=node_j, method="sampled",
                               meter="ipmi", duration_s=e.duration_s, samples=1,
                               flags=[flag("few_readings", "ipmi: 1 reading(s)")])
            r.energy.append(node)
            layers.check_layers(r.energy)
    return records


def test_node_entries_show_in_the_energy_table_and_leave_the_verdicts_alone():
    from eitp_bench.report.build import render_report

    findings, group, verdicts = _judged(_with_node(mismatch=False))
    assert any(row["domain"] == "node" and row["meter"] == "ipmi" for row in findings.energy_table)
    assert "node:0" in render_report(findings)  # the report's energy table shows it, as any other row
    assert group["energy_windows_skipped"] == {}  # few_readings on the node is a note, not a fault
    assert verdicts["training-energy-per-step"]["verdict"] == "REFUTED"  # as without the node meter


def test_a_window_whose_node_does_not_add_up_is_skipped_by_the_energy_judge():
    _, group, verdicts = _judged(_with_node(mismatch=True))
    assert group["energy_windows_skipped"].get("layers_mismatch", 0) > 0
    assert verdicts["training-energy-per-step"]["verdict"] != "REFUTED"


def test_a_short_node_entry_is_not_a_steady_state_fault():
    from eitp_bench.energy.steady import flag_unsteady

    short_node = entry("ipmi", "node:0", "node", 100.0, "sampled").model_copy(update={"duration_s": 1.0})
    short_pkg = entry("rapl", "cpu:0", "package", 30.0).model_copy(update={"duration_s": 1.0})
    node, pkg = flag_unsteady([short_node, short_pkg])
    assert node.flags == [] and [f.code for f in pkg.flags] == ["not_steady"]


def test_each_host_s_node_is_checked_against_that_host_s_parts():
    def on(host, e):
        return e.model_copy(update={"host": host, "flags": []})

    energy = [on("a", entry("nvml", "gpu:0", "gpu", 800.0)), on("a", entry("ipmi", "node:0", "node", 1000.0, "sampled")),
              on("b", entry("nvml", "gpu:0", "gpu", 800.0)), on("b", entry("ipmi", "node:0", "node", 500.0, "sampled"))]
    checks = {c.host: c for c in layers.layers_of(layers.check_layers(energy))}
    assert checks["a"].adds_up and checks["a"].parts_joules == pytest.approx(800.0)  # never both hosts' GPUs
    assert not checks["b"].adds_up
    flagged = [(e.host, e.domain) for e in energy if any(f.code == "layers_mismatch" for f in e.flags)]
    assert flagged == [("b", "gpu"), ("b", "node")]

"""CpuTimeEstimateMeter: hand-computed joules on scripted CPU time, and real getrusage behaviour."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from eitp_bench.energy.estimate import (
    CHILDREN_FLAG,
    ESTIMATE_FLAG,
    CpuTimeEstimateMeter,
    process_cpu_seconds,
)


class Script:
    def __init__(self):
        self.cpu = 0.0
        self.t = 0.0


def test_joules_are_cpu_seconds_times_tdp_per_core():
    s = Script()
    meter = CpuTimeEstimateMeter(tdp_w=65.0, logical_cores=8, cpu_seconds=lambda: s.cpu, clock=lambda: s.t)
    begin = meter.mark()
    s.cpu, s.t = 2.0, 1.0  # two cores busy for one second
    [e] = meter.energy_between(begin, meter.mark())
    assert e.joules == pytest.approx(2.0 * 65.0 / 8)  # 16.25 J
    assert (e.device, e.domain, e.method, e.meter, e.duration_s) == ("cpu:0", "package", "estimated", "estimate", 1.0)
    assert ESTIMATE_FLAG in e.flags and CHILDREN_FLAG in e.flags
    assert [f.code for f in e.flags] == ["estimated", "children_cpu_time"]
    assert meter.info()["tdp_source"] == "given"


def test_default_tdp_is_four_watts_per_core_and_flagged():
    s = Script()
    meter = CpuTimeEstimateMeter(logical_cores=6, cpu_seconds=lambda: s.cpu, clock=lambda: s.t)
    assert meter.tdp_watts == 24.0 and meter.watts_per_core == 4.0
    begin = meter.mark()
    s.cpu, s.t = 3.0, 2.0
    [e] = meter.energy_between(begin, meter.mark())
    assert e.joules == pytest.approx(12.0)
    assert any(f.code == "tdp_default" and f.message.startswith("TDP default: no hardware profile") for f in e.flags)


def test_cpu_time_going_backwards_is_invalid_not_negative():
    s = Script()
    meter = CpuTimeEstimateMeter(tdp_w=10, logical_cores=1, cpu_seconds=lambda: s.cpu, clock=lambda: s.t)
    s.cpu = 5.0
    begin = meter.mark()
    s.cpu = 4.0
    [e] = meter.energy_between(begin, meter.mark())
    assert e.joules is None and any(f.code == "reset" and "went backwards" in f.message for f in e.flags)


def test_real_cpu_time_of_a_busy_loop_is_at_most_its_wall_time():
    meter = CpuTimeEstimateMeter(tdp_w=1.0, logical_cores=1)  # 1 W per core: joules = CPU seconds
    begin = meter.mark()
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        pass
    [e] = meter.energy_between(begin, meter.mark())
    # One busy thread: CPU time ≤ wall time (plus getrusage's tick granularity); > 0 unless starved.
    assert 0 < e.joules <= e.duration_s + 0.02


CHILD = """
import sys, time
end = time.process_time() + 0.3
while time.process_time() < end: pass
print(time.process_time(), flush=True)
sys.stdin.read()  # wait until the parent closes our stdin
"""


def test_childrens_cpu_time_counts_once_they_have_been_waited_for():
    meter = CpuTimeEstimateMeter(tdp_w=1.0, logical_cores=1)
    begin = meter.mark()
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child_cpu = float(child.stdout.readline())  # the child has burnt ≥ 0.3 s and is now idle
    [running] = meter.energy_between(begin, meter.mark())
    child.stdin.close()
    child.wait()
    [waited] = meter.energy_between(begin, meter.mark())
    assert child_cpu >= 0.3
    assert running.joules < 0.3  # not yet waited for: only our own (small) CPU time
    assert waited.joules >= child_cpu - 0.02  # now included (getrusage tick granularity)


def test_probe_says_always_available_but_an_estimate():
    [s] = CpuTimeEstimateMeter.probe()
    assert s.available and s.details["method"] == "estimated" and "estimate" in s.reason


def test_process_cpu_seconds_is_monotonic():
    a = process_cpu_seconds()
    sum(range(200_000))
    assert process_cpu_seconds() >= a

"""EnergyMonitor windows over a scripted meter whose true energy is known exactly."""

from __future__ import annotations

import threading
import time

import pytest

from eitp_bench.energy.base import Channel, Meter
from eitp_bench.flags import flag
from eitp_bench.records import EnergyEntry
from eitp_bench.energy.monitor import EnergyMonitor


class ScriptedClockMeter(Meter):
    """A counter meter on a manual clock: power is piecewise constant, so joules are exact."""

    def __init__(self, name="rapl", device="cpu:0", domain="package", method="counter"):
        self.name, self.device, self.domain, self.method = name, device, domain, method
        self.t = 0.0
        self.joules = 0.0
        self.watts = 0.0
        self.broken = False
        self._lock = threading.Lock()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds
            self.joules += self.watts * seconds

    def channels(self):
        return [Channel(self.name, self.device, self.domain)]

    def mark(self):
        with self._lock:
            return (self.t, self.joules, self.broken)

    def energy_between(self, begin, end):
        (t0, j0, bad0), (t1, j1, bad1) = begin, end
        bad = bad0 or bad1
        return [
            EnergyEntry(
                meter=self.name,
                device=self.device,
                domain=self.domain,
                joules=None if bad else j1 - j0,
                method=self.method,
                duration_s=t1 - t0,
                samples=2,
                flags=[flag("unreadable", "scripted failure")] if bad else [],
            )
        ]


def test_nested_and_overlapping_windows_get_exact_energy():
    meter = ScriptedClockMeter()
    meter.watts = 20.0
    monitor = EnergyMonitor([meter], cuda_sync=False)
    outer = monitor.begin("outer")
    meter.advance(1.0)
    with monitor.window("inner") as inner:
        meter.advance(2.0)
        overlap = monitor.begin("overlap")
    meter.advance(0.5)
    meter.watts = 100.0
    meter.advance(1.0)
    r_overlap = overlap.end()
    r_outer = outer.end()

    assert inner.result.energy[0].joules == pytest.approx(40.0)
    assert r_overlap.energy[0].joules == pytest.approx(0.5 * 20 + 1.0 * 100)
    assert r_outer.energy[0].joules == pytest.approx(3.5 * 20 + 100)
    assert r_outer.measured_joules == pytest.approx(170.0)
    assert [r.name for r in monitor.results] == ["inner", "overlap", "outer"]


def test_window_as_decorator_measures_each_call():
    meter = ScriptedClockMeter()
    meter.watts = 10.0
    monitor = EnergyMonitor([meter], cuda_sync=False)

    @monitor.window("step")
    def step(seconds):
        meter.advance(seconds)
        return seconds

    assert step(1.0) == 1.0
    assert step.result.energy[0].joules == pytest.approx(10.0)
    step(3.0)
    assert step.result.energy[0].joules == pytest.approx(30.0)
    assert len(monitor.results) == 2


def test_idle_baseline_gives_net_joules():
    meter = ScriptedClockMeter()
    meter.watts = 12.0

    # measure_idle sleeps in real time; advance the scripted clock from a thread meanwhile.
    def tick():
        for _ in range(10):
            meter.advance(0.01)
            time.sleep(0.002)

    monitor = EnergyMonitor([meter], cuda_sync=False)
    ticker = threading.Thread(target=tick)
    ticker.start()
    baseline = monitor.measure_idle(0.1)
    ticker.join()
    # the window closes after the ticker may still be running; its watts are exact either way
    assert baseline.watts[("rapl", "cpu:0", "package")] == pytest.approx(12.0)

    meter.watts = 52.0
    with monitor.window("work") as w:
        meter.advance(2.0)
    e = w.result.energy[0]
    assert e.joules == pytest.approx(104.0)
    assert e.idle_watts == pytest.approx(12.0)
    assert e.net_joules == pytest.approx(104.0 - 24.0)
    assert w.result.net_measured_joules == pytest.approx(80.0)
    entry = w.result.entries()[0]
    assert entry.net_joules == pytest.approx(80.0) and entry.window == "work"


def test_estimates_never_enter_measured_totals():
    sensor = ScriptedClockMeter()
    sensor.watts = 5.0
    guess = ScriptedClockMeter(name="estimate", method="estimated")
    guess.watts = 1000.0
    monitor = EnergyMonitor([sensor, guess], cuda_sync=False)
    with monitor.window("w") as w:
        sensor.advance(1.0)
        guess.advance(1.0)
    assert w.result.measured_joules == pytest.approx(5.0)
    assert w.result.estimated_joules == pytest.approx(1000.0)


def test_only_estimates_means_no_measured_total():
    guess = ScriptedClockMeter(name="estimate", method="estimated")
    guess.watts = 3.0
    monitor = EnergyMonitor([guess], cuda_sync=False)
    with monitor.window("w") as w:
        guess.advance(1.0)
    assert w.result.measured_joules is None
    assert not monitor.measures_anything


def test_invalid_domain_is_flagged_not_zero():
    good = ScriptedClockMeter(device="cpu:0", domain="package")
    bad = ScriptedClockMeter(device="cpu:0", domain="dram")
    good.watts = bad.watts = 10.0
    monitor = EnergyMonitor([good, bad], cuda_sync=False)
    with monitor.window("w") as w:
        good.advance(1.0)
        bad.advance(1.0)
        bad.broken = True
    dram = next(e for e in w.result.energy if e.domain == "dram")
    assert dram.joules is None and [f.code for f in dram.flags] == ["unreadable"] and dram.watts is None
    assert {e.window for e in w.result.energy} == {"w"}  # the monitor names the meters' entries
    assert w.result.measured_joules == pytest.approx(10.0)
    assert not w.result.complete


def test_child_domains_are_not_added_to_totals():
    pkg = ScriptedClockMeter(domain="package")
    core = ScriptedClockMeter(domain="core")
    psys = ScriptedClockMeter(domain="psys")
    for m, w in ((pkg, 30.0), (core, 20.0), (psys, 45.0)):
        m.watts = w
    monitor = EnergyMonitor([pkg, core, psys], cuda_sync=False)
    with monitor.window("w") as win:
        for m in (pkg, core, psys):
            m.advance(1.0)
    assert win.result.measured_joules == pytest.approx(30.0)


def test_meters_are_started_and_stopped():
    events = []

    class Tracking(ScriptedClockMeter):
        def start(self):
            events.append("start")

        def stop(self):
            events.append("stop")

    with EnergyMonitor([Tracking()], cuda_sync=False):
        assert events == ["start"]
    assert events == ["start", "stop"]


def test_a_total_that_includes_a_flagged_reading_says_so(monkeypatch):
    from fake_nvml import FakeGpu, FakeNvml, ManualClock

    import eitp_bench.energy.monitor as monitor_mod
    from eitp_bench.energy.nvml import NvmlMeter

    clock = ManualClock()
    monkeypatch.setattr(monitor_mod, "time", type("T", (), {"monotonic": staticmethod(clock)}))
    nvml = FakeNvml(gpus=[FakeGpu(watts=lambda t: 300.0)], clock=clock)
    gpu = NvmlMeter(nvml=nvml, interval=None, clock=clock, env={})
    cpu = ScriptedClockMeter()
    cpu.watts = 50.0
    with EnergyMonitor([cpu, gpu], cuda_sync=False) as monitor:
        with monitor.window("clean") as clean:
            clock.advance(1.0)
            cpu.advance(1.0)
        assert clean.result.measured_joules == pytest.approx(350.0, abs=0.01)
        assert clean.result.measured_joules_flags == []
        with monitor.window("stalled") as stalled:
            clock.advance(1.0)
            cpu.advance(1.0)
            gpu.sample_now()
            clock.advance(1.0)
            cpu.advance(1.0)
            nvml.gpu(0).stall_at, nvml.gpu(0).stall_s = clock.t, 20.0  # the end read stalls 20 s
        r = stalled.result
        assert r.measured_joules == pytest.approx(700.0, abs=0.01)  # 2 s at 350 W, not 22 s
        assert r.measured_joules_flags == ["slow_read"]
        assert r.duration_s == pytest.approx(2.0)  # the window ended with the code, not 20 s later
        assert r.complete


def test_every_meter_thread_stops_on_close(tmp_path):
    from fake_nvml import FakeGpu, FakeNvml
    from fake_powercap import FakePowercap

    from eitp_bench.energy.nvml import NvmlMeter
    from eitp_bench.energy.rapl import RaplMeter

    tree = FakePowercap(tmp_path / "sys")
    tree.add_package(0)
    before = set(threading.enumerate())
    with EnergyMonitor([RaplMeter(tree.root), NvmlMeter(nvml=FakeNvml(gpus=[FakeGpu()]), interval=0.01, env={})],
                       cuda_sync=False) as monitor:
        started = set(threading.enumerate()) - before
        assert len(started) >= 2  # the RAPL poller and the NVML sampler
        with monitor.window("w"):
            pass
    assert not [t for t in started if t.is_alive()]


def test_a_window_read_so_far_is_exact_and_leaves_it_open():
    """Window.so_far: the energy from the window's start to now, built as end() builds it (edge hook,
    marks, the ranks' combine hook), without closing the window or counting as a window of its own."""

    class HookCounting(EnergyMonitor):
        edges = combines = 0

        def _edge(self):
            self.edges += 1

        def _combine(self, energy):
            self.combines += 1
            return energy

    meter = ScriptedClockMeter()
    meter.watts = 10.0
    monitor = HookCounting([meter], cuda_sync=False, timeline=True)
    win = monitor.begin("train")
    meter.advance(2.0)
    first = win.so_far()
    meter.watts = 30.0
    meter.advance(1.0)
    second = win.so_far("train@2")
    meter.advance(1.0)
    final = win.end()
    assert (first.measured_joules, second.measured_joules, final.measured_joules) == (20.0, 50.0, 80.0)
    assert [first.energy[0].duration_s, second.energy[0].duration_s] == [2.0, 3.0]  # from the window's start
    assert (first.name, second.name, second.energy[0].window) == ("train", "train@2", "train@2")
    assert first.start == final.start and first.timeline == [] and second.timeline == []
    assert (monitor.edges, monitor.combines) == (4, 3)  # begin + 2 reads + end; every read combines (ranks)
    assert [r.name for r in monitor.results] == ["train"] and monitor.results[0] is final
    with pytest.raises(RuntimeError, match="closed"):
        win.so_far()

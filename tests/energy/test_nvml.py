"""NvmlMeter against FakeNvml: known traces, exact integrals, injected faults."""

from __future__ import annotations

import math
import sys
import time

import pytest

from eitp_bench.energy.nvml import NvmlMeter, visible_gpus
from eitp_bench.errors import UserError
from fake_nvml import FakeGpu, FakeNvml, ManualClock


def has_flag(entry, code: str, text: str = "") -> bool:
    """The entry carries a flag with this code whose message contains `text`."""
    return any(f.code == code and text in f.message for f in entry.flags)



def make(gpus, clock=None, **kw):
    clock = clock or ManualClock()
    nvml = FakeNvml(gpus=gpus, clock=clock)
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock, env={}, **kw)
    meter.start()
    return meter, nvml, clock


def run_sampling(meter, clock, until, step):
    """Advance the manual clock to `until`, sampling every `step` seconds (the sampler thread's job)."""
    while clock.t + step <= until + 1e-9:
        clock.t = round(clock.t + step, 9)  # no drift from repeated float addition
        meter.sample_now()


def test_counter_joules_match_the_trace_integral_at_the_counters_granularity():
    meter, nvml, clock = make([FakeGpu(watts=lambda t: 200.0 + 50.0 * t)])
    clock.t = 0.25
    begin = meter.mark()
    run_sampling(meter, clock, 3.35, 0.1)
    clock.t = 3.37
    end = meter.mark()
    [e] = meter.energy_between(begin, end)
    # The counter last updated at 0.2 s and 3.3 s: it holds the integral between those updates.
    truth = nvml.exact_joules(0, 0.2, 3.3)  # = 200·3.1 + 25·(3.3² − 0.2²) = 891.25 J
    assert truth == pytest.approx(891.25, abs=1e-6)
    assert e.method == "counter" and e.device == "gpu:0" and e.domain == "gpu" and e.meter == "nvml"
    assert abs(e.joules - truth) <= 0.001  # integer mJ at both ends
    assert e.duration_s == pytest.approx(3.12)
    assert not has_flag(e, "crosscheck_mismatch")  # 2 % apart here: within 5 %
    assert e.samples == 33 and e.max_gap_s == pytest.approx(0.1, abs=1e-9)
    meter.stop()


def test_windows_nest_and_overlap_because_marks_are_snapshots():
    meter, _, clock = make([FakeGpu(watts=lambda t: 100.0)])
    marks = {}
    for t in (1.0, 2.0, 3.0, 4.0):  # outer 1→4, inner 2→3, overlapping 1→3 and 2→4
        clock.t = t
        marks[t] = meter.mark()
    for t0, t1 in ((1.0, 4.0), (2.0, 3.0), (1.0, 3.0), (2.0, 4.0)):
        [e] = meter.energy_between(marks[t0], marks[t1])
        assert e.joules == pytest.approx(100.0 * (t1 - t0), abs=0.002)


def test_short_window_is_flagged_and_falls_back_to_sampled_power_not_zero():
    meter, _, clock = make([FakeGpu(watts=lambda t: 300.0)])
    run_sampling(meter, clock, 0.5, 0.01)
    assert meter.update_period_s(0) == pytest.approx(0.1, abs=1e-6)
    for t0 in (0.51, 0.58):  # counter still; counter jumps by a whole update (30 J) inside the window
        clock.t = t0
        begin = meter.mark()
        clock.advance(0.05)
        [e] = meter.energy_between(begin, meter.mark())
        assert e.method == "sampled"
        assert e.joules == pytest.approx(15.0)  # 300 W × 50 ms, never 0 J
        # (~100 ms, then ~106 ms: the change at 0.6 s is first seen by the read at 0.63 s)
        assert has_flag(e, "short_window", "window shorter than the energy counter's update period (~10")


def test_stuck_counter_with_power_drawn_is_flagged_even_before_the_period_is_known():
    meter, _, clock = make([FakeGpu(watts=lambda t: 300.0)])
    clock.t = 0.01
    begin = meter.mark()
    clock.t = 0.06
    [e] = meter.energy_between(begin, meter.mark())
    assert e.method == "sampled" and e.joules == pytest.approx(15.0)
    assert has_flag(e, "short_window", "not yet inferred")


def test_pre_volta_gpu_integrates_sampled_power_within_the_trapezoid_error_bound():
    watts = lambda t: 200.0 + 100.0 * math.sin(2 * math.pi * t / 2.0)  # noqa: E731
    meter, nvml, clock = make([FakeGpu(name="Tesla P100", arch="pascal", watts=watts)])
    begin = meter.mark()
    run_sampling(meter, clock, 3.3, 0.1)  # not whole periods, where the trapezoid would be exact
    [e] = meter.energy_between(begin, meter.mark())
    exact = nvml.exact_joules(0, 0.0, 3.3)
    # Composite trapezoid error ≤ (b−a)·h²·max|f''|/12 = 3.3·0.1²·100·π²/12 ≈ 0.27 J (0.04 %); the
    # fake's GetPowerUsage rounds to 1 mW, adding ≤ 3.3 s × 0.5 mW < 0.002 J.
    bound = 3.3 * 0.1**2 * 100 * math.pi**2 / 12 + 0.002
    assert e.method == "sampled" and e.samples == 34
    assert 0 < abs(e.joules - exact) <= bound
    assert has_flag(e, "sampled_fallback", "pre-Volta")


@pytest.mark.parametrize("scale, flagged", [(0.9, True), (1.0, False)])
def test_cross_check_flags_a_counter_that_disagrees_with_the_samples(scale, flagged):
    meter, _, clock = make([FakeGpu(watts=lambda t: 300.0, counter_scale=scale)])
    begin = meter.mark()
    run_sampling(meter, clock, 2.0, 0.1)
    [e] = meter.energy_between(begin, meter.mark())
    assert e.method == "counter" and e.joules == pytest.approx(600.0 * scale, abs=0.002)
    cross = [f.message for f in e.flags if f.code == "crosscheck_mismatch"]
    if flagged:
        assert len(cross) == 1 and "540.000 J" in cross[0] and "600.000 J" in cross[0] and "11.1 %" in cross[0]
    else:
        assert cross == []


def test_nvml_error_on_one_gpu_invalidates_only_that_gpu():
    clock = ManualClock()
    meter, nvml, clock = make([FakeGpu(), FakeGpu(fail_from=1.55)], clock)
    early = meter.mark()
    run_sampling(meter, clock, 1.0, 0.1)
    before_failure = meter.mark()
    run_sampling(meter, clock, 3.0, 0.1)
    late = meter.mark()
    g0, g1 = meter.energy_between(early, before_failure)
    assert g1.joules == pytest.approx(300.0, abs=0.002)  # the window that closed before the failure is fine
    g0, g1 = meter.energy_between(before_failure, late)
    assert g0.joules == pytest.approx(600.0, abs=0.002) and g0.flags == []
    assert g1.joules is None and has_flag(g1, "nvml_error", "GPU is lost")


def test_sampler_thread_survives_nvml_errors_and_unexpected_exceptions():
    nvml = FakeNvml(gpus=[FakeGpu(), FakeGpu()])
    nvml.gpu(1).fail_from = time.monotonic() + 0.05
    meter = NvmlMeter(nvml=nvml, interval=0.01, env={})
    meter.start()
    begin = meter.mark()
    time.sleep(0.25)
    mid = meter.mark()
    nvml.nvmlDeviceGetFieldValues = lambda *a: 1 / 0  # a bug in the binding, not an NVML error
    time.sleep(0.05)
    during = meter.mark()
    del nvml.nvmlDeviceGetFieldValues  # back to the class method
    time.sleep(0.05)
    end = meter.mark()
    assert meter.sampler_alive
    # the bug is a flag on the window it touched, never a traceback, and the sampler goes on
    g0_bug = meter.energy_between(mid, during)[0]
    assert g0_bug.joules is None and has_flag(g0_bug, "nvml_error", "unexpected ZeroDivisionError")
    g0, g1 = meter.energy_between(begin, mid)
    # 300 W; the counter's 100 ms updates put its edges up to 0.1 s before the marks'
    assert g0.valid and g0.samples >= 5 and abs(g0.joules - 300 * g0.duration_s) <= 300 * 0.1 + 0.002
    assert g1.joules is None and has_flag(g1, "nvml_error", "GpuIsLost")
    assert meter.energy_between(mid, end)[0].samples > 2  # still sampling after both faults
    meter.stop()
    assert not meter.sampler_alive


def test_counter_reset_invalidates_the_window_it_spans_and_never_goes_negative():
    meter, nvml, clock = make([FakeGpu()])
    clock.t = 1.0
    begin = meter.mark()
    clock.t = 1.5
    nvml.reset_counter(0, to_mj=begin.gpus[0].counter_mj - 10)  # backwards, but ends above `begin`
    meter.sample_now()
    clock.t = 3.0
    end = meter.mark()
    assert end.gpus[0].counter_mj > begin.gpus[0].counter_mj
    [e] = meter.energy_between(begin, end)
    assert e.joules is None and has_flag(e, "reset", "went backwards")
    clock.t = 4.0
    [after] = meter.energy_between(end, meter.mark())
    assert after.joules == pytest.approx(300.0, abs=0.002)
    # a reset with no read in between: the end mark is below the begin mark
    nvml.reset_counter(0, to_mj=0)
    clock.t = 5.0
    [e] = meter.energy_between(end, meter.mark())
    assert e.joules is None and has_flag(e, "reset", "went backwards")


GPUS = [FakeGpu(uuid=f"GPU-{c * 8}-0000-0000-0000-000000000000") for c in "abc"]


def test_cuda_visible_devices_indices_uuids_and_torch_order():
    nvml = FakeNvml(gpus=GPUS)
    nvml.nvmlInit()
    uuids = lambda gs: [g.uuid[4:8] for g in gs]  # noqa: E731
    assert uuids(visible_gpus(nvml, env={})) == ["aaaa", "bbbb", "cccc"]
    assert uuids(visible_gpus(nvml, env={"CUDA_VISIBLE_DEVICES": "1,0"})) == ["bbbb", "aaaa"]
    assert uuids(visible_gpus(nvml, env={"CUDA_VISIBLE_DEVICES": "GPU-cccc"})) == ["cccc"]
    assert uuids(visible_gpus(nvml, env={"CUDA_VISIBLE_DEVICES": "2,7,1"})) == ["cccc"]  # stops at 7, like CUDA
    assert visible_gpus(nvml, env={"CUDA_VISIBLE_DEVICES": ""}) == []
    torch_uuids = ["cccccccc-0000-0000-0000-000000000000", "GPU-aaaaaaaa-0000-0000-0000-000000000000"]
    torch_order = visible_gpus(nvml, env={"CUDA_VISIBLE_DEVICES": "0"}, torch_uuids=torch_uuids)  # torch wins
    assert uuids(torch_order) == ["cccc", "aaaa"] and [g.ordinal for g in torch_order] == [0, 1]

    meter = NvmlMeter(nvml=FakeNvml(gpus=GPUS), interval=None, env={"CUDA_VISIBLE_DEVICES": "1,0"})
    assert [c.device for c in meter.channels()] == ["gpu:0", "gpu:1"]
    assert [g["uuid"][4:8] for g in meter.info()["gpus"]] == ["bbbb", "aaaa"]
    meter.stop()
    with pytest.raises(UserError, match="no NVIDIA GPU visible"):
        NvmlMeter(nvml=FakeNvml(gpus=GPUS), interval=None, env={"CUDA_VISIBLE_DEVICES": "-1"})


def test_mig_instance_maps_to_its_parent_and_is_flagged():
    mig = "MIG-11111111-2222-3333-4444-555555555555"
    gpus = [FakeGpu(uuid="GPU-aaaaaaaa-0"), FakeGpu(uuid="GPU-bbbbbbbb-0", mig=True, mig_uuids=[mig])]
    clock = ManualClock()
    meter = NvmlMeter(nvml=FakeNvml(gpus=gpus, clock=clock), interval=None, clock=clock,
                      env={"CUDA_VISIBLE_DEVICES": mig})
    [info] = meter.info()["gpus"]
    assert info["uuid"] == "GPU-bbbbbbbb-0" and info["mig_instance"] == mig and info["mig_mode"] is True
    begin = meter.mark()
    clock.advance(1.0)
    [e] = meter.energy_between(begin, meter.mark())
    assert e.valid and has_flag(e, "mig_whole_gpu", "whole GPU")


def test_grace_hopper_reads_power_at_module_scope_and_says_so():
    meter, _, clock = make([FakeGpu(name="NVIDIA GH200 480GB", gpu_scope_power=False)])
    assert meter.info()["gpus"][0]["power_source"] == "instant-module"
    begin = meter.mark()
    clock.advance(1.0)
    [e] = meter.energy_between(begin, meter.mark())
    assert e.method == "counter" and has_flag(e, "module_scope", "NVML_POWER_SCOPE_MODULE")


def test_ampere_without_the_instant_field_uses_the_averaged_reading_and_flags_it():
    meter, _, clock = make([FakeGpu(name="NVIDIA A10", arch="ampere", instant_field=False)])
    assert meter.info()["gpus"][0]["power_source"] == "usage"
    begin = meter.mark()
    clock.advance(1.0)
    [e] = meter.energy_between(begin, meter.mark())
    assert has_flag(e, "averaged_power", "1-s average")


def test_info_and_power_samples():
    meter, _, clock = make([FakeGpu(watts=lambda t: 250.0)])
    run_sampling(meter, clock, 0.5, 0.1)
    info = meter.info()
    assert info["driver_version"] == "550.54.15" and info["nvml_version"] == "12.550.54.15"
    g = info["gpus"][0]
    assert (g["name"], g["power_limit_w"]) == ("NVIDIA H100 80GB HBM3", 700.0)
    assert (g["sm_clock_mhz"], g["mem_clock_mhz"], g["temperature_c"], g["persistence_mode"]) == (1980, 2619, 41, 1)
    assert (g["architecture"], g["energy_counter"]) == ("hopper", True)
    assert g["power_source"] == "instant" and g["mig_mode"] is False
    pts = meter.power_samples(0.15, 0.45)
    assert [round(p.t, 6) for p in pts] == [0.2, 0.3, 0.4]
    assert all(p.watts == 250.0 and p.device == "gpu:0" for p in pts)


# --- probe (doctor) ----------------------------------------------------------------------------


def test_probe_reports_each_gpu_with_its_method_or_reason():
    gpus = [
        FakeGpu(),
        FakeGpu(name="Tesla P100", arch="pascal"),
        FakeGpu(name="Old", arch="kepler", power_supported=False),
    ]
    s0, s1, s2 = NvmlMeter.probe(nvml=FakeNvml(gpus=gpus), env={})
    assert s0.available and s0.device == "gpu:0" and s0.details["method"] == "counter"
    assert s1.available and s1.details["method"] == "sampled"
    assert "no energy counter (pre-Volta): power will be sampled and integrated" in s1.reason
    assert not s2.available and "power reading not supported" in s2.reason


def test_probe_without_library_gpus_or_pynvml(monkeypatch):
    [s] = NvmlMeter.probe(nvml=FakeNvml(library_found=False))
    assert not s.available and s.reason == "NVIDIA driver library libnvidia-ml.so not found"
    assert "--gpus all" in s.fix and "container toolkit" in s.fix
    [s] = NvmlMeter.probe(nvml=FakeNvml(gpus=[]), env={})
    assert not s.available and "no NVIDIA GPU visible" in s.reason
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` fail
    [s] = NvmlMeter.probe()
    assert not s.available and "pynvml" in s.reason and "pip install nvidia-ml-py" in s.fix
    with pytest.raises(UserError, match="pynvml"):
        NvmlMeter()


def test_meter_without_the_library_raises_a_user_error_with_the_fix():
    with pytest.raises(UserError) as err:
        NvmlMeter(nvml=FakeNvml(library_found=False), interval=None)
    assert "libnvidia-ml.so" in err.value.message and "--gpus all" in err.value.fix


@pytest.mark.gpu
def test_real_gpu_counter_agrees_with_sampled_power():
    pytest.importorskip("pynvml")
    try:
        meter = NvmlMeter(interval=0.02)
    except UserError:
        pytest.skip("no NVIDIA GPU here")
    meter.start()
    begin = meter.mark()
    time.sleep(3.0)
    energies = meter.energy_between(begin, meter.mark())
    meter.stop()
    for e in energies:
        assert e.valid and e.joules > 0
        assert e.max_gap_s < 0.2
    assert meter.update_period_s(0) is None or meter.update_period_s(0) < 0.2


def test_frozen_counter_over_a_long_window_is_reported_as_frozen_not_short():
    meter, nvml, clock = make([FakeGpu(watts=lambda t: 300.0)])
    run_sampling(meter, clock, 0.5, 0.1)
    assert meter.update_period_s(0) == pytest.approx(0.1, abs=1e-6)
    nvml.gpu(0).counter_period_s = 1e9  # the counter stops updating
    begin = meter.mark()
    run_sampling(meter, clock, 1.5, 0.1)
    [e] = meter.energy_between(begin, meter.mark())
    assert e.method == "sampled" and e.joules == pytest.approx(300.0)
    assert has_flag(e, "stalled", "the energy counter did not move in 1.000 s")


def test_timeline_capacity_limits_the_gap_statistic_and_says_so():
    meter, _, clock = make([FakeGpu()], timeline_capacity=5)
    begin = meter.mark()
    run_sampling(meter, clock, 1.0, 0.1)
    [e] = meter.energy_between(begin, meter.mark())
    assert e.joules == pytest.approx(300.0, abs=0.002) and e.samples == 11  # energy is unaffected
    assert has_flag(e, "history_truncated", "timeline capacity exceeded")


# --- faults: slow reads, impossible counters, anything the binding throws ---------------------------


def test_a_stalled_end_read_does_not_stretch_the_window_and_is_flagged():
    # 300 W; the meter samples every 0.1 s up to 1.9 s; the code ends at 2.0 s, and the end mark's
    # counter read stalls for 15 s. Without care: 17 s of energy (5100 J) for a 2-s window.
    meter, nvml, clock = make([FakeGpu(watts=lambda t: 300.0)])
    begin = meter.mark()
    run_sampling(meter, clock, 1.95, 0.1)
    clock.t = 2.0
    nvml.gpu(0).stall_at, nvml.gpu(0).stall_s = 2.0, 15.0
    end = meter.mark()
    assert clock.t == pytest.approx(17.0)  # the call really took 15 s of (injected) time
    [e] = meter.energy_between(begin, end)
    assert e.duration_s == pytest.approx(2.0)  # the window ends when the measured code ended
    # counter to its last good read (0.0 → 1.9 s) + the last power × 0.1 s: the truth, 600 J
    assert e.joules == pytest.approx(nvml.exact_joules(0, 0.0, 2.0), abs=0.01)
    assert has_flag(e, "slow_read", "the longest 15.000 s (nvmlDeviceGetTotalEnergyConsumption)")
    # the next window starts from good reads again, without the flag
    run_sampling(meter, clock, 18.0, 0.1)
    after = meter.mark()
    clock.t = 19.0
    [e2] = meter.energy_between(after, meter.mark())
    assert e2.joules == pytest.approx(300.0, abs=0.002) and not e2.flags


def test_a_stalled_sampler_read_inside_a_window_is_flagged_and_adds_nothing():
    meter, nvml, clock = make([FakeGpu(watts=lambda t: 250.0)])
    begin = meter.mark()
    run_sampling(meter, clock, 1.0, 0.1)
    nvml.gpu(0).stall_at, nvml.gpu(0).stall_s = 1.0, 3.0
    nvml.gpu(0).stall_call = "nvmlDeviceGetFieldValues"
    clock.t = 1.1
    meter.sample_now()  # the power read stalls 3 s: values dropped
    assert clock.t == pytest.approx(4.1)
    run_sampling(meter, clock, 5.0, 0.1)
    [e] = meter.energy_between(begin, meter.mark())
    # the counter holds what was drawn, stall or not: 250 W × 5 s
    assert e.joules == pytest.approx(nvml.exact_joules(0, 0.0, 5.0), abs=0.002)
    assert has_flag(e, "slow_read", "3.000 s (nvmlDeviceGetFieldValues)")


@pytest.mark.parametrize("jump_mj", [1_000_000_000, 5_000_000])  # +1 MJ, and +5 kJ in 0.1 s at 700 W
def test_a_counter_jump_beyond_the_board_power_limit_invalidates_the_window(jump_mj):
    meter, nvml, clock = make([FakeGpu(watts=lambda t: 300.0, power_limit_w=700.0)])
    run_sampling(meter, clock, 1.0, 0.1)
    begin = meter.mark()
    run_sampling(meter, clock, 1.5, 0.1)
    nvml.jump_counter(0, jump_mj)
    run_sampling(meter, clock, 3.0, 0.1)
    end = meter.mark()
    [e] = meter.energy_between(begin, end)
    assert e.joules is None
    assert has_flag(e, "implausible_jump", "than 2 x the board's 700 W power limit allows")
    clock.t = 4.0
    [after] = meter.energy_between(end, meter.mark())  # later windows are measured again
    assert after.joules == pytest.approx(300.0, abs=0.002) and not after.flags


def test_a_legitimate_burst_at_the_power_limit_is_not_a_jump():
    # 700 W, the board's limit, with the counter's 100 ms updates read every 10 ms: never flagged
    meter, nvml, clock = make([FakeGpu(watts=lambda t: 700.0, power_limit_w=700.0)])
    begin = meter.mark()
    run_sampling(meter, clock, 2.0, 0.01)
    [e] = meter.energy_between(begin, meter.mark())
    assert e.joules == pytest.approx(1400.0, abs=0.002) and not e.flags


@pytest.mark.parametrize("bad", [
    lambda h: "12345",  # an odd return type
    lambda h: None,
    lambda h: (_ for _ in ()).throw(RuntimeError("binding broke")),  # not an NVMLError
    lambda h: (_ for _ in ()).throw(TypeError("argument 1 must be c_void_p")),
])
def test_any_exception_or_odd_value_from_the_binding_is_a_flag_never_a_traceback(bad):
    meter, nvml, clock = make([FakeGpu(), FakeGpu()])
    begin = meter.mark()
    real = nvml.nvmlDeviceGetTotalEnergyConsumption
    nvml.nvmlDeviceGetTotalEnergyConsumption = lambda h: bad(h) if h.index == 1 else real(h)
    clock.t = 1.0
    meter.sample_now()
    clock.t = 2.0
    end = meter.mark()
    g0, g1 = meter.energy_between(begin, end)
    assert g0.joules == pytest.approx(600.0, abs=0.002) and not g0.flags
    assert g1.joules is None and has_flag(g1, "nvml_error", "gpu:1")
    meter.stop()


def test_an_odd_counter_value_at_start_means_no_counter_not_a_crash():
    nvml = FakeNvml(gpus=[FakeGpu(watts=lambda t: 100.0)], clock=ManualClock())
    nvml.nvmlDeviceGetTotalEnergyConsumption = lambda h: "n/a"
    meter = NvmlMeter(nvml=nvml, interval=None, clock=nvml.clock, env={})
    meter.start()
    begin = meter.mark()
    run_sampling(meter, nvml.clock, 1.0, 0.1)
    [e] = meter.energy_between(begin, meter.mark())
    assert e.method == "sampled" and e.joules == pytest.approx(100.0)
    assert has_flag(e, "sampled_fallback", "unexpected TypeError from the NVML binding")


def test_shutdown_and_init_failures_never_raise_from_probe_or_stop():
    nvml = FakeNvml(gpus=[FakeGpu()])
    real_shutdown = nvml.nvmlShutdown

    def shutdown():
        real_shutdown()
        raise nvml.NVMLError(nvml.NVML_ERROR_UNKNOWN)

    nvml.nvmlShutdown = shutdown
    statuses = NvmlMeter.probe(nvml=nvml, env={})
    assert statuses[0].available and statuses[0].device == "gpu:0"
    assert not statuses[-1].available and "nvmlShutdown failed: NVMLError_Unknown: Unknown Error" in statuses[-1].reason
    meter = NvmlMeter(nvml=nvml, interval=0.01, env={})
    meter.start()
    meter.stop()  # shutdown raising changes no figure: no exception
    assert not meter.sampler_alive

    nvml = FakeNvml(gpus=[FakeGpu()])
    nvml.nvmlInit = lambda: (_ for _ in ()).throw(RuntimeError("no libnvidia-ml"))
    [s] = NvmlMeter.probe(nvml=nvml, env={})
    assert not s.available and "unexpected RuntimeError from the NVML binding: no libnvidia-ml" in s.reason
    with pytest.raises(UserError, match="RuntimeError"):
        NvmlMeter(nvml=nvml, interval=None)


def test_probe_turns_odd_values_and_foreign_exceptions_into_status_lines():
    nvml = FakeNvml(gpus=[FakeGpu(), FakeGpu(), FakeGpu()])
    real_name = nvml.nvmlDeviceGetName
    nvml.nvmlDeviceGetName = lambda h: (_ for _ in ()).throw(RuntimeError("boom")) if h.index == 1 else real_name(h)
    real_counter = nvml.nvmlDeviceGetTotalEnergyConsumption
    nvml.nvmlDeviceGetTotalEnergyConsumption = lambda h: None if h.index == 2 else real_counter(h)
    s0, s1, s2 = NvmlMeter.probe(nvml=nvml, env={})
    assert s0.available and s0.details["method"] == "counter"
    assert not s1.available and "gpu:1 unreadable: unexpected RuntimeError from the NVML binding: boom" in s1.reason
    assert s2.available and s2.details["method"] == "sampled" and "returned None" in s2.reason
    nvml.nvmlDeviceGetCount = lambda: (_ for _ in ()).throw(TypeError("bad handle"))
    [s] = NvmlMeter.probe(nvml=nvml, env={})
    assert not s.available and "NVML cannot list GPUs: unexpected TypeError" in s.reason
    with pytest.raises(UserError, match="NVML cannot list GPUs"):
        NvmlMeter(nvml=nvml, interval=None, env={})


def test_a_mark_that_waits_on_a_stuck_call_keeps_its_own_time():
    # The mark reads the clock, then waits 10 s for the lock (a sampler call stuck in the driver):
    # the window still ends at the mark's time, and the wait is what the flag names.
    base = ManualClock()
    armed = {"wait": 0.0}

    def clock():
        t = base()
        if armed["wait"]:
            base.advance(armed["wait"])
            armed["wait"] = 0.0
        return t

    nvml = FakeNvml(gpus=[FakeGpu(watts=lambda t: 200.0)], clock=base)
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock, env={})
    meter.start()
    begin = meter.mark()
    run_sampling(meter, base, 2.0, 0.1)
    base.t = 2.05
    armed["wait"] = 10.0
    end = meter.mark()
    [e] = meter.energy_between(begin, end)
    assert e.duration_s == pytest.approx(2.05)
    assert e.joules == pytest.approx(nvml.exact_joules(0, 0.0, 2.05), abs=0.01)  # 410 J, not 2410 J
    assert has_flag(e, "slow_read", "(waiting for another NVML call to return)")


def test_a_stalled_begin_read_does_not_add_the_stall_to_the_window():
    # The begin mark is asked for at 0 s and its counter read returns at 15 s; the code runs after
    # that, for 2 s. The window is those 2 s (400 J at 200 W), not 17 s (3400 J).
    meter, nvml, clock = make([FakeGpu(watts=lambda t: 200.0)])
    run_sampling(meter, clock, 1.0, 0.1)
    nvml.gpu(0).stall_at, nvml.gpu(0).stall_s = 1.0, 15.0
    begin = meter.mark()
    assert clock.t == pytest.approx(16.0)
    run_sampling(meter, clock, 18.0, 0.1)
    [e] = meter.energy_between(begin, meter.mark())
    assert e.duration_s == pytest.approx(2.0)
    assert e.joules == pytest.approx(400.0, abs=200.0 * 0.1 + 0.01)  # the stuck read's counter: ±1 update
    assert has_flag(e, "slow_read", "15.000 s")

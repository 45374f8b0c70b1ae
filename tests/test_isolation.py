"""GPU methodology: isolation check (other GPU / CPU processes), NVML provenance facts, every call guarded."""

from __future__ import annotations

import os

from eitp_bench.energy.nvml import NvmlMeter
from eitp_bench.hardware.isolation import busy_cpu_processes, isolation_check
from fake_nvml import FakeGpu, FakeNvml, ManualClock

OWN = os.getpid()


def make(gpus, **kw):
    clock = ManualClock()
    nvml = FakeNvml(gpus=gpus, clock=clock, **kw)
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock, env={})
    meter.start()
    return meter, nvml


# --- a fake /proc: CPU ticks per process, advanced by the injected sleep --------------------------------------


def write_stat(root, pid, comm, ppid, ticks):
    d = root / str(pid)
    d.mkdir(exist_ok=True)
    # fields after "(comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    utime, stime = ticks // 2, ticks - ticks // 2
    (d / "stat").write_text(f"{pid} ({comm}) R {ppid} 1 1 0 -1 0 0 0 0 0 {utime} {stime} 0 0 20 0 1 0\n")


def fake_proc(tmp_path, start, rates):
    """`start`: {pid: (comm, ppid, ticks)}; `rates`: {pid: ticks added per second slept}."""
    root = tmp_path / "proc"
    root.mkdir()
    (root / "self").mkdir()  # non-numeric entries are skipped
    for pid, (comm, ppid, ticks) in start.items():
        write_stat(root, pid, comm, ppid, ticks)
    t = [0.0]

    def sleep(s):
        t[0] += s
        for pid, rate in rates.items():
            comm, ppid, ticks = start[pid]
            write_stat(root, pid, comm, ppid, ticks + int(rate * s))

    return root, sleep, (lambda: t[0])


def test_busy_cpu_processes_lists_others_above_half_a_core_and_never_ours(tmp_path):
    start = {
        10: ("stress (x)", 1, 1000),  # a name with a space and a parenthesis: parsed from the last ")"
        11: ("idle", 1, 50),
        12: ("half", 1, 0),
        OWN: ("python", 1, 0),
        99999: ("child", OWN, 0),  # a child of ours (a data loader): ours
    }
    rates = {10: 180, 11: 2, 12: 40, OWN: 400, 99999: 100}  # ticks/s at 100 ticks/s: 1.8, 0.02, 0.4, 4, 1 cores
    root, sleep, clock = fake_proc(tmp_path, start, rates)
    busy = busy_cpu_processes(root, interval_s=0.5, sleep=sleep, clock=clock, ticks_per_s=100,
                              exclude_pids={OWN})
    assert busy == [{"pid": 10, "command": "stress (x)", "cpu_cores": 1.8}]


def test_busy_cpu_processes_is_none_without_proc(tmp_path):
    assert busy_cpu_processes(tmp_path / "nothing", sleep=lambda s: None) is None


def test_isolation_flags_other_gpu_processes_but_not_our_own(tmp_path):
    meter, nvml = make([FakeGpu(processes=[(OWN, 2 * 2**30)]),
                        FakeGpu(processes=[(OWN, 2**20), (4242, 3 * 2**30), (4343, None)])])
    root, sleep, clock = fake_proc(tmp_path, {10: ("busy", 1, 0)}, {10: 100})
    iso = isolation_check(meter, proc_root=root, sleep=sleep, clock=clock, ticks_per_s=100, exclude_pids={OWN})
    assert iso["gpu_processes"] == {
        "gpu:0": [], "gpu:1": [{"pid": 4242, "used_memory_mib": 3072.0}, {"pid": 4343, "used_memory_mib": None}],
    }
    assert iso["cpu_busy_processes"] == [{"pid": 10, "command": "busy", "cpu_cores": 1.0}]
    codes = [f["code"] for f in iso["flags"]]
    assert codes == ["gpu_shared", "cpu_busy"]
    assert "gpu:1" in iso["flags"][0]["message"] and "4242" in iso["flags"][0]["message"]


def test_isolation_on_a_quiet_machine_has_no_flags(tmp_path):
    meter, _ = make([FakeGpu(processes=[(OWN, 1)])])
    root, sleep, clock = fake_proc(tmp_path, {10: ("sshd", 1, 5)}, {10: 1})
    iso = isolation_check(meter, proc_root=root, sleep=sleep, clock=clock, ticks_per_s=100, exclude_pids={OWN})
    assert iso == {"gpu_processes": {"gpu:0": []}, "cpu_busy_processes": [], "flags": []}


def test_isolation_never_raises_when_nvml_fails(tmp_path):
    meter, nvml = make([FakeGpu(), FakeGpu()])
    nvml.gpu(0).fail_from = 0.0  # NVMLError on every call of gpu:0
    nvml.nvmlDeviceGetComputeRunningProcesses = None  # and a broken binding for both: not callable
    iso = isolation_check(meter, proc_root=tmp_path / "none", sleep=lambda s: None)
    assert iso["gpu_processes"] == {"gpu:0": None, "gpu:1": None}
    assert iso["cpu_busy_processes"] is None and iso["flags"] == []


def test_isolation_without_an_nvml_meter(tmp_path):
    iso = isolation_check(None, proc_root=tmp_path / "none", sleep=lambda s: None)
    assert iso == {"gpu_processes": None, "cpu_busy_processes": None, "flags": []}


# --- provenance facts from info() ---------------------------------------------------------------------------


def test_info_reports_clocks_limits_persistence_mig_driver_and_cuda():
    meter, _ = make([FakeGpu(power_limit_w=450.0, app_sm_clock_mhz=1410, max_sm_clock_mhz=1980, persistence=0,
                             temperature_c=38, mig=True)], cuda_driver_version=12040)
    info = meter.info()
    assert info["driver_version"] == "550.54.15" and info["cuda_driver_version"] == "12.4"
    [g] = info["gpus"]
    assert g["power_limit_w"] == 450.0 and g["persistence_mode"] == 0 and g["temperature_c"] == 38
    assert (g["app_sm_clock_mhz"], g["app_mem_clock_mhz"]) == (1410, 2619)
    assert (g["max_sm_clock_mhz"], g["max_mem_clock_mhz"]) == (1980, 2619)
    assert g["mig_mode_state"] == {"current": True, "pending": True}


def test_every_new_info_field_is_null_when_its_call_fails():
    meter, nvml = make([FakeGpu(arch="turing")])  # pre-Ampere: no MIG (NVMLError NotSupported)

    def boom(*a):
        raise RuntimeError("binding fault")

    nvml.nvmlDeviceGetApplicationsClock = boom
    nvml.nvmlDeviceGetMaxClockInfo = lambda *a: None
    nvml.nvmlSystemGetCudaDriverVersion = lambda: "not a number"
    info = meter.info()
    [g] = info["gpus"]
    assert info["cuda_driver_version"] is None
    assert g["app_sm_clock_mhz"] is None and g["max_sm_clock_mhz"] is None and g["mig_mode_state"] is None


def test_temperatures_read_each_gpu_and_null_a_failing_one():
    meter, nvml = make([FakeGpu(temperature_c=40), FakeGpu(temperature_c=55)])
    assert meter.temperatures() == {"gpu:0": 40, "gpu:1": 55}
    nvml.gpu(1).fail_from = 0.0
    nvml.gpu(0).temperature_c = 47
    assert meter.temperatures() == {"gpu:0": 47, "gpu:1": None}

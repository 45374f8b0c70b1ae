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
    assert iso == {"gpu_processes": {"gpu:0": []}, "cpu_busy_processes": [], "flags": [], "notes": []}


def test_isolation_never_raises_when_nvml_fails(tmp_path):
    meter, nvml = make([FakeGpu(), FakeGpu()])
    nvml.gpu(0).fail_from = 0.0  # NVMLError on every call of gpu:0
    nvml.nvmlDeviceGetComputeRunningProcesses = None  # and a broken binding for both: not callable
    iso = isolation_check(meter, proc_root=tmp_path / "none", sleep=lambda s: None)
    assert iso["gpu_processes"] == {"gpu:0": None, "gpu:1": None}
    assert iso["cpu_busy_processes"] is None and iso["flags"] == []


def test_isolation_without_an_nvml_meter(tmp_path):
    iso = isolation_check(None, proc_root=tmp_path / "none", sleep=lambda s: None)
    assert iso == {"gpu_processes": None, "cpu_busy_processes": None, "flags": [], "notes": []}


# --- the runner's whole process tree is ours; NVML pids of another PID namespace -------------------------------

RUNNER, SERVER, RANK1, LOAD, FOREIGN = 500, 501, 503, 504, 4242


def runner_tree(tmp_path, rates):
    """A fake /proc: runner → forkserver → this process (a worker or rank 0) → rank 1 → a child; and a
    foreign process beside them. `rates`: ticks per second for each."""
    start = {RUNNER: ("eitp-bench", 1, 0), SERVER: ("python", RUNNER, 0), OWN: ("python", SERVER, 0),
             RANK1: ("python", OWN, 0), LOAD: ("python", RANK1, 0), FOREIGN: ("stress", 1, 0)}
    return fake_proc(tmp_path, start, rates)


def test_the_runners_whole_process_tree_is_ours_and_only_the_foreign_process_flags(tmp_path):
    tree = [(RUNNER, 2**20), (SERVER, 2**20), (OWN, 2**30), (RANK1, 2**30), (LOAD, 2**20)]
    meter, _ = make([FakeGpu(processes=tree + [(FOREIGN, 2**30)])])
    every = {pid: 150 for pid in (RUNNER, SERVER, OWN, RANK1, LOAD, FOREIGN)}  # 1.5 cores each
    root, sleep, clock = runner_tree(tmp_path, every)
    iso = isolation_check(meter, runner_pid=RUNNER, holds_cuda_context=True, proc_root=root, sleep=sleep,
                          clock=clock, ticks_per_s=100)
    assert iso["gpu_processes"] == {"gpu:0": [{"pid": FOREIGN, "used_memory_mib": 1024.0}]}
    assert [p["pid"] for p in iso["cpu_busy_processes"]] == [FOREIGN]
    assert [f["code"] for f in iso["flags"]] == ["gpu_shared", "cpu_busy"] and iso["notes"] == []
    assert f"pid {FOREIGN})" in iso["flags"][0]["message"]


def test_without_the_runner_pid_the_parent_and_its_tree_are_still_ours(tmp_path):
    meter, _ = make([FakeGpu(processes=[(SERVER, 1), (OWN, 1), (RANK1, 1)])])
    root, sleep, clock = runner_tree(tmp_path, {})
    iso = isolation_check(meter, exclude_pids={SERVER}, proc_root=root, sleep=sleep, clock=clock, ticks_per_s=100)
    assert iso["gpu_processes"] == {"gpu:0": []} and iso["flags"] == []


def test_pids_of_another_pid_namespace_say_the_check_cannot_run_instead_of_gpu_shared(tmp_path):
    """In a container NVML gives host pids: this process (with a CUDA context) is not among them."""
    meter, _ = make([FakeGpu(processes=[(812345, 2**30), (812399, 2**30)]), FakeGpu(processes=[(812400, 2**20)])])
    root, sleep, clock = runner_tree(tmp_path, {})
    iso = isolation_check(meter, runner_pid=RUNNER, holds_cuda_context=True, proc_root=root, sleep=sleep,
                          clock=clock, ticks_per_s=100)
    assert iso["gpu_processes"] is None and iso["flags"] == []
    [note] = iso["notes"]
    assert note.startswith("the GPU check cannot run: NVML reports PIDs of another PID namespace")
    assert "812345" in note


def test_nvml_listing_nobody_while_we_hold_a_context_cannot_run_either(tmp_path):
    meter, _ = make([FakeGpu(processes=[])])
    root, sleep, clock = runner_tree(tmp_path, {})
    iso = isolation_check(meter, runner_pid=RUNNER, holds_cuda_context=True, proc_root=root, sleep=sleep,
                          clock=clock, ticks_per_s=100)
    assert iso["gpu_processes"] is None and iso["flags"] == []
    assert "lists no compute process" in iso["notes"][0]


def test_without_a_context_of_ours_every_listed_process_is_another(tmp_path):
    """A CPU-device repetition holds no CUDA context: whatever NVML lists is someone else's, whatever the
    namespace, and is flagged as before."""
    meter, _ = make([FakeGpu(processes=[(812345, 2**30)])])
    root, sleep, clock = runner_tree(tmp_path, {})
    iso = isolation_check(meter, runner_pid=RUNNER, proc_root=root, sleep=sleep, clock=clock, ticks_per_s=100)
    assert iso["gpu_processes"] == {"gpu:0": [{"pid": 812345, "used_memory_mib": 1024.0}]}
    assert [f["code"] for f in iso["flags"]] == ["gpu_shared"] and iso["notes"] == []


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

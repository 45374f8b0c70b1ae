"""Multi-rank repetitions: who reads which sensor, the gather and the sum, sharding, the launcher section,
and two real 2-rank runs on CPU (gloo) through torch's elastic launcher with fake NVML and RAPL."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from eitp_bench.distributed.energy_gather import (RankMonitor, combine, gpu_owners, measured_total,
                                                  node_meter_owners, tag)
from eitp_bench.distributed.ranks import pool_generation, shard_rows
from eitp_bench.errors import UserError
from eitp_bench.records import EnergyEntry, RunRecord
from eitp_bench.suite import load_suite, suite_config_hash
from eitp_bench.energy.monitor import merge_windows
from test_monitor import ScriptedClockMeter

TESTS = Path(__file__).parents[1]
REPO = TESTS.parent


def entry(meter, device, domain, joules, rank=None, host=None, window="w"):
    return EnergyEntry(window=window, meter=meter, device=device, domain=domain, joules=joules,
                       method="counter", duration_s=1.0, rank=rank, host=host)


# ----------------------------------------------------------------------------- who reads what


def test_the_lowest_rank_on_a_gpu_reads_it_and_sharing_ranks_leave_it():
    ids = [("a", "GPU-0"), ("a", "GPU-0"), ("a", "GPU-1"), None, ("b", "GPU-0")]
    # ranks 0 and 1 share one GPU: only rank 0 reads it; the same uuid on host b is another GPU
    assert gpu_owners(ids) == [True, False, True, False, True]


def test_local_rank_0_of_each_host_owns_the_cpu_meters_exactly_once():
    assert node_meter_owners(["a", "a", "b", "b"], [0, 1, 0, 1]) == [True, False, True, False]
    assert node_meter_owners(["a", "a"], [0, 0]) == [True, False]  # a repeated local rank 0 never doubles


def test_combine_keeps_every_rank_and_host_apart_and_sums_them():
    r0 = tag([entry("nvml", "gpu:0", "gpu", 10.0), entry("rapl", "cpu:0", "package", 5.0)], 0, "a")
    r1 = tag([entry("nvml", "gpu:0", "gpu", 30.0)], 1, "a")  # its own GPU, also called gpu:0 there
    r2 = tag([entry("nvml", "gpu:0", "gpu", 7.0), entry("rapl", "cpu:0", "package", 2.0)], 2, "b")
    out = combine([r0, r1, r2])
    assert [(e.rank, e.host, e.device) for e in out] == [(0, "a", "gpu:0"), (0, "a", "cpu:0"), (1, "a", "gpu:0"),
                                                         (2, "b", "gpu:0"), (2, "b", "cpu:0")]
    assert measured_total(out) == pytest.approx(54.0)  # the sum over ranks and machines, not a mean


def test_combine_refuses_a_machine_meter_read_by_two_ranks_of_one_host():
    r0 = tag([entry("rapl", "cpu:0", "package", 5.0)], 0, "a")
    r1 = tag([entry("rapl", "cpu:0", "package", 5.0)], 1, "a")
    with pytest.raises(ValueError, match="counted twice"):
        combine([r0, r1])
    with pytest.raises(ValueError, match="tag"):
        combine([[entry("nvml", "gpu:0", "gpu", 1.0)]])


def test_merging_segments_keeps_each_ranks_sensor_apart():
    class W:
        def __init__(self, energy):
            self.energy = energy

    seg = [entry("nvml", "gpu:0", "gpu", 1.0, 0, "a"), entry("nvml", "gpu:0", "gpu", 3.0, 1, "a"),
           entry("nvml", "gpu:0", "gpu", 5.0, 2, "b")]
    merged = merge_windows([W(seg), W(seg)], "train")
    assert sorted((e.rank, e.joules) for e in merged) == [(0, 2.0), (1, 6.0), (2, 10.0)]


# ----------------------------------------------------------------------------- RankMonitor


class ThreadCollective:
    """Barrier and all_gather for ranks simulated as threads (what the gloo group does for processes)."""

    def __init__(self, n: int):
        self.barrier = threading.Barrier(n, timeout=10)
        self.slots = [None] * n
        self.barriers = 0

    def for_rank(self, rank: int):
        def barrier():
            self.barriers += 1
            self.barrier.wait()

        def all_gather(obj):
            self.slots[rank] = obj
            self.barrier.wait()
            out = list(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before every rank has copied them
            return out

        return barrier, all_gather


def test_rank_monitors_align_windows_and_every_rank_holds_the_sum():
    coll = ThreadCollective(2)
    watts = {0: {"gpu": 100.0, "rapl": 50.0}, 1: {"gpu": 300.0}}
    results = {}

    def rank(r):
        meters = [ScriptedClockMeter(name="nvml", device="gpu:0", domain="gpu")]
        if r == 0:  # local rank 0 owns the machine's CPU meter
            meters.append(ScriptedClockMeter(name="rapl", device="cpu:0", domain="package"))
        for m in meters:
            m.watts = watts[r]["gpu" if m.name == "nvml" else "rapl"]
        barrier, gather = coll.for_rank(r)
        mon = RankMonitor(meters, rank=r, host="a", barrier=barrier, all_gather=gather, cuda_sync=False)
        with mon.window("train") as w:
            for m in meters:
                m.advance(2.0)
        results[r] = w.result
        if r == 0:
            with mon.local(), mon.window("lm-eval") as w0:  # rank 0 alone: no barrier, no gather
                meters[0].advance(1.0)
            results["local"] = w0.result

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert coll.barriers == 4  # both edges of the one collective window, on both ranks
    for r in (0, 1):
        got = sorted((e.rank, e.meter, e.joules) for e in results[r].energy)
        assert got == [(0, "nvml", 200.0), (0, "rapl", 100.0), (1, "nvml", 600.0)]
        assert results[r].measured_joules == pytest.approx(900.0)
    assert [(e.rank, e.meter, e.joules) for e in results["local"].energy] == [(0, "nvml", 100.0), (0, "rapl", 0.0)]


def test_a_read_so_far_is_collective_on_every_rank():
    """Window.so_far on RankMonitors (the training window read at each evaluation step): the same barrier
    and gather as a window's edge, so every rank reads at the same step and holds every rank's sum."""
    coll = ThreadCollective(2)
    reads, finals = {}, {}

    def rank(r):
        meter = ScriptedClockMeter(name="nvml", device="gpu:0", domain="gpu")
        meter.watts = 100.0 * (r + 1)
        barrier, gather = coll.for_rank(r)
        mon = RankMonitor([meter], rank=r, host="a", barrier=barrier, all_gather=gather, cuda_sync=False)
        win = mon.begin("train")
        meter.advance(1.0)
        reads[r] = win.so_far()
        meter.advance(1.0)
        finals[r] = win.end()

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert coll.barriers == 6  # begin, the read and end, on both ranks
    for r in (0, 1):
        assert sorted((e.rank, e.joules) for e in reads[r].energy) == [(0, 100.0), (1, 200.0)]
        assert reads[r].measured_joules == pytest.approx(300.0) and finals[r].measured_joules == pytest.approx(600.0)


# ----------------------------------------------------------------------------- data and results


def test_each_rank_takes_its_rows_of_the_global_batch():
    batch = np.arange(12).reshape(4, 3)
    parts = [shard_rows(batch, r, 2) for r in (0, 1)]
    assert np.array_equal(np.concatenate(parts), batch)  # together: exactly the global batch, in order
    with pytest.raises(ValueError, match="does not split"):
        shard_rows(batch, 0, 3)


def test_ranks_generation_is_all_tokens_over_the_slowest_ranks_time():
    from eitp_bench.workloads.generate import GenerationResult, GenerationSetting

    # rank 0: 3 calls of 8 tokens in 4.5 s; rank 1 filled its window with 4 calls in 6 s
    latencies, tokens, busy = pool_generation([([1.0, 2.0, 1.5], 24), ([1.5, 1.5, 1.5, 1.5], 32)])
    assert (sorted(latencies), tokens, busy) == ([1.0, 1.5, 1.5, 1.5, 1.5, 1.5, 2.0], 56, 6.0)
    result = GenerationResult(GenerationSetting("greedy", 1, new_tokens=8), latencies, tokens, busy_s=busy)
    metrics = {m.name: m.value for m in result.metrics()}
    assert metrics["tokens_per_s@greedy-b1"] == pytest.approx(56 / 6.0)  # not 56 / 10.5, not a mean of rates
    assert metrics["latency_p50_s@greedy-b1"] == 1.5


# ----------------------------------------------------------------------------- the launcher section


def test_launcher_settings_are_validated_with_one_clear_message():
    suite = load_suite("smoke", ["launcher.nproc_per_node=2"])
    assert suite.launcher.world_size == 2
    for overrides, words in (
        (["launcher.nproc_per_node=3"], "'train.batch_size' has value 8: a multiple of the 3 ranks"),
        (["launcher.nnodes=2"], "'launcher.rdzv_endpoint' has value None: HOST:PORT of node 0"),
        (["launcher.nnodes=2", "launcher.rdzv_endpoint=node001"], "HOST:PORT is expected"),
        (["launcher.nnodes=2", "launcher.node_rank=2", "launcher.rdzv_endpoint=n:29500"], "below launcher.nnodes = 2"),
        (["launcher.nproc_per_node=4", "generate.batch_sizes=[48]"], "at most 32 prompts per rank"),
    ):
        with pytest.raises(UserError, match=words):
            load_suite("smoke", overrides)


def test_config_hash_counts_the_world_size_but_not_where_a_machine_sits():
    plain = suite_config_hash(load_suite("smoke"))
    assert suite_config_hash(load_suite("smoke", ["launcher.nproc_per_node=1"])) == plain  # one process as before
    two = ["launcher.nproc_per_node=2", "launcher.nnodes=2", "launcher.rdzv_endpoint=n:29500"]
    node0 = suite_config_hash(load_suite("smoke", two))
    node1 = suite_config_hash(load_suite("smoke", two + ["launcher.node_rank=1", "launcher.rdzv_endpoint=m:1"]))
    assert node0 == node1 != plain


def test_run_options_override_the_suites_launcher(capsys):
    from eitp_bench.cli import main

    code = main(["run", "smoke", "--dry-run", "--json", "--set", "launcher.nproc_per_node=4", "--nproc-per-node", "2",
                 "--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint", "10.0.0.1:29500"])
    assert code == 0
    launcher = json.loads(capsys.readouterr().out)["launcher"]
    assert (launcher["nproc_per_node"], launcher["nnodes"], launcher["node_rank"], launcher["rdzv_endpoint"],
            launcher["world_size"]) == (2, 2, 1, "10.0.0.1:29500", 4)


# ----------------------------------------------------------------------------- two real ranks

TINY = """
name: tiny-ranks
arms: [baseline]
tasks: [train]
sizes: [tiny]
repetitions: 1
seed: 3
device: cpu
timeout_s: 300
threads: 1
data: {kind: markov, vocab_size: 32, block_size: 16, train_tokens: 3000, val_tokens: 512}
train: {steps: 4, batch_size: 4, lr: 1.0e-3, eval_every: 2, eval_batches: 1}
"""


def run_ranks(tmp_path, extra=(), env_extra=None):
    """`eitp-bench run` of TINY on 2 ranks in a subprocess; every rank sees the same 2 fake GPUs."""
    (tmp_path / "tiny.yaml").write_text(TINY)
    env = dict(os.environ, EITP_TEST_FAKE_GPU_WATTS="100,300",
               PYTHONPATH=os.pathsep.join([str(TESTS / "fake_pynvml"), str(REPO)]), **(env_extra or {}))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "eitp_bench.cli", "run", str(tmp_path / "tiny.yaml"),
                           "--nproc-per-node", "2", "--out", str(out), "--store", str(tmp_path / "s.sqlite"),
                           "--no-report", "--quiet", *extra], env=env, capture_output=True, text=True, timeout=600)
    records = [RunRecord.model_validate_json(p.read_text()) for p in sorted(out.glob("*-train.json"))]
    return proc, records


@pytest.mark.slow  # two ranks, each importing torch and transformers
def test_two_gloo_ranks_train_one_model_and_every_sensor_counts_once(tmp_path):
    from fake_powercap import FakePowercap

    fake = FakePowercap(tmp_path / "sys")
    fake.add_package(0)  # one machine: package-0 (+ core, uncore, dram)
    with fake.simulate({"intel-rapl:0": 50.0, "intel-rapl:0:2": 5.0}):
        proc, records = run_ranks(tmp_path, env_extra={"EITP_BENCH_POWERCAP_ROOT": str(fake.root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record,) = records
    assert record.status == "ok" and (record.world_size, record.nnodes) == (2, 1)
    metrics = {m.name: m.value for m in record.metrics}
    assert metrics["ranks_parameters_identical"] == 1.0

    # DDP over 2 shards of the global batch trains the model one process trains on the whole batch
    import torch

    from eitp_bench.workloads.tasks import TaskContext

    suite = load_suite(str(tmp_path / "tiny.yaml"))
    torch.manual_seed(3)
    _, alone = TaskContext(suite, "baseline", "tiny", 3, 0, "cpu").trained_lm()
    assert metrics["final_val_loss"] == pytest.approx(alone.final_val_loss, abs=1e-4)

    # each rank read its own GPU (of the two every rank sees), local rank 0 alone the CPU and DRAM
    energy = record.energy
    gpus = sorted((e.rank, e.device) for e in energy if e.domain == "gpu")
    assert gpus == [(0, "gpu:0"), (1, "gpu:1")]
    node = [(e.rank, e.domain) for e in energy if e.meter == "rapl" and e.domain in ("package", "dram")]
    assert sorted(node) == [(0, "dram"), (0, "package")]
    assert len({e.host for e in energy}) == 1
    # the record's measured total is the sum of every rank's GPU entry and the one machine's CPU entries
    summed = sum(e.joules for e in energy if e.domain in ("gpu", "package", "dram") and e.joules is not None)
    assert metrics["train_joules"] == pytest.approx(summed)
    assert metrics["train_joules"] > sum(e.joules for e in energy if e.domain == "gpu" and e.rank == 0)


@pytest.mark.slow
def test_a_failed_rank_fails_the_repetition_with_its_log(tmp_path):
    proc, records = run_ranks(tmp_path, ["--set", "debug.crash_arms=[baseline]", "--set", "debug.crash_rank=1"])
    assert proc.returncode == 1
    (record,) = records
    # no rank wrote it: the runner did, for the repetition it planned (2 ranks), with no measured hardware
    assert record.status == "failed" and record.world_size == 2 and record.provenance.hardware == {}
    assert "rank 1 (local rank 1 on node 0) failed" in record.error
    assert "injected failure of arm baseline" in record.error


def test_the_report_keeps_same_named_sensors_of_two_machines_apart():
    import pandas as pd

    from eitp_bench.analysis.findings import _energy_breakdown, _energy_table

    rows = [dict(run_id=run, hardware_profile_id="p", task="train", arm="baseline", window="train", device="gpu:0",
                 domain="gpu", method="counter", meter="nvml", joules=j, net_joules=None, idle_watts=None,
                 duration_s=1.0, rank=rank, host=host)
            for run in ("r1", "r2") for rank, host, j in ((0, "a", 10.0), (1, "b", 30.0))]
    e = pd.DataFrame(rows)
    table = _energy_table(e)
    assert sorted((r["host"], r["joules"], r["n"]) for r in table) == [("a", 10.0, 2), ("b", 30.0, 2)]
    breakdown = _energy_breakdown(e)
    assert sorted(zip(breakdown["channel"], breakdown["joules"])) == [("gpu:0 gpu rank 0 on a", 10.0),
                                                                      ("gpu:0 gpu rank 1 on b", 30.0)]


def test_a_helper_node_collects_no_records_node_0_writes_them(tmp_path, capsys):
    from eitp_bench.runner import Runner, plan

    suite = load_suite("smoke", ["launcher.nproc_per_node=2", "launcher.nnodes=2", "launcher.node_rank=1",
                                 "launcher.rdzv_endpoint=node001:29500"])
    spec = plan(suite)[0]
    log = tmp_path / "worker.log"
    log.write_text("rank 3 failed\n")
    runner = Runner(suite, tmp_path / "out", progress=False)
    assert runner._complete(spec, tmp_path, "2026-01-01T00:00:00Z", None, log) == []
    assert runner._complete(spec, tmp_path, "2026-01-01T00:00:00Z", "worker exited with code 1", log) == []
    assert "this node's ranks failed: worker exited with code 1\nrank 3 failed" in capsys.readouterr().err


@pytest.mark.slow  # two ranks, each importing torch
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_kill_9_while_the_ranks_run_leaves_no_process_and_resume_completes(tmp_path):
    from process_checks import cmdline, descendants, kill_9_and_check_the_tree_dies, wait_for

    (tmp_path / "tiny.yaml").write_text(TINY)
    env = dict(os.environ, EITP_TEST_FAKE_GPU_WATTS="100,300",
               PYTHONPATH=os.pathsep.join([str(TESTS / "fake_pynvml"), str(REPO)]))
    out, store = tmp_path / "out", tmp_path / "s.sqlite"
    args = [sys.executable, "-m", "eitp_bench.cli", "run", str(tmp_path / "tiny.yaml"), "--nproc-per-node", "2",
            "--out", str(out), "--store", str(store), "--no-report", "--quiet"]
    parent = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    try:
        ranks = lambda: [p for p in descendants(parent.pid) if "--rank-worker" in cmdline(p)]  # noqa: E731
        wait_for(lambda: len(ranks()) == 2 or parent.poll() is not None, "both ranks to start", timeout=300)
        assert parent.poll() is None, "the run ended before its ranks could be caught running"
        kill_9_and_check_the_tree_dies(parent)  # runner, forkserver, worker (the elastic agent), both ranks
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    resume = subprocess.run([*args, "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resume.returncode == 0, resume.stderr[-3000:]
    import sqlite3

    with sqlite3.connect(store) as conn:
        assert conn.execute("select count(*), count(distinct run_id) from runs").fetchone() == (1, 1)

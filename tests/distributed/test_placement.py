"""Ranks and GPUs: more NCCL ranks than visible GPUs is refused before any work; ranks get OMP_NUM_THREADS."""

import sys

import pytest

from eitp_bench.cli import main
from eitp_bench.distributed import placement
from eitp_bench.distributed.placement import (GpuCount, rank_environment, ranks_per_gpu_problem,
                                              visible_gpu_count)
from fake_nvml import NVML_ERROR_DRIVER_NOT_LOADED, FakeGpu, FakeNvml, NVMLError


def fake_nvml(n):
    return FakeNvml(gpus=[FakeGpu() for _ in range(n)])


def no_torch():
    raise AssertionError("torch's count is the last resort: not needed here")


def test_visible_gpus_are_counted_by_nvml_with_cuda_visible_devices_applied():
    assert visible_gpu_count(env={}, nvml=fake_nvml(2), torch_count=no_torch).count == 2
    one = visible_gpu_count(env={"CUDA_VISIBLE_DEVICES": "1"}, nvml=fake_nvml(2), torch_count=no_torch)
    assert one.count == 1 and "CUDA_VISIBLE_DEVICES='1'" in one.source
    # CUDA stops at the first entry that names no GPU (index 5 of 2): so does the count
    assert visible_gpu_count(env={"CUDA_VISIBLE_DEVICES": "0,5,1"}, nvml=fake_nvml(2), torch_count=no_torch).count == 1


def test_without_nvml_the_count_comes_from_cuda_visible_devices_then_a_child_torch():
    broken = fake_nvml(4)

    def fail():
        raise NVMLError(NVML_ERROR_DRIVER_NOT_LOADED)

    broken.nvmlInit = fail
    assert visible_gpu_count(env={"CUDA_VISIBLE_DEVICES": "0,1"}, nvml=broken, torch_count=no_torch).count == 2
    assert visible_gpu_count(env={"CUDA_VISIBLE_DEVICES": ""}, nvml=broken, torch_count=no_torch).count == 0
    assert visible_gpu_count(env={"CUDA_VISIBLE_DEVICES": "0,-1,1"}, nvml=broken, torch_count=no_torch).count == 1
    counted = visible_gpu_count(env={}, nvml=broken, torch_count=lambda: 3)
    assert counted.count == 3 and "child process" in counted.source
    assert visible_gpu_count(env={}, nvml=broken, torch_count=lambda: None) is None


@pytest.mark.parametrize("nproc, device, gpus, cuda_built, refused", [
    (2, "cuda", 1, True, True),    # two NCCL ranks on one GPU: NCCL's "Duplicate GPU detected"
    (2, "auto", 1, True, True),    # auto picks NCCL when torch has CUDA and a GPU is in sight
    (2, "cuda", 2, True, False),   # one GPU per rank
    (1, "cuda", 1, True, False),   # a single process
    (2, "auto", 1, False, False),  # a CPU build of torch: gloo ranks on CPU share freely
    (4, "cpu", 1, True, False),    # gloo
    (2, "cuda", 0, True, False),   # no GPU at all: the missing GPU is its own problem
])
def test_nccl_ranks_need_one_gpu_each(nproc, device, gpus, cuda_built, refused):
    problem = ranks_per_gpu_problem(nproc, device, GpuCount(gpus, "NVML"), cuda_built)
    assert (problem is not None) == refused
    if refused:
        why, fix = problem
        assert "Duplicate GPU detected" in why and f"--nproc-per-node {gpus}" in fix and "device=cpu" in fix
    assert ranks_per_gpu_problem(nproc, device, None, cuda_built) is None  # cannot count: not refused here


@pytest.mark.parametrize("env", [{}, {"CUDA_VISIBLE_DEVICES": "0"}])
def test_two_ranks_on_one_gpu_are_refused_before_any_work(env, tmp_path, monkeypatch, capsys):
    """`run --nproc-per-node 2` with NCCL on a machine showing one GPU (a one-GPU fake NVML, or two GPUs with
    CUDA_VISIBLE_DEVICES=0): exit 2, the problem and its fix, no folder, no store, no process started."""
    import eitp_bench.runner.preflight as preflight
    import eitp_bench.runner.parent as parent

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(2 if env else 1))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(preflight, "_cuda_available", lambda: True)  # this machine has no GPU: say torch sees one
    monkeypatch.setattr(preflight, "_cuda_built", lambda: True)
    monkeypatch.setattr(placement, "_torch_count_in_child", no_torch)
    monkeypatch.setattr(parent, "start_worker", lambda *a, **k: pytest.fail("a worker was started"))
    out, store = tmp_path / "out", tmp_path / "store.sqlite"
    code = main(["run", "smoke", "--set", "device=cuda", "--nproc-per-node", "2", "--out", str(out),
                 "--store", str(store), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "launcher.nproc_per_node" in err and "Duplicate GPU detected" in err
    assert "--nproc-per-node 1" in err and "Traceback" not in err
    assert not out.exists() and not store.exists()


def test_ranks_get_omp_num_threads_like_torchrun():
    assert rank_environment({}, 2) == {"OMP_NUM_THREADS": "1"}
    assert rank_environment({}, 1) == {}  # a single rank keeps OpenMP's default
    assert rank_environment({"OMP_NUM_THREADS": "8"}, 4) == {}  # the user's choice stands


def test_the_launcher_hands_the_ranks_omp_num_threads(tmp_path, monkeypatch):
    """launch_ranks sets it in the environment elastic_launch gives the ranks (the worker's own)."""
    import torch.distributed.launcher.api as api

    from eitp_bench.distributed.launch import launch_ranks
    from eitp_bench.suite import LauncherConfig

    seen = {}

    def fake_launch(config, entrypoint):
        import os

        seen["omp"], seen["nproc"] = os.environ.get("OMP_NUM_THREADS"), config.nproc_per_node
        return lambda *args: None

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # restored after the test
    monkeypatch.setattr(api, "elastic_launch", fake_launch)
    assert launch_ranks("spec.json", LauncherConfig(nproc_per_node=2), tmp_path, "id") == 0
    assert seen == {"omp": "1", "nproc": 2}


def test_a_cpu_build_of_torch_counts_nothing_and_says_only_that_the_gpu_is_missing(monkeypatch):
    import eitp_bench.runner.preflight as preflight

    monkeypatch.setattr(preflight, "_cuda_built", lambda: False)
    monkeypatch.setattr(preflight, "_cuda_available", lambda: False)
    monkeypatch.setattr(placement, "visible_gpu_count", lambda *a, **k: pytest.fail("counted GPUs"))
    suite, missing = preflight.check_suite_before_work("smoke", ["device=cuda", "launcher.nproc_per_node=2"],
                                                       dry_run=True, probe_sensors=False)
    assert [m.what for m in missing] == ["CUDA GPU"]

"""What the runner and `bounds` tell the person waiting: plan first, done/planned, task, elapsed, ETA."""

import io
import json

from eitp_bench.cli import main
from eitp_bench.runner.progress import Steps
from eitp_bench.records import Provenance, RunRecord
from eitp_bench.runner import plan
from eitp_bench.runner.progress import RunProgress, clock_text
from eitp_bench.suite import load_suite


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def record(spec, task, status="ok"):
    return RunRecord(suite="s", suite_config_hash="h", arm=spec.arm, task=task, size=spec.size, seed=spec.seed,
                     repetition=spec.repetition, status=status,
                     provenance=Provenance(eitp_bench_version="0", python="3", platform="fake"))


def test_eta_is_the_mean_finished_repetition_times_those_left():
    specs = plan(load_suite("smoke", ["repetitions=1", "arms=[baseline, eitp-paper, eitp-coded]"]))
    clock, out = Clock(), io.StringIO()
    bar = RunProgress(3, mode="lines", clock=clock, stream=out)
    assert bar.eta_s() is None  # nothing finished: no guess
    bar.starting(specs[0])
    bar.phase("train")
    clock.t += 10
    bar.finished(specs[0], [record(specs[0], "train")])
    bar.starting(specs[1])
    clock.t += 30
    bar.finished(specs[1], [record(specs[1], "train", status="failed")])
    assert bar.eta_s() == 20.0  # (10 + 30) / 2 × 1 left
    lines = out.getvalue().splitlines()
    assert lines[0] == f"[1/3] {specs[0].label}: train"  # the current arm's task, as it starts
    assert lines[1] == f"[1/3] {specs[0].label} ok · elapsed 0:10 · ETA 0:20"
    assert lines[2] == f"[2/3] {specs[1].label} failed: train · elapsed 0:40 · ETA 0:20"


def test_quiet_says_the_plan_and_finished_repetitions_only():
    [spec] = plan(load_suite("smoke", ["repetitions=1", "arms=[baseline]"]))
    out = io.StringIO()
    bar = RunProgress(1, mode="quiet", clock=Clock(), stream=out)
    bar.note("suite smoke: 1 repetitions planned")
    bar.starting(spec)
    bar.phase("train")
    bar.finished(spec, [record(spec, "train")])
    assert out.getvalue().splitlines() == ["suite smoke: 1 repetitions planned",
                                           f"[1/1] {spec.label} ok · elapsed 0:00 · ETA 0:00"]


def test_clock_text():
    assert [clock_text(s) for s in (None, 0, 59.6, 61, 3725)] == ["?", "0:00", "1:00", "1:01", "1:02:05"]


def test_steps_print_one_line_each_off_a_terminal():
    clock, out = Clock(), io.StringIO()
    with Steps("bounds", 2, stream=out, clock=clock) as steps:
        steps.step("loading")
        clock.t += 1.5
        steps.step("counting")
    assert out.getvalue().splitlines() == ["bounds: loading (1/2, 0.0 s)", "bounds: counting (2/2, 1.5 s)"]


def test_bounds_shows_its_steps_on_stderr_and_keeps_json_on_stdout(capsys):
    assert main(["bounds", "--model", "tiny", "--json"]) in (0, None)
    captured = capsys.readouterr()
    json.loads(captured.out)
    steps = [line for line in captured.err.splitlines() if line.startswith("bounds: ") and ": still " not in line]
    assert steps[0].startswith("bounds: loading model tiny (1/5") and "(5/5" in steps[-1] and len(steps) == 5


def test_the_first_repetitions_wait_for_the_worker_server_is_said_and_kept_out_of_the_eta():
    [spec] = plan(load_suite("smoke", ["repetitions=1", "arms=[baseline]"]))
    clock, out = Clock(), io.StringIO()
    bar = RunProgress(2, mode="lines", clock=clock, stream=out)
    bar.starting(spec)
    bar.waiting_for_server()
    clock.t += 20  # the server imports torch
    bar.phase("train")
    clock.t += 5
    bar.finished(spec, [record(spec, "train")])
    assert bar.eta_s() == 5.0
    assert "waiting for the worker server to import torch" in out.getvalue().splitlines()[0]


def test_a_long_step_keeps_saying_it_still_runs():
    """`tick` (called by the heartbeat thread every HEARTBEAT_S) names the running step and its time so far."""
    from eitp_bench.runner.progress import HEARTBEAT_S

    assert HEARTBEAT_S < 2.0  # never silent for more than 2 s
    clock, out = Clock(), io.StringIO()
    with Steps("bounds", 2, stream=out, clock=clock) as steps:
        steps.tick()  # before any step: nothing to say
        steps.step("loading")
        clock.t += 1.5
        steps.tick()
        clock.t += 1.5
        steps.tick()
        steps.step("counting")
    assert out.getvalue().splitlines() == [
        "bounds: loading (1/2, 0.0 s)",
        "bounds: still loading (1/2, 1.5 s in this step, 1.5 s in all)",
        "bounds: still loading (1/2, 3.0 s in this step, 3.0 s in all)",
        "bounds: counting (2/2, 3.0 s)"]


def test_the_heartbeat_thread_stops_with_the_steps():
    import threading

    before = threading.active_count()
    with Steps("x", 1, stream=io.StringIO(), heartbeat_s=0.01) as steps:
        steps.step("a")
    assert threading.active_count() == before

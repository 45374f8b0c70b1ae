"""The runner survives its own death: workers die with the parent, staged repetitions are recovered,
`--resume` completes a killed run with every planned repetition stored exactly once.

The kill tests start a real `eitp-bench run` (forkserver and workers) with the cheapest suite there
is: one task (`generate`, 2 new tokens, untrained tiny model), two arms, two rounds. The worker of
one arm waits while a pause file exists (`debug.pause_arms`), so the parent is killed mid-suite at
a known point, never by timing.
"""

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from eitp_bench.cli import main
from process_checks import alive, cmdline, descendants, kill_9_and_check_the_tree_dies, wait_for
from eitp_bench.records import Provenance, RunRecord
from eitp_bench.runner import plan, round_order
from eitp_bench.runner.recovery import SUITE_FILE, config_differences
from eitp_bench.runner.staging import new_staging, write_json_atomic
from eitp_bench.suite import load_suite

ARMS = ["baseline", "baseline-int8"]
CHEAP = ["tasks=[generate]", "repetitions=2", "generate.new_tokens=2", "generate.runs=1", "generate.warmups=0",
         "generate.batch_sizes=[1]", "meters.idle_s=0"]


def cheap_suite(tmp_path: Path, pause_arm: str) -> list[str]:
    """--set values: round 0 runs the other arm first, then `pause_arm`, which waits on the pause file."""
    seed = next(s for s in range(100) if round_order(ARMS, s, "tiny")[-1] == pause_arm)
    sets = CHEAP + [f"arms=[{', '.join(ARMS)}]", f"seed={seed}", f"debug.pause_arms=[{pause_arm}]",
                    f"debug.pause_file={tmp_path / 'pause'}"]
    return sum((["--set", s] for s in sets), [])


def paused_worker(out: Path):
    """The pid of the worker waiting on the pause file, once it waits."""
    for staging in (out / ".staging").glob("*"):
        if (staging / "phase").exists() and "paused" in (staging / "phase").read_text() and (staging / "pid").exists():
            return int((staging / "pid").read_text())
    return None


def stored_keys(store: Path) -> list[tuple]:
    with sqlite3.connect(store) as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
        return sorted(conn.execute("select arm, size, repetition, task from runs").fetchall())


def resume_completes(tmp_path, out, store, sets, capsys, discarded: bool) -> None:
    """`--resume` runs exactly what is missing: every planned repetition stored once, store intact."""
    (tmp_path / "pause").unlink()
    assert main(["run", "smoke", "--out", str(out), "--store", str(store), "--no-report", "--quiet", "--resume",
                 *sets]) == 0
    err = capsys.readouterr().err
    assert "resuming: 1 of 4 repetitions already stored for this configuration, 3 to run" in err
    assert ("discarded incomplete repetition tiny-r000-baseline-int8" in err) == discarded
    planned = sorted((s.arm, s.size, s.repetition, t) for s in plan(load_suite("smoke", sets[1::2])) for t in s.tasks)
    assert stored_keys(store) == planned  # every planned repetition exactly once
    assert len(list(out.glob("tiny-*.json"))) == len(planned) and not (out / ".staging").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
def test_kill_9_of_the_parent_takes_its_workers_and_resume_completes(tmp_path, capsys):
    out, store = tmp_path / "out", tmp_path / "results.sqlite"
    (tmp_path / "pause").touch()
    sets = cheap_suite(tmp_path, pause_arm="baseline-int8")
    cmd = [sys.executable, "-m", "eitp_bench.cli", "run", "smoke", "--out", str(out), "--store", str(store),
           "--no-report", "--quiet", *sets]
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        worker = wait_for(lambda: paused_worker(out), "the paused worker")
        below = descendants(parent.pid)
        assert worker in below  # the worker runs under the parent (forked by its forkserver)
        os.kill(parent.pid, signal.SIGKILL)
        assert parent.wait(timeout=60) == -signal.SIGKILL
        # the forkserver, the resource tracker and the paused worker: none survives the parent
        wait_for(lambda: not [p for p in below if alive(p)], "every process below the parent to die", timeout=20)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert stored_keys(store) == [("baseline", "tiny", 0, "generate")]  # published when its worker ended
    assert list((out / ".staging").iterdir())  # the paused repetition, left unfinished
    resume_completes(tmp_path, out, store, sets, capsys, discarded=True)


# --------------------------------------------------------------- one process tree, one fate (SIGKILL)

def importing_forkserver(parent: int, out: Path):
    """True while the forkserver exists and has forked no worker yet (it is still importing, or the
    first worker is not yet asked for). Judged from the server's own children, not from the staging
    folder: the runner makes that folder while the server may still be importing."""
    servers = [p for p in descendants(parent) if "forkserver" in cmdline(p)]
    return bool(servers) and not any(descendants(s) for s in servers)


def cooling_down(store: Path):
    """True once the first repetition is stored: the parent then waits out a long cooldown."""
    if not store.exists():
        return False
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
            return conn.execute("select count(*) from runs").fetchone()[0] == 1
    except sqlite3.Error:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux's")
@pytest.mark.parametrize("point", ["forkserver-import", "between-repetitions", "mid-repetition"])
def test_kill_9_at_any_point_leaves_no_process_and_resume_completes(tmp_path, capsys, monkeypatch, point):
    out, store = tmp_path / "out", tmp_path / "results.sqlite"
    (tmp_path / "pause").touch()
    sets = cheap_suite(tmp_path, pause_arm="baseline-int8")
    extra = ["--set", "meters.cooldown_s=600"] if point == "between-repetitions" else []
    cmd = [sys.executable, "-m", "eitp_bench.cli", "run", "smoke", "--out", str(out), "--store", str(store),
           "--no-report", "--quiet", *sets, *extra]
    parent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if point == "forkserver-import":
            wait_for(lambda: importing_forkserver(parent.pid, out), "the forkserver to start importing")
        elif point == "between-repetitions":
            wait_for(lambda: cooling_down(store), "the first repetition to be stored")
        else:
            wait_for(lambda: paused_worker(out), "the paused worker")
        kill_9_and_check_the_tree_dies(parent)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    (tmp_path / "pause").unlink()
    from eitp_bench.runner import Runner

    monkeypatch.setitem(Runner.__init__.__kwdefaults__, "sleep", lambda s: None)  # the resume skips the cooldown
    args = ["run", "smoke", "--out", str(out), "--store", str(store), "--no-report", "--quiet", *sets, *extra]
    code = main(args + ["--resume"] if (out / SUITE_FILE).exists() else args)
    assert code == 0, capsys.readouterr().err
    planned = sorted((s.arm, s.size, s.repetition, t) for s in plan(load_suite("smoke", sets[1::2])) for t in s.tasks)
    assert stored_keys(store) == planned  # every planned repetition exactly once: 0 duplicates


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_or_sighup_of_the_cli_leaves_no_process_behind(tmp_path, sig, code):
    """The forkserver used to linger for seconds after a clean stop: now nothing outlives the exit."""
    from process_checks import signal_and_check_the_tree_dies

    out, store = tmp_path / "out", tmp_path / "results.sqlite"
    (tmp_path / "pause").touch()
    sets = cheap_suite(tmp_path, pause_arm="baseline-int8")
    cmd = [sys.executable, "-m", "eitp_bench.cli", "run", "smoke", "--out", str(out), "--store", str(store),
           "--no-report", "--quiet", *sets]
    parent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: paused_worker(out), "the paused worker")
        assert signal_and_check_the_tree_dies(parent, sig) == code
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert stored_keys(store) == [("baseline", "tiny", 0, "generate")]  # the finished repetition is kept


def test_a_worker_forked_after_its_runner_died_never_runs(tmp_path):
    """The forkserver served a fork request the runner sent just before dying: the worker exits first thing."""
    import multiprocessing

    from eitp_bench.runner.forkserver import _forked_worker, warm_up

    server = warm_up()
    log = tmp_path / "worker.log"
    dead_runner = os.getpid() + 1_000_000  # not the server's parent: as if the runner had died
    p = multiprocessing.get_context("forkserver").Process(
        target=_forked_worker, args=(str(tmp_path / "spec.json"), str(log), server, dead_runner, dict(os.environ)))
    p.start()
    p.join(60)
    assert p.exitcode == 1 and not log.exists()  # it stopped before opening its log, let alone the spec


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_sigterm_stops_the_worker_discards_its_repetition_and_resume_completes(tmp_path, capsys):
    """In this process (its forkserver is warm): a thread sends SIGTERM once the worker waits."""
    import threading

    out, store = tmp_path / "out", tmp_path / "results.sqlite"
    (tmp_path / "pause").touch()
    sets = cheap_suite(tmp_path, pause_arm="baseline-int8")
    seen = {}

    def terminate_when_paused():
        seen["worker"] = wait_for(lambda: paused_worker(out), "the paused worker")
        os.kill(os.getpid(), signal.SIGTERM)

    handler_before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=terminate_when_paused, daemon=True).start()
    code = main(["run", "smoke", "--out", str(out), "--store", str(store), "--no-report", "--quiet", *sets])
    assert code == 143
    assert "interrupted; 1 of 4 repetitions finished" in capsys.readouterr().err
    wait_for(lambda: not alive(seen["worker"]), "the worker to die", timeout=20)
    assert stored_keys(store) == [("baseline", "tiny", 0, "generate")]
    assert not (out / ".staging").exists()  # the parent discarded the interrupted repetition itself
    assert signal.getsignal(signal.SIGTERM) == handler_before  # the runner's handler is gone again
    resume_completes(tmp_path, out, store, sets, capsys, discarded=False)


def test_forkserver_children_are_fresh_preloaded_and_cuda_free():
    import multiprocessing

    import forkserver_probe

    from eitp_bench.runner.forkserver import warm_up

    server = warm_up()
    ctx = multiprocessing.get_context("forkserver")
    queue = ctx.SimpleQueue()
    seen = []
    for _ in range(2):
        p = ctx.Process(target=forkserver_probe.report, args=(queue,))
        p.start()
        seen.append(queue.get())
        p.join()
    assert [s["ppid"] for s in seen] == [server, server]  # forked by the server …
    assert seen[0]["pid"] != seen[1]["pid"]  # … each repetition a new process
    assert all(s["preloaded"] for s in seen)  # the heavy imports were paid once, in the server
    assert not any(s["cuda_initialized"] or s["bad_fork"] for s in seen)  # CUDA never touched there


# ----------------------------------------------------------------------------- staging, fake workers

from test_runner import fake_python  # noqa: E402,F401  (the fixture: plain subprocess fake workers)


def fake_record(spec, task) -> RunRecord:
    return RunRecord(suite=spec.suite_name, suite_config_hash=spec.config_hash, arm=spec.arm, task=task,
                     size=spec.size, seed=spec.seed, repetition=spec.repetition,
                     provenance=Provenance(eitp_bench_version="0", python="3", platform="fake"))


def suite_yaml(tmp_path, reps=2) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(f"name: s\narms: [baseline, eitp-paper]\ntasks: [train, lm]\nrepetitions: {reps}\n")
    return path


def test_staged_repetitions_are_recovered_or_discarded_on_the_next_run(fake_python, tmp_path, capsys):
    path, out, store = suite_yaml(tmp_path), tmp_path / "out", tmp_path / "results.sqlite"
    specs = plan(load_suite(str(path)))
    complete, incomplete = specs[0], specs[1]
    for spec, tasks in ((complete, complete.tasks), (incomplete, complete.tasks[:1])):
        staging = new_staging(out, spec)  # what a parent killed after (or during) the worker left behind
        for task in tasks:
            write_json_atomic(staging / f"{task}.json", fake_record(spec, task).model_dump_json())
        (staging / "worker.log").write_text("the worker's own words\n")
    assert main(["run", str(path), "--out", str(out), "--store", str(store), "--no-report", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "recovered 1 finished repetitions (2 records)" in err
    assert f"discarded incomplete repetition {incomplete.label} left by an earlier run (no record for: lm)" in err
    assert (out / "logs" / f"{incomplete.label}.discarded.log").read_text() == "the worker's own words\n"
    assert "resuming: 1 of 4 repetitions already stored" in err  # the recovered one is not run again
    keys = stored_keys(store)
    assert len(keys) == len(set(keys)) == 8 and not (out / ".staging").exists()


def test_a_folder_with_a_run_is_refused_without_resume_and_resume_of_a_changed_suite(fake_python, tmp_path, capsys):
    path, out, store = suite_yaml(tmp_path, reps=1), tmp_path / "out", tmp_path / "results.sqlite"
    args = ["run", str(path), "--out", str(out), "--store", str(store), "--no-report"]
    assert main(args) == 0
    before = stored_keys(store)
    capsys.readouterr()
    assert main(args) == 2  # no silent duplicates
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "new --out" in err
    assert main(args + ["--resume", "--set", "repetitions=2", "--set", "train.lr=0.01"]) == 2
    err = capsys.readouterr().err
    assert "the suite differs from the one it ran" in err and "repetitions: 1 → 2" in err and "train.lr:" in err
    assert main(args + ["--resume"]) == 0  # the same suite: nothing left to run
    assert "resuming: 2 of 2 repetitions already stored for this configuration, 0 to run" in capsys.readouterr().err
    assert stored_keys(store) == before


def test_resume_needs_the_folder_of_the_run(capsys):
    assert main(["run", "smoke", "--resume"]) == 2
    assert "--resume needs the results folder" in capsys.readouterr().err


def test_config_differences_name_the_fields():
    old = {"train": {"steps": 2, "lr": 0.1}, "arms": ["a"], "gone": 1}
    new = {"train": {"steps": 3, "lr": 0.1}, "arms": ["a", "b"], "extra": True}
    assert config_differences(old, new) == [
        'arms: ["a"] → ["a", "b"]', "extra: (absent) → true", "gone: 1 → (absent)", "train.steps: 2 → 3"]


def test_a_second_run_into_a_folder_in_use_is_refused(fake_python, tmp_path, capsys):
    from eitp_bench.runner.recovery import lock_out_dir

    path, out = suite_yaml(tmp_path, reps=1), tmp_path / "out"
    held = lock_out_dir(out)  # as a live run holds it
    try:
        assert main(["run", str(path), "--out", str(out), "--no-report"]) == 2
        assert "another eitp-bench run is using" in capsys.readouterr().err
        assert not (out / "suite.json").exists()
    finally:
        held.close()
    assert main(["run", str(path), "--out", str(out), "--no-report"]) == 0  # free again


def test_records_and_suite_json_get_the_mode_any_new_file_gets(tmp_path):
    """Not mkstemp's 0600: another user of the group can import the folder, as they can read the report."""
    import stat

    target = tmp_path / "r.json"
    old = os.umask(0o022)
    try:
        write_json_atomic(target, "{}")
        os.umask(0o002)
        write_json_atomic(tmp_path / "g.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "g.json").stat().st_mode) == 0o664

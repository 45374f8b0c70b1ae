"""The runner: plan and interleaving, one process per repetition, failures, Ctrl-C, end to end."""

import _thread
import json
import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from eitp_bench.cli import main
from eitp_bench.records import RunRecord
from eitp_bench.runner import Runner, plan, round_order, worker_main, write_json_atomic
from eitp_bench.suite import load_suite

FAST = [
    "train.steps=2", "train.eval_every=2", "train.eval_batches=1", "data.train_tokens=3000", "data.val_tokens=512",
    "retrieval.steps=2", "retrieval.eval_per_distance=4", "generate.new_tokens=4", "generate.runs=1",
    "generate.warmups=0", "generate.batch_sizes=[1]", "compress.calib_batches=1", "compress.eval_blocks=4",
]


def records_in(folder: Path) -> list[RunRecord]:
    return [RunRecord.model_validate_json(p.read_text()) for p in sorted(folder.glob("*.json")) if p.name != "suite.json"]


def test_plan_interleaves_arms_with_shared_seeds():
    suite = load_suite("smoke", ["repetitions=3", "seed=10"])
    specs = plan(suite)
    arms = list(suite.arms)
    orders = []
    for rep in range(3):
        rnd = specs[rep * len(arms) : (rep + 1) * len(arms)]
        # every arm once per round, in a shuffled order recorded as its position
        assert sorted(s.arm for s in rnd) == sorted(arms) and [s.position for s in rnd] == list(range(len(arms)))
        assert {s.seed for s in rnd} == {10 + rep} and {s.repetition for s in rnd} == {rep}
        orders.append([s.arm for s in rnd])
    assert len({tuple(o) for o in orders}) > 1  # not one fixed order (5! orders; these seeds give several)
    assert [s.arm for s in plan(suite)] == [s.arm for s in specs]  # reproducible from the seeds
    by_arm = {s.arm: s.tasks for s in specs}
    assert by_arm["baseline"] == ["train", "lm", "retrieval", "generate", "compress", "theory", "derivation"]
    assert by_arm["baseline-int8"] == by_arm["eitp-compressed"] == ["generate", "compress"]


def test_atomic_write_leaves_only_the_final_file(tmp_path):
    target = tmp_path / "sub" / "r.json"
    write_json_atomic(target, '{"a": 1}')
    write_json_atomic(target, '{"a": 2}')
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


# ----------------------------------------------------------------------------- a fake worker

FAKE_WORKER = '''
import json, os, sys, time
from pathlib import Path
from eitp_bench.records import Provenance, RunRecord
spec = json.loads(Path(sys.argv[sys.argv.index("--worker") + 1]).read_text())
staging = Path(spec["staging"])
if spec["arm"] == "eitp-coded":  # hangs until killed
    (Path(os.environ["FAKE_PID_DIR"]) / "pid").write_text(str(os.getpid()))
    time.sleep(120)
for task in spec["tasks"]:
    rec = RunRecord(suite=spec["suite_name"], suite_config_hash=spec["config_hash"], arm=spec["arm"], task=task,
                    size=spec["size"], seed=spec["seed"], repetition=spec["repetition"],
                    provenance=Provenance(eitp_bench_version="0", python="3", platform="fake",
                                          hardware={"cooldown_before_s": spec.get("cooldown_before_s"),
                                                    "qualification": spec.get("qualification"),
                                                    "runner_pid": spec.get("runner_pid")}))
    (staging / f"{task}.json").write_text(rec.model_dump_json())
'''


@pytest.fixture
def fake_python(tmp_path, monkeypatch):
    script = tmp_path / "fake_worker.py"
    script.write_text(FAKE_WORKER)
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("FAKE_PID_DIR", str(tmp_path))
    monkeypatch.setenv("EITP_BENCH_WORKER_PYTHON", str(wrapper))  # plain subprocess workers, this interpreter
    return tmp_path


def suite_file(tmp_path, body):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def seed_where_first(arm: str, arms: list[str]) -> int:
    """A suite seed whose first round starts with `arm` (rounds are shuffled by their seed)."""
    return next(seed for seed in range(100) if round_order(arms, seed, "tiny")[0] == arm)


def test_ctrl_c_kills_the_worker_and_keeps_finished_repetitions(fake_python, tmp_path, capsys):
    seed = seed_where_first("baseline", ["baseline", "eitp-coded"])
    path = suite_file(tmp_path, f"name: s\narms: [baseline, eitp-coded]\ntasks: [train]\nrepetitions: 2\nseed: {seed}\n")
    out = tmp_path / "out"

    def interrupt_when_hanging():
        deadline = time.time() + 30
        while not (tmp_path / "pid").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_when_hanging, daemon=True).start()
    assert main(["run", str(path), "--out", str(out)]) == 130
    assert "1 of 4 repetitions finished" in capsys.readouterr().err
    [rec] = records_in(out)
    assert (rec.arm, rec.status) == ("baseline", "ok")
    pid = int((tmp_path / "pid").read_text())
    with pytest.raises(ProcessLookupError):  # the hanging worker is gone …
        os.kill(pid, 0)
    assert not (out / ".staging").exists()  # … and so is its staging folder


def test_sighup_stops_the_run_like_sigterm_and_keeps_finished_repetitions(fake_python, tmp_path, capsys):
    """A closed terminal or ssh session: exit 129, the finished repetition kept, the hanging worker gone."""
    import signal

    seed = seed_where_first("baseline", ["baseline", "eitp-coded"])
    path = suite_file(tmp_path, f"name: s\narms: [baseline, eitp-coded]\ntasks: [train]\nrepetitions: 2\nseed: {seed}\n")
    out = tmp_path / "out"

    def hang_up_when_hanging():
        deadline = time.time() + 30
        while not (tmp_path / "pid").exists() and time.time() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGHUP)

    before = signal.getsignal(signal.SIGHUP)
    threading.Thread(target=hang_up_when_hanging, daemon=True).start()
    assert main(["run", str(path), "--out", str(out), "--store", str(tmp_path / "s.sqlite")]) == 129
    assert "1 of 4 repetitions finished" in capsys.readouterr().err
    [rec] = records_in(out)
    assert (rec.arm, rec.status) == ("baseline", "ok")
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "pid").read_text()), 0)
    assert signal.getsignal(signal.SIGHUP) == before


def test_timeout_is_recorded_as_failed_and_the_suite_goes_on(fake_python, tmp_path, capsys):
    path = suite_file(tmp_path, "name: s\narms: [eitp-coded, baseline]\ntasks: [train, lm]\nrepetitions: 1\ntimeout_s: 5\n")
    out = tmp_path / "out"
    seen = []
    summary = Runner(load_suite(str(path)), out, on_record=[seen.append], progress=False).run()
    recs = {(r.arm, r.task): r for r in records_in(out)}
    assert {k: r.status for k, r in recs.items()} == {
        ("eitp-coded", "train"): "failed", ("eitp-coded", "lm"): "failed",
        ("baseline", "train"): "ok", ("baseline", "lm"): "ok",
    }
    assert "timed out after 5 s" in recs[("eitp-coded", "train")].error
    from eitp_bench.hardware import describe

    # a record the parent made for the worker still names this machine's hardware profile
    assert recs[("eitp-coded", "train")].provenance.hardware_profile_id == describe()["profile_id"] is not None
    assert len(seen) == 4 and summary.finished == 2 and len(summary.failed) == 2


def test_cooldown_waits_between_repetitions_and_is_recorded(fake_python, tmp_path):
    path = suite_file(tmp_path, "name: s\narms: [baseline]\ntasks: [train]\nrepetitions: 3\nmeters: {cooldown_s: 7.5}\n")
    waits = []
    Runner(load_suite(str(path)), tmp_path / "out", progress=False, sleep=waits.append).run()
    assert waits == [7.5, 7.5]  # between repetitions, not before the first
    recs = sorted(records_in(tmp_path / "out"), key=lambda r: r.repetition)
    assert [r.provenance.hardware["cooldown_before_s"] for r in recs] == [0.0, 7.5, 7.5]


def test_no_cooldown_by_default(fake_python, tmp_path):
    path = suite_file(tmp_path, "name: s\narms: [baseline]\ntasks: [train]\nrepetitions: 2\n")
    waits = []
    suite = load_suite(str(path))
    assert suite.meters.cooldown_s == 0
    Runner(suite, tmp_path / "out", progress=False, sleep=waits.append).run()
    assert waits == []


def test_meters_qualify_runs_once_at_the_start_and_reaches_every_repetition(fake_python, tmp_path, monkeypatch):
    import eitp_bench.runner.parent as runner_mod  # where the parent calls it

    calls = []
    stored = {"sensors": [{"meter": "rapl", "device": "cpu:0", "edge_s": 0.002, "windows": True}], "problems": []}
    monkeypatch.setattr(runner_mod, "qualify_in_child", lambda suite: calls.append(suite.meters.qualify) or stored)
    path = suite_file(tmp_path, "name: s\narms: [baseline]\ntasks: [train]\nrepetitions: 3\nmeters: {qualify: true}\n")
    Runner(load_suite(str(path)), tmp_path / "out", progress=False).run()
    assert calls == [True]
    recs = records_in(tmp_path / "out")
    assert len(recs) == 3 and all(r.provenance.hardware["qualification"] == stored for r in recs)
    # the isolation check's "ours" is this runner's whole process tree: every worker is told its pid
    assert {r.provenance.hardware["runner_pid"] for r in recs} == {os.getpid()}


def test_qualification_is_off_by_default(tmp_path):
    from eitp_bench.energy.qualify import qualify_for_suite

    suite = load_suite(str(suite_file(tmp_path, "name: s\narms: [baseline]\ntasks: [train]\n")))
    assert suite.meters.qualify is False and suite.meters.min_window_s == 5.0
    assert qualify_for_suite(suite) is None


# ----------------------------------------------------------------------------- real workers


def test_worker_records_cooldown_and_isolation_in_provenance(tmp_path):
    suite = load_suite("smoke", FAST + ["arms=[baseline]", "tasks=[train]", "debug.crash_arms=[baseline]"])
    [spec] = plan(suite)[:1]
    spec.staging, spec.cooldown_before_s = str(tmp_path), 3.0
    spec.runner_pid = os.getpid()  # this test plays the runner: its process tree is ours
    spec.qualification = {"sensors": [], "runs": [], "problems": ["rapl: none here"]}
    spec_path = tmp_path / "spec.json"
    from dataclasses import asdict

    spec_path.write_text(json.dumps(asdict(spec)))
    assert worker_main(str(spec_path)) == 0
    hw = RunRecord.model_validate_json((tmp_path / "train.json").read_text()).provenance.hardware
    assert hw["cooldown_before_s"] == 3.0
    assert hw["qualification"] == spec.qualification
    iso = hw["isolation"]
    assert set(iso) >= {"gpu_processes", "cpu_busy_processes", "flags"}
    assert all(p["pid"] not in (os.getpid(), os.getppid()) for p in iso["cpu_busy_processes"] or [])
    assert all(f["code"] in ("gpu_shared", "cpu_busy") for f in iso["flags"])
    assert iso["notes"] == []  # a CPU repetition holds no CUDA context: nothing to say about PID namespaces



def test_exception_in_a_task_becomes_a_failed_record(tmp_path):
    suite = load_suite("smoke", FAST + ["arms=[baseline]", "tasks=[train, lm]", "debug.crash_arms=[baseline]"])
    [spec] = plan(suite)[:1]
    spec.staging = str(tmp_path)
    spec_path = tmp_path / "spec.json"
    from dataclasses import asdict

    spec_path.write_text(json.dumps(asdict(spec)))
    assert worker_main(str(spec_path)) == 0
    for task in ("train", "lm"):
        rec = RunRecord.model_validate_json((tmp_path / f"{task}.json").read_text())
        assert rec.status == "failed" and "injected failure of arm baseline" in rec.error
        assert rec.finished_at is not None and rec.provenance.eitp_bench_version


def test_crashing_process_is_recorded_as_failed_and_others_finish(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "smoke", "--out", str(out), "--set", "arms=[eitp-coded, baseline]", "--set", "tasks=[train]",
                 "--set", "repetitions=1", "--set", "debug.crash_arms=[eitp-coded]", "--set", "debug.crash_mode=exit",
                 *sum((["--set", s] for s in FAST), [])])
    assert code == 1
    recs = {r.arm: r for r in records_in(out)}
    assert recs["eitp-coded"].status == "failed"
    assert "worker exited with code 3" in recs["eitp-coded"].error and "injected crash" in recs["eitp-coded"].error
    assert recs["baseline"].status == "ok" and recs["baseline"].metric("step_s") > 0
    assert (out / "logs" / "tiny-r000-eitp-coded.log").exists()
    assert "failed: eitp-coded/train" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["run", "smoke", "--out", str(out), "--set", "repetitions=1", *sum((["--set", s] for s in FAST), [])])
    assert code == 0, capsys.readouterr().err
    recs = records_in(out)
    assert all(r.status == "ok" for r in recs)
    got = {(r.arm, r.task) for r in recs}
    tasks = ("train", "lm", "retrieval", "generate", "compress", "theory", "derivation")
    full = {(a, t) for a in ("baseline", "eitp-paper", "eitp-coded") for t in tasks}
    compressed = {(a, t) for a in ("eitp-compressed", "baseline-int8") for t in ("generate", "compress")}
    assert got == full | compressed
    suite_hash = json.loads((out / "suite.json").read_text())["config_hash"]
    assert {r.suite_config_hash for r in recs} == {suite_hash} and {r.seed for r in recs} == {0}
    by = {(r.arm, r.task): r for r in recs}
    assert by[("baseline", "generate")].metric("tokens_per_s") > 0
    assert by[("baseline-int8", "compress")].metric("compression_ratio") > 1.5  # int8 really shrank it
    assert by[("baseline", "compress")].metric("compression_ratio") == 1.0
    assert by[("eitp-compressed", "generate")].metric("tokens_per_s") > 0  # the shipped artefact, timed
    assert by[("eitp-compressed", "generate")].device == "cpu"
    assert by[("eitp-coded", "train")].metric("forward_passes_per_step") == 3
    assert by[("baseline", "lm")].metric("optimal_ppl") > 1
    assert any(e.window == "train" for e in by[("baseline", "train")].energy)
    assert by[("eitp-paper", "theory")].metric("landauer_reset_j_per_token") > 0
    assert by[("eitp-paper", "train")].metric("e_min_j@bf16") > 0  # beside train joules, for Theorem 3
    assert by[("eitp-paper", "train")].metric("param_entropy_degenerate@fp32") == 1.0
    printed = capsys.readouterr().out
    assert str(out) in printed
    # every record went into the store, and the report over this run was written
    from eitp_bench.store import Store

    with Store.open(os.environ["EITP_BENCH_STORE"], create=False) as store:
        assert store.run_ids() == {r.run_id for r in recs}
    html = (out / "report.html").read_text()
    assert 'id="verdict-table-1"' in html and "Landauer" in html
    assert "This smoke run checks that every stage" in html and ">VERIFIED<" not in html and ">REFUTED<" not in html
    assert "inference-speedup-compressed" in html  # the shipped artefact's speed row


def test_provenance_names_versions_and_survives_outside_git(tmp_path):
    from eitp_bench import __version__
    from eitp_bench.provenance import git_commit, provenance

    prov = provenance(hardware_profile_id="h100-test")
    assert prov.eitp_bench_version == __version__ and prov.hardware_profile_id == "h100-test"
    assert prov.python.count(".") == 2 and prov.torch and prov.transformers and prov.platform
    assert git_commit(tmp_path) is None  # not a checkout: no error, no commit

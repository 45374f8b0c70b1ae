"""meters.qualify runs in a child process: the runner parent never opens a CUDA context for it."""

import json
import os
import sys
import time

from eitp_bench.energy.qualify import qualify_for_suite
from eitp_bench.runner.qualification import qualify_in_child
from eitp_bench.suite import load_suite


def fake_python(tmp_path, body):
    """An interpreter stand-in that runs `body` with argv = [suite.json, out.json, parent pid]."""
    script = tmp_path / "child.py"
    script.write_text("import json, os, sys\nargs = sys.argv[sys.argv.index('eitp_bench.runner.qualification') + 1:]\n"
                      + body)
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def test_no_child_unless_meters_qualify(tmp_path):
    assert qualify_in_child(load_suite("smoke"), python=str(tmp_path / "no-such-python")) is None


def test_the_child_gets_the_suite_and_the_parent_reads_its_result(tmp_path):
    python = fake_python(tmp_path, """
suite = json.loads(open(args[0]).read())
result = {"sensors": [], "runs": [], "problems": [], "child": os.getpid(), "parent": int(args[2]),
          "qualify": suite["meters"]["qualify"], "device": suite["device"]}
open(args[1], "w").write(json.dumps(result))
""")
    got = qualify_in_child(load_suite("smoke", ["meters.qualify=true"]), python=python)
    assert got["parent"] == os.getpid() and got["child"] != os.getpid()  # computed elsewhere, told who we are
    assert (got["qualify"], got["device"]) == (True, "cpu")


def test_a_child_that_fails_is_a_problem_in_the_result_not_a_failed_run(tmp_path):
    python = fake_python(tmp_path, "print('cuInit failed: no CUDA-capable device'); sys.exit(3)\n")
    got = qualify_in_child(load_suite("smoke", ["meters.qualify=true"]), python=python)
    assert got["sensors"] == [] and len(got["problems"]) == 1
    assert "exit code 3" in got["problems"][0] and "cuInit failed" in got["problems"][0]


def test_the_real_child_gives_what_qualify_for_suite_gives_here(tmp_path, monkeypatch):
    """No sensor here (an empty powercap tree, a CPU suite): both say so identically."""
    monkeypatch.setenv("EITP_BENCH_POWERCAP_ROOT", str(tmp_path / "no-powercap"))
    suite = load_suite("smoke", ["meters.qualify=true"])
    got = qualify_in_child(suite)
    assert got == json.loads(json.dumps(qualify_for_suite(suite)))
    assert "uncertainty_formula" in got


def ended(pid: int) -> bool:
    """Ended (a zombie waiting for init to reap it counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def gone(pid: int, patience_s: float = 30.0) -> bool:
    """Ended, or ends soon: SIGKILL is delivered when the kernel next schedules the process, which on a
    loaded two-core CI machine can come after killpg returns. Polls for the event; no timing is asserted."""
    deadline = time.monotonic() + patience_s
    while not ended(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_stuck_child_is_killed_with_the_loads_it_started(tmp_path):
    """A child that hangs (here: forever) is a problem after timeout_s, and its whole process group goes,
    the load it started included."""
    python = fake_python(tmp_path, f"""
import subprocess, time
load = subprocess.Popen(["sleep", "300"])
open({str(tmp_path / "load.pid")!r}, "w").write(str(load.pid))
time.sleep(300)
""")
    got = qualify_in_child(load_suite("smoke", ["meters.qualify=true"]), python=python, timeout_s=5)
    assert got["problems"] == ["the qualification process did not finish within 5 s"]
    assert gone(int((tmp_path / "load.pid").read_text()))

"""`eitp-bench measure` and `doctor` end to end, against a fake powercap tree.

The tree is driven by a simulator thread at known constant watts, and the CLI
runs as a real subprocess with EITP_BENCH_POWERCAP_ROOT pointing at it.
"""

from __future__ import annotations

import json
import signal
import time
import os
import subprocess
import sys

import pytest
from fake_powercap import FakePowercap
from process_checks import GONE_WITHIN_S, alive, wait_for

PKG_W, CORE_W, DRAM_W = 40.0, 25.0, 6.0
SLEEP = [sys.executable, "-c", "import time; time.sleep(0.6)"]


def cli(*args: str, env_root=None, timeout=60):
    env = dict(os.environ)
    if env_root is not None:
        env["EITP_BENCH_POWERCAP_ROOT"] = str(env_root)
    return subprocess.run(
        [sys.executable, "-m", "eitp_bench.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


RANGE_UJ = 400_000_000  # 400 J


@pytest.fixture
def tree(tmp_path):
    # The range is large enough (the meter refuses gaps that could hide a whole range at 1000 W:
    # 0.4 s here) that a stall of a loaded CI machine does not invalidate the window; wraps, fast
    # and repeated, are tested with the poller thread in test_rapl.py.
    fake = FakePowercap(tmp_path / "sys")
    fake.add_package(0, max_range_uj=RANGE_UJ)
    fake.add_mmio_duplicate(0)
    return fake


def test_measure_json_reports_known_watts(tree):
    watts = {"intel-rapl:0": PKG_W, "intel-rapl:0:0": CORE_W, "intel-rapl:0:2": DRAM_W}
    with tree.simulate(watts):
        proc = cli("measure", "--json", "--", *SLEEP, env_root=tree.root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # stdout is exactly one JSON object
    assert out["exit_code"] == 0 and out["command"] == SLEEP
    assert out["duration_s"] >= 0.6
    rows = {(r["device"], r["domain"]): r for r in out["energy"]}
    assert ("cpu:0", "package") in rows and ("cpu:0", "dram") in rows
    assert not any(r["meter"] == "estimate" for r in out["energy"])
    pkg, dram = rows[("cpu:0", "package")], rows[("cpu:0", "dram")]
    assert pkg["method"] == "counter" and pkg["meter"] == "rapl"
    # Real time on a loaded machine: the simulator may lag a few ms behind the wall clock.
    assert pkg["watts"] == pytest.approx(PKG_W, rel=0.05)
    assert dram["watts"] == pytest.approx(DRAM_W, rel=0.05)
    # package already contains core: the total is package + dram, never + core
    assert out["measured_joules"] == pytest.approx(pkg["joules"] + dram["joules"])
    # the total names the caveats of what it sums (none expected here, but whatever they are)
    assert out["measured_joules_flags"] == sorted({f["code"] for r in (pkg, dram) for f in r["flags"]})
    assert out["estimated_joules"] is None
    assert out["covered_domains"] == ["dram", "package"]  # what the total holds (no GPU here)
    # the mmio duplicate of package-0 is dropped: one package channel only
    assert sum(1 for r in out["energy"] if r["domain"] == "package") == 1


def test_measure_idle_gives_net_joules(tmp_path, monkeypatch, capfd):
    """`measure --idle` in-process, on a tree whose counters are exact functions of an injected clock.

    Nothing here depends on how busy the machine is: the meter's clock moves only when the idle
    period sleeps (0.4 s) and when the command is waited for (0.6 s), and every counter read is the
    simulator's exact integral (watts x clock) at that instant.
    """
    from fake_nvml import ManualClock

    import eitp_bench.commands.measure as measure_mod
    import eitp_bench.energy.monitor as monitor_mod
    from eitp_bench.cli import main
    from eitp_bench.energy.rapl import RaplMeter, read_sysfs

    # Intel's 262-kJ range: with no poller thread, reads are a whole window apart (0.6 s)
    tree = FakePowercap(tmp_path / "sys")
    tree.add_package(0)
    tree.add_mmio_duplicate(0)
    range_uj = int((tree.path("intel-rapl:0", "max_energy_range_uj")).read_text())
    clock = ManualClock(1000.0)
    watts = {"intel-rapl:0": PKG_W, "intel-rapl:0:0": CORE_W, "intel-rapl:0:1": 3.0, "intel-rapl:0:2": DRAM_W,
             "intel-rapl-mmio:0": PKG_W}

    def exact_reader(path):
        if path.name == "energy_uj":
            return f"{round(watts[path.parent.name] * clock.t * 1e6) % range_uj}\n"
        return read_sysfs(path)

    def meters(**_):
        return [RaplMeter(tree.root, reader=exact_reader, clock=clock, background=False)], []

    class ClockedPopen(subprocess.Popen):
        def wait(self, timeout=None):
            code = super().wait(timeout)
            if not getattr(self, "_clock_moved", False):
                self._clock_moved = True
                clock.advance(0.6)  # the command ran 0.6 s of meter time
            return code

    monkeypatch.setattr(monitor_mod, "discover_meters", meters)
    # the monitor's own window edges and idle sleep run on the same clock
    monkeypatch.setattr(monitor_mod, "time", type("T", (), {"monotonic": staticmethod(clock),
                                                           "sleep": staticmethod(clock.advance)}))
    monkeypatch.setattr(measure_mod.subprocess, "Popen", ClockedPopen)
    code = main(["measure", "--json", "--idle", "0.4", "--", "true"])
    out = json.loads(capfd.readouterr().out)
    assert code == 0
    idle = {(w["device"], w["domain"]): w["watts"] for w in out["idle"]["watts"]}
    assert out["idle"]["duration_s"] == pytest.approx(0.4, abs=1e-9)
    assert idle[("cpu:0", "package")] == pytest.approx(PKG_W, rel=1e-6)
    assert idle[("cpu:0", "dram")] == pytest.approx(DRAM_W, rel=1e-6)
    pkg = next(r for r in out["energy"] if r["domain"] == "package")
    assert pkg["duration_s"] == pytest.approx(0.6, abs=1e-9)
    assert pkg["joules"] == pytest.approx(PKG_W * 0.6, abs=1e-5)  # the simulator's exact joules
    # constant power: the command drew nothing above idle
    assert pkg["net_joules"] == pytest.approx(0.0, abs=1e-5)
    assert pkg["net_joules"] == pytest.approx(pkg["joules"] - pkg["idle_watts"] * pkg["duration_s"])
    assert out["net_measured_joules"] == pytest.approx(0.0, abs=1e-5)
    assert out["duration_s"] == pytest.approx(0.6, abs=1e-9)


def test_measure_keeps_the_commands_exit_code_and_stdout_clean(tree):
    with tree.simulate({"intel-rapl:0": PKG_W}):
        proc = cli("measure", "--json", "--", "sh", "-c", "echo hello; exit 3", env_root=tree.root)
    assert proc.returncode == 3
    assert json.loads(proc.stdout)["exit_code"] == 3  # 'hello' went to stderr
    assert "hello" in proc.stderr


def test_measure_table_goes_to_stderr(tree):
    with tree.simulate({"intel-rapl:0": PKG_W}):
        proc = cli("measure", "--", "sh", "-c", "echo out", env_root=tree.root)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "out"
    assert "package" in proc.stderr and "counter" in proc.stderr


def test_measure_missing_command_is_127(tree):
    proc = cli("measure", "--", "no-such-command-xyz", env_root=tree.root)
    assert proc.returncode == 127
    assert "command not found: no-such-command-xyz" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["measure"], ["measure", "--bogus", "--", "true"], ["measure", "--interval", "0", "--", "true"]])
def test_measure_bad_usage_is_one_line_and_exit_2(tree, args):
    proc = cli(*args, env_root=tree.root)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].startswith("eitp-bench: error:")


def test_measure_without_sensors_estimates_and_says_so(tmp_path):
    proc = cli("measure", "--json", "--", *SLEEP, env_root=tmp_path / "nothing")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["measured_joules"] is None
    assert all(r["method"] == "estimated" for r in out["energy"])
    assert any(u["meter"] == "rapl" and u["fix"] for u in out["unavailable"])


def test_doctor_lists_fake_rapl_zones(tree):
    proc = cli("doctor", "--json", env_root=tree.root)
    assert proc.returncode == 0, proc.stderr
    meters = json.loads(proc.stdout)["meters"]
    rapl = [m for m in meters if m["meter"] == "rapl" and m["available"]]
    assert {m["domain"] for m in rapl} >= {"package", "core", "uncore", "dram"}
    nvml = [m for m in meters if m["meter"] == "nvml"]
    assert nvml and all(m["reason"] for m in nvml)


def test_doctor_explains_a_missing_tree(tmp_path):
    proc = cli("doctor", "--json", env_root=tmp_path / "nothing")
    assert proc.returncode == 1  # nothing can measure real joules
    out = json.loads(proc.stdout)
    assert out["can_measure"] is False
    rapl = [m for m in out["meters"] if m["meter"] == "rapl"]
    assert rapl and not rapl[0]["available"] and rapl[0]["fix"]


def test_doctor_table(tree):
    proc = cli("doctor", env_root=tree.root)
    assert proc.returncode == 0
    assert "rapl" in proc.stdout and "Real joules can be measured here" in proc.stdout


def test_measure_co2_is_codecarbons_figure_labelled_as_theirs(tmp_path):
    # codecarbon starts in our process and can stall the poller for tens of ms: a 50 J range would
    # (rightly) be flagged invalid, so this tree has a 2 kJ range like a slow-wrapping real counter.
    tree = FakePowercap(tmp_path / "sys")
    tree.add_package(0, max_range_uj=2_000_000_000)
    # dram driven too: a counter that never moves is (rightly) flagged stalled with no joules
    with tree.simulate({"intel-rapl:0": PKG_W, "intel-rapl:0:2": DRAM_W}):
        proc = cli("measure", "--json", "--co2", "FRA", "--", *SLEEP, env_root=tree.root)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    co2 = out["co2"]
    assert co2["country"] == "FRA" and "codecarbon" in co2["source"]
    assert co2["emissions_kg"] >= 0
    # our joules come from our meters, never from codecarbon
    assert out["measured_joules"] == pytest.approx(sum(r["joules"] for r in out["energy"] if r["domain"] in ("package", "dram")))


def test_measure_co2_unknown_country_is_a_clear_error(tree):
    proc = cli("measure", "--co2", "XXX", "--", "true", env_root=tree.root)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "XXX" in proc.stderr


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 128 + 15), (signal.SIGINT, 128 + 2), (signal.SIGHUP, 128 + 1)])
def test_measure_forwards_a_signal_waits_for_the_command_and_still_reports(tree, tmp_path, sig, code):
    started, background = tmp_path / "child.pid", tmp_path / "background.pid"
    env = dict(os.environ, EITP_BENCH_POWERCAP_ROOT=str(tree.root))
    command = ["sh", "-c", f"sleep 60 & echo $! > {background}; "
                           f"echo $$ > {started}.tmp && mv {started}.tmp {started} && exec sleep 60"]
    with tree.simulate({"intel-rapl:0": PKG_W}):
        proc = subprocess.Popen([sys.executable, "-m", "eitp_bench.cli", "measure", "--json", "--", *command],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            for _ in range(600):  # the command is running once it has written its pid (generous: 60 s)
                if started.exists() or proc.poll() is not None:
                    break
                time.sleep(0.1)
            assert started.exists(), proc.stderr.read() if proc.poll() is not None else "child never started"
            child = int(started.read_text())
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    out = json.loads(stdout)  # the report is printed all the same
    assert out["exit_code"] == code and out["command"] == command
    assert out["duration_s"] < 50  # closed when the command ended, not after its 60-s sleep
    assert any(r["domain"] == "package" for r in out["energy"])
    with pytest.raises(ProcessLookupError):  # the command is gone (and reaped)
        os.kill(child, 0)
    # its background child got the signal too (the whole group), and is gone within a second
    wait_for(lambda: not alive(int(background.read_text())), "the background child to die", timeout=GONE_WITHIN_S)


def test_kill_9_of_measure_takes_the_command_and_its_background_children(tree, tmp_path):
    from process_checks import kill_9_and_check_the_tree_dies

    started = tmp_path / "started"
    env = dict(os.environ, EITP_BENCH_POWERCAP_ROOT=str(tree.root))
    command = ["sh", "-c", f"sleep 300 & sleep 300 & touch {started}; exec sleep 300"]
    with tree.simulate({"intel-rapl:0": PKG_W}):
        proc = subprocess.Popen([sys.executable, "-m", "eitp_bench.cli", "measure", "--json", "--", *command],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            wait_for(lambda: started.exists() or proc.poll() is not None, "the command to start", timeout=60)
            assert proc.poll() is None
            kill_9_and_check_the_tree_dies(proc)  # measure, the command, both background sleeps
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)


def test_measure_of_a_file_that_is_not_a_program_is_one_line(tree, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n")
    text.chmod(0o755)
    proc = cli("measure", "--", str(text), env_root=tree.root)
    assert proc.returncode == 126 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("eitp-bench: error: cannot run") and len(proc.stderr.splitlines()) == 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pseudo-terminal and job control")
def test_a_measured_command_can_read_the_terminal(tree, tmp_path):
    """The command leads its own group; at a terminal it is made the foreground job, so reading works."""
    import pty
    import select

    env = dict(os.environ, EITP_BENCH_POWERCAP_ROOT=str(tree.root))
    out = tmp_path / "got"
    reader = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.readline())"
    pid, master = pty.fork()  # the child: a session leader whose controlling terminal is the pty
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-m", "eitp_bench.cli", "measure", "--", sys.executable, "-c",
                                   reader], env)
    try:
        os.write(master, b"hello from the terminal\n")
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if select.select([master], [], [], 0.1)[0]:
                try:
                    os.read(master, 65536)  # drain the report and the echo
                except OSError:
                    pass
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
        assert out.read_text() == "hello from the terminal\n"
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(master)

"""Starting worker processes: forked from a forkserver that has imported torch and transformers once.

Each repetition is still a fresh process (forked from a server that has run no workload, so it
inherits no state of another repetition) but pays no import: about 4.6 s per worker on 2 cores
before. The server imports only libraries; it must never initialise CUDA (a forked child of a CUDA
process cannot use CUDA), so nothing in PRELOAD may touch a device at import.

Workers die with the parent, whatever kills it (eitp_bench/process_tree.py):
- the forkserver's first import (server_guard.py) asks the kernel for SIGKILL when the runner dies
  (`PR_SET_PDEATHSIG`), and exits at once if the runner is already gone: a server still importing
  torch when the runner is killed does not linger, and never forks a worker after the runner died;
- each worker asks for the same when the server dies, then checks that its server is still alive
  and still the runner's child: a worker forked in the instant the runner died exits before it runs;
- each worker leads its own process group, registered with the watchdog, which SIGKILLs the group
  (ranks and whatever else the worker started) and the server when the runner dies; the parent
  stops it with one `killpg`, and a Ctrl-C at the terminal reaches only the parent.

`EITP_BENCH_WORKER_PYTHON=/path/to/python` (or `Runner(python=...)`) starts workers as plain
`python -m eitp_bench.runner --worker SPEC.json` processes instead (debugging, other interpreters).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from eitp_bench.process_tree import die_with_parent, guard_group, guard_pid, parent_of, release

# What the forkserver imports once. Light eitp_bench modules first, then the heavy libraries the
# workloads use (transformers imports its GPT-2 code lazily: name the module to pay for it here).
PRELOAD = [
    "eitp_bench.runner.server_guard",  # first: the server dies with the runner (see its docstring)
    "torch",
    "transformers",
    "transformers.models.gpt2.modeling_gpt2",
    "eitp_bench.runner.worker",
    "eitp_bench.provenance",
    *(f"eitp_bench.energy.{m}" for m in ("monitor", "rapl", "nvml", "estimate")),
    *(f"eitp_bench.hardware.{m}" for m in ("detect", "isolation", "profiles")),
    *(f"eitp_bench.workloads.{m}" for m in ("tasks", "models", "objectives", "generate", "compress", "eitp_paper",
                                            "eitp_coded", "theory_tasks")),
    *(f"eitp_bench.theory.{m}" for m in ("landauer", "param_entropy", "derivation", "floors", "ladder")),
]

STOP_GRACE_S = 5.0


class WorkerProcess:
    """A started worker: its pid, a wait with timeout, and a stop that takes its process group."""

    pid: int

    def wait(self, timeout: float) -> Optional[int]:
        """The exit code once the worker has ended (negative: killed by that signal), else None."""
        code = self._wait(timeout)
        if code is not None and not getattr(self, "_released", False):
            self._released = True
            release(pgid=self.pid)  # its group has ended: the watchdog must not kill a recycled id
        return code

    def _wait(self, timeout: float) -> Optional[int]:
        raise NotImplementedError

    def stop(self) -> None:
        """SIGTERM to the worker's process group, SIGKILL after STOP_GRACE_S; returns once it has gone."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            _signal_group(self.pid, sig)
            if self.wait(STOP_GRACE_S if sig == signal.SIGTERM else 60) is not None:
                return


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:  # not yet its own group leader (just forked), or already gone
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _forked_worker(spec_path: str, log_path: str, server_pid: Optional[int], runner_pid: int, environ: dict) -> None:
    """The worker's first steps in the forked child: die with the server, own group, output to the log."""
    die_with_parent(server_pid)
    if server_pid is not None and sys.platform.startswith("linux") and parent_of(server_pid) != runner_pid:
        os._exit(1)  # the runner died before this fork: a worker of a dead runner must not run
    _let_go_of_the_server()
    os.setpgid(0, 0)
    # the server's environment is the parent's when the server started: give the worker today's
    os.environ.clear()
    os.environ.update(environ)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    from eitp_bench.runner.worker import worker_main

    sys.exit(worker_main(spec_path))


def uses_forkserver(python: Optional[str] = None) -> bool:
    return not (python or os.environ.get("EITP_BENCH_WORKER_PYTHON") or sys.platform == "win32")


def server_running() -> bool:
    from multiprocessing import forkserver

    return getattr(forkserver._forkserver, "_forkserver_pid", None) is not None


_guarded: dict[str, Optional[int]] = {"tracker": None}  # the resource tracker the watchdog knows


def warm_up() -> Optional[int]:
    """Start the forkserver now (it imports PRELOAD in the background while the parent goes on);
    returns its pid. Idempotent: one server per parent process, shared by all its runs."""
    import multiprocessing
    from multiprocessing import forkserver

    from eitp_bench.runner.server_guard import RUNNER_PID_ENV

    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)
    was = getattr(forkserver._forkserver, "_forkserver_pid", None)
    os.environ[RUNNER_PID_ENV] = str(os.getpid())  # read by the server's first import, server_guard.py
    try:
        forkserver.ensure_running()
    finally:
        os.environ.pop(RUNNER_PID_ENV, None)
    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)  # private: used only for checks
    if pid is not None and pid != was:
        if was is not None:
            release(pid=was)  # that server has died: its pid may go to another process
        guard_pid(pid)
        from multiprocessing import resource_tracker

        tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
        if tracker is not None and tracker != _guarded["tracker"]:
            if _guarded["tracker"] is not None:
                release(pid=_guarded["tracker"])
            guard_pid(tracker)
            _guarded["tracker"] = tracker
    return pid


def _let_go_of_the_server() -> None:
    """Close this child's copy of the server's "alive" pipe.

    multiprocessing hands every forked child the write end of the pipe whose EOF tells the server
    that the runner has died; a worker holding it would keep the server (whose death is the worker's
    PDEATHSIG) alive for ever after a SIGKILL of the runner. Workers never start forkserver children.
    """
    from multiprocessing import forkserver

    fd = getattr(forkserver._forkserver, "_forkserver_alive_fd", None)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
        forkserver._forkserver._forkserver_alive_fd = None


class _ForkedWorker(WorkerProcess):
    def __init__(self, spec_path: Path, log_path: Path):
        import multiprocessing

        ctx = multiprocessing.get_context("forkserver")
        server_pid = warm_up()
        self._proc = ctx.Process(target=_forked_worker,
                                 args=(str(spec_path), str(log_path), server_pid, os.getpid(), dict(os.environ)),
                                 name="eitp-bench-worker")
        self._proc.start()
        self.pid = self._proc.pid
        guard_group(self.pid)

    def _wait(self, timeout: float) -> Optional[int]:
        self._proc.join(timeout)
        return self._proc.exitcode


class _SubprocessWorker(WorkerProcess):
    def __init__(self, spec_path: Path, log_path: Path, python: str):
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [python, "-m", "eitp_bench.runner", "--worker", str(spec_path), "--parent-pid", str(os.getpid())],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, process_group=0,
            )
        self.pid = self._proc.pid
        guard_group(self.pid)

    def _wait(self, timeout: float) -> Optional[int]:
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def start_worker(spec_path: Path, log_path: Path, python: Optional[str] = None) -> WorkerProcess:
    """Start one repetition's worker: from the forkserver, or with `python` as a plain subprocess."""
    if uses_forkserver(python):
        return _ForkedWorker(spec_path, log_path)
    return _SubprocessWorker(spec_path, log_path, python or os.environ.get("EITP_BENCH_WORKER_PYTHON") or sys.executable)

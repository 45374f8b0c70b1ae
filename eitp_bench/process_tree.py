"""One process tree, one fate: whatever eitp-bench starts dies when the eitp-bench process dies.

Three mechanisms, because each alone has a hole:
- `PR_SET_PDEATHSIG` (Linux) on every direct child: the kernel SIGKILLs the child when its parent
  dies, by any signal. It does not reach grandchildren, and a child can miss it if the parent died
  between the fork and the prctl, so the child then checks its parent is still the one it expected
  (`die_with_parent`) and exits at once if not: a worker started after its parent died never starts.
- The watchdog: a tiny separate process holding the read end of a pipe from this process. When this
  process ends (even by SIGKILL: the kernel closes the pipe), the watchdog reads EOF and SIGKILLs
  every process group and pid registered with it (`guard_group`, `guard_pid`): workers and whatever
  they started in their group, the forkserver, qualification loads, a measured command and its
  background children. It lives in its own session, so a Ctrl-C at the terminal does not reach it.
- `PR_SET_CHILD_SUBREAPER` on the eitp-bench process (`own_the_tree`, called by the `eitp-bench`
  program, not by library use): orphaned grandchildren (a measured shell script's background jobs
  once the script exits) are re-parented to us instead of init, so at exit we still find them under
  us (in /proc) and kill them.

Process groups that ended are released from the watchdog (`release`), so a recycled id is never hit.
Everything here is a no-op where the mechanism does not exist (macOS, Windows).
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Optional

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
LINUX = sys.platform.startswith("linux")

# The watchdog's whole program: collect ids until EOF, then kill them all. No eitp_bench import (fast start).
_WATCHDOG = r"""
import os, signal, sys
groups, pids = set(), set()
for line in sys.stdin:
    op, kind, n = line.split()
    target = groups if kind == "g" else pids
    (target.add if op == "+" else target.discard)(int(n))
for kill, ids in ((os.killpg, groups), (os.kill, pids)):
    for n in ids:
        try:
            kill(n, signal.SIGKILL)
        except OSError:
            pass
"""


_PRCTL = []  # libc's prctl, resolved once (never inside a forked child: no import, no dlopen there)


def _libc_prctl():
    if not _PRCTL:
        prctl = None
        if LINUX:
            import ctypes

            try:
                prctl = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):
                pass
        _PRCTL.append(prctl)
    return _PRCTL[0]


def _prctl(option: int, value: int) -> bool:
    prctl = _libc_prctl()
    return prctl is not None and prctl(option, value, 0, 0, 0) == 0


def die_with_parent(parent_pid: Optional[int]) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies; exit now if it already has.

    Call first thing in a child. `parent_pid` is the pid the child expects as its parent (None: the
    caller does not know it, then only the prctl applies)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # the parent may have died between the fork and the prctl: then nobody will signal us
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)


def child_setup() -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the child dies with this process. (Give Popen
    `process_group=0` too, so one killpg takes the child and what it starts.) Everything is resolved
    here, in the parent: the child, forked from a process with threads, runs no import and no dlopen."""
    parent = os.getpid()
    prctl = _libc_prctl()
    getppid, exit_now = os.getppid, os._exit

    def setup() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if getppid() != parent:  # the parent died between the fork and the prctl
            exit_now(1)

    return setup


def parent_of(pid: int) -> Optional[int]:
    """`pid`'s parent from /proc (None when gone or not Linux)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, from /proc (empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [e for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return []
    for name in entries:
        ppid = parent_of(int(name))
        if ppid is not None:
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class _Watchdog:
    def __init__(self):
        self._lock = threading.Lock()
        self._proc: Optional[subprocess.Popen] = None

    def _send(self, line: str) -> None:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                try:
                    self._proc = subprocess.Popen([sys.executable, "-I", "-c", _WATCHDOG], stdin=subprocess.PIPE,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                  start_new_session=True, text=True)
                except OSError:
                    return  # no watchdog: PDEATHSIG and the exit-time kill still apply
            if not line:
                return
            try:
                self._proc.stdin.write(line + "\n")
                self._proc.stdin.flush()
            except (OSError, ValueError):
                pass

    def close(self) -> None:
        """Tell the watchdog to kill what is still registered now (this process is ending)."""
        with self._lock:
            if self._proc is not None and self._proc.poll() is None:
                try:
                    self._proc.stdin.close()
                    self._proc.wait(5)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._proc = None


_watchdog = _Watchdog()


def start_watchdog() -> None:
    """Start the watchdog now (a Python start, tens of ms), e.g. before a measured window opens."""
    if LINUX:
        _watchdog._send("")


def guard_group(pgid: int) -> None:
    """Kill process group `pgid` when this process dies, however it dies."""
    if LINUX:
        _watchdog._send(f"+ g {pgid}")


def guard_pid(pid: int) -> None:
    """Kill `pid` when this process dies, however it dies."""
    if LINUX:
        _watchdog._send(f"+ p {pid}")


def release(pgid: Optional[int] = None, pid: Optional[int] = None) -> None:
    """Forget an ended group or process (its id may be given to another one)."""
    if LINUX:
        if pgid is not None:
            _watchdog._send(f"- g {pgid}")
        if pid is not None:
            _watchdog._send(f"- p {pid}")


def kill_descendants() -> None:
    """SIGKILL every process below this one (and the groups the children lead)."""
    for pid in descendants(os.getpid()):
        if pid == getattr(_watchdog._proc, "pid", None):
            continue
        for kill, n in ((os.killpg, pid), (os.kill, pid)):
            try:
                if kill is os.killpg and os.getpgid(pid) != pid:
                    continue  # not a group leader: never kill a group we do not own
                kill(n, signal.SIGKILL)
            except OSError:
                pass


def own_the_tree() -> None:
    """For the `eitp-bench` program itself: become a subreaper, and at exit kill what is left below."""
    _prctl(PR_SET_CHILD_SUBREAPER, 1)

    def at_exit() -> None:
        _watchdog.close()
        kill_descendants()

    atexit.register(at_exit)

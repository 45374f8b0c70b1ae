"""What the process-tree tests look at: a process's tree by pid and process group, from /proc."""

import os
import signal
import subprocess
import time
from pathlib import Path

def descendants(pid: int) -> set[int]:
    """Every process below `pid` (forkserver, workers, resource tracker, watchdog), from /proc."""
    from eitp_bench.process_tree import descendants as below

    return set(below(pid))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"  # a zombie has died; only its exit status waits to be collected


GONE_WITHIN_S = 1.0  # the promise: nothing of the tree is alive one second after the parent's SIGKILL


def group_of(pid: int):
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def tree_of(pid: int) -> tuple[set[int], set[int]]:
    """The pids below `pid` and the process groups of `pid` and of those processes."""
    below = descendants(pid)
    return below, {g for g in map(group_of, below | {pid}) if g is not None}


def survivors(pids: set[int], groups: set[int]) -> list[str]:
    """Live processes among `pids`, or anywhere in /proc in one of `groups` (what a pid check misses)."""
    live = {p for p in pids if alive(p)}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and group_of(int(entry.name)) in groups and alive(int(entry.name)):
            live.add(int(entry.name))
    return [f"{p} {Path(f'/proc/{p}/cmdline').read_bytes().replace(bytes(1), b' ')[:80]!r}" for p in sorted(live)
            if Path(f"/proc/{p}").exists()]


def signal_and_check_the_tree_dies(proc: subprocess.Popen, sig: int) -> int:
    """Send `sig`, wait for `proc` to exit, then find its whole tree gone within GONE_WITHIN_S; its exit code."""
    pids, groups = tree_of(proc.pid)
    assert pids, "nothing runs below the parent yet: the test would prove nothing"
    os.kill(proc.pid, sig)
    code = proc.wait(timeout=120)
    ended_at = time.monotonic()
    left = survivors(pids, groups)
    while left and time.monotonic() - ended_at < GONE_WITHIN_S:
        time.sleep(0.01)
        left = survivors(pids, groups)
    assert not left, f"alive {time.monotonic() - ended_at:.2f} s after the parent exited: {left}"
    return code


def kill_9_and_check_the_tree_dies(proc: subprocess.Popen) -> None:
    """SIGKILL `proc` and, polling (a bounded loop, no fixed sleep), find its whole tree gone in time."""
    signal_and_check_the_tree_dies(proc, signal.SIGKILL)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(bytes(1), b" ").decode(errors="replace")
    except OSError:
        return ""




def wait_for(predicate, what: str, timeout: float = 120):
    """Poll `predicate` (a bounded loop) until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")

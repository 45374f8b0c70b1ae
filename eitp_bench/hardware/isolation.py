"""Isolation check at the start of a repetition: is anything else using the measured GPUs or the CPU?

Neither check changes a figure; both go into `provenance.hardware["isolation"]` with coded flags
(`gpu_shared`, `cpu_busy`) so a reader can tell a quiet machine from a shared one.

"Ours" is the runner's whole process tree: the runner (`runner_pid`), its forkserver, the worker, the
ranks and their launcher, and anything they started (`own_processes`, from /proc's parent links), plus
any `exclude_pids` given.
- GPUs: NVML's compute processes on each measured GPU (`NvmlMeter.compute_processes`), ours left out.
  NVML names processes by their pid in the *host's* PID namespace; in a container with a namespace of its
  own those pids mean nothing here. So when this process holds a CUDA context (`holds_cuda_context`), it
  must appear among NVML's processes: if NVML lists processes but none of ours, the pids are from another
  namespace, and the check says it cannot run (`gpu_processes` None, a note in `notes`) instead of
  calling our own process "another". `None` also for a GPU where NVML cannot say (not supported,
  permission, fault).
- CPU: every process's CPU time from `/proc/<pid>/stat`, read twice `interval_s` apart; a process
  not ours (nor a child of ours) that used more than `CPU_BUSY_CORES` of a core in between is listed.
  `None` where /proc is not there (not Linux).
Never raises: a check that cannot run records `None` and no flag.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from eitp_bench.flags import flag

CPU_BUSY_CORES = 0.5  # a process above half a core competes with the measured code for the CPU
CPU_INTERVAL_S = 0.25  # between the two /proc reads: long enough for 100 Hz clock ticks to resolve 4 %


def _own_pids() -> set[int]:
    return {os.getpid(), os.getppid()}


def _read_stat(proc: Path) -> dict[int, tuple[str, int, int]]:
    """{pid: (command, ppid, utime + stime in clock ticks)} for every readable process."""
    out: dict[int, tuple[str, int, int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
            comm = text[text.index("(") + 1 : text.rindex(")")]
            rest = text[text.rindex(")") + 2 :].split()
            # rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15
            out[int(entry.name)] = (comm, int(rest[1]), int(rest[11]) + int(rest[12]))
        except (OSError, ValueError, IndexError):  # gone between listing and reading, or unreadable
            continue
    return out


def busy_cpu_processes(
    proc_root: str | Path = "/proc",
    interval_s: float = CPU_INTERVAL_S,
    threshold_cores: float = CPU_BUSY_CORES,
    exclude_pids: Optional[set[int]] = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    ticks_per_s: Optional[float] = None,
) -> Optional[list[dict[str, Any]]]:
    """Processes other than ours that used more than `threshold_cores` of a core over `interval_s`;
    None when /proc cannot be read."""
    proc = Path(proc_root)
    try:
        if ticks_per_s is None:
            ticks_per_s = float(os.sysconf("SC_CLK_TCK"))
        t0, before = clock(), _read_stat(proc)
        sleep(interval_s)
        t1, after = clock(), _read_stat(proc)
    except (OSError, ValueError, AttributeError):
        return None
    if not before:
        return None
    elapsed = max(t1 - t0, interval_s, 1e-6)
    ours = _own_pids() if exclude_pids is None else set(exclude_pids)
    busy = []
    for pid, (comm, ppid, ticks) in sorted(after.items()):
        if pid in ours or ppid in ours or pid not in before:
            continue
        cores = (ticks - before[pid][2]) / ticks_per_s / elapsed
        if cores > threshold_cores:
            busy.append({"pid": pid, "command": comm, "cpu_cores": round(cores, 2)})
    return busy


def own_processes(roots: Iterable[int], proc_root: str | Path = "/proc") -> set[int]:
    """This process, its parent, `roots` and every descendant of them (from /proc's parent links)."""
    ours = {os.getpid(), os.getppid(), *roots}
    try:
        stats = _read_stat(Path(proc_root))
    except OSError:
        return ours
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    todo = list(ours)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in ours:
                ours.add(child)
                todo.append(child)
    return ours


def gpu_check(listed: Optional[dict[str, Optional[list[dict[str, Any]]]]], ours: set[int],
              holds_cuda_context: bool) -> tuple[Optional[dict[str, Optional[list[dict[str, Any]]]]], list[str]]:
    """(other processes per GPU, notes) from NVML's compute processes on each GPU (`listed`, ours included).

    With a CUDA context of ours open, NVML must list one of our pids if its pids are ours to compare: if it
    lists processes and none of ours, they come from another PID namespace (a container); if it lists none
    at all, it hides them. Either way the check cannot run: (None, [the reason]), never a gpu_shared flag."""
    if listed is None:
        return None, []
    pids = sorted({p["pid"] for procs in listed.values() if procs for p in procs})
    readable = any(procs is not None for procs in listed.values())
    if holds_cuda_context and readable and not set(pids) & ours:
        if pids:
            why = (f"NVML reports PIDs of another PID namespace (it lists pid {', '.join(map(str, pids[:8]))}"
                   f"{' …' if len(pids) > 8 else ''} but not this process, which holds a CUDA context): "
                   "this run's processes cannot be told from others (a container without --pid=host)")
        else:
            why = ("NVML lists no compute process although this process holds a CUDA context: the driver or "
                   "the container hides them")
        return None, [f"the GPU check cannot run: {why}"]
    return {device: None if procs is None else [p for p in procs if p["pid"] not in ours]
            for device, procs in listed.items()}, []


def isolation_check(nvml_meter: Any = None, exclude_pids: Optional[set[int]] = None, *,
                    runner_pid: Optional[int] = None, holds_cuda_context: bool = False,
                    **cpu_kw: Any) -> dict[str, Any]:
    """{gpu_processes, cpu_busy_processes, flags, notes} for provenance; flags as {code, message} dicts.

    runner_pid: the runner whose process tree is ours (default: this process's parent's tree).
    exclude_pids: more processes of this very repetition (the other ranks of a torchrun launch).
    holds_cuda_context: this process has a CUDA context open, so NVML should list it (see gpu_check)."""
    flags, notes = [], []
    roots = {runner_pid} if runner_pid else set()
    ours = own_processes(roots | set(exclude_pids or ()), cpu_kw.get("proc_root", "/proc"))
    cpu_kw.setdefault("exclude_pids", ours)
    gpu: Optional[dict[str, Any]] = None
    if nvml_meter is not None:
        try:
            listed = nvml_meter.compute_processes(exclude_pids=())
        except Exception:  # a meter without the call or a binding fault: unknown, never a traceback
            listed = None
        gpu, notes = gpu_check(listed, ours, holds_cuda_context)
        for device, procs in sorted((gpu or {}).items()):
            if procs:
                pids = ", ".join(str(p["pid"]) for p in procs)
                flags.append(flag("gpu_shared", f"{len(procs)} other compute process(es) on {device} at the start "
                                                f"of the repetition (pid {pids})"))
    try:
        cpu = busy_cpu_processes(**cpu_kw)
    except Exception:
        cpu = None
    if cpu:
        listed_cpu = ", ".join(f"{p['command']} (pid {p['pid']}, {p['cpu_cores']:.2f} cores)" for p in cpu[:5])
        more = f" and {len(cpu) - 5} more" if len(cpu) > 5 else ""
        flags.append(flag("cpu_busy", f"{len(cpu)} other process(es) above {CPU_BUSY_CORES:g} of a core at the "
                                      f"start of the repetition: {listed_cpu}{more}"))
    return {"gpu_processes": gpu, "cpu_busy_processes": cpu, "flags": [f.model_dump() for f in flags], "notes": notes}

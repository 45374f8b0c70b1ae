"""Isolation check at the start of a repetition: is anything else using the measured GPUs or the CPU?

Neither check changes a figure; both go into `provenance.hardware["isolation"]` with coded flags
(`gpu_shared`, `cpu_busy`) so a reader can tell a quiet machine from a shared one.

- GPUs: NVML's compute processes on each measured GPU (`NvmlMeter.compute_processes`), our own
  process excluded. `None` for a GPU where NVML cannot say (not supported, permission, fault).
- CPU: every process's CPU time from `/proc/<pid>/stat`, read twice `interval_s` apart; a process
  other than ours (this pid, its parent the runner, and its children) that used more than
  `CPU_BUSY_CORES` of a core in between is listed. `None` where /proc is not there (not Linux).
Never raises: a check that cannot run records `None` and no flag.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Optional

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


def isolation_check(nvml_meter: Any = None, exclude_pids: Optional[set[int]] = None, **cpu_kw: Any) -> dict[str, Any]:
    """{gpu_processes, cpu_busy_processes, flags} for provenance; flags as {code, message} dicts.
    `exclude_pids`: processes of this very repetition besides ours (the other ranks of a torchrun launch)."""
    flags = []
    gpu: Optional[dict[str, Any]] = None
    if exclude_pids:
        cpu_kw.setdefault("exclude_pids", _own_pids() | set(exclude_pids))
    if nvml_meter is not None:
        try:
            gpu = nvml_meter.compute_processes(exclude_pids={os.getpid(), *(exclude_pids or ())})
        except Exception:  # a meter without the call or a binding fault: unknown, never a traceback
            gpu = None
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
        listed = ", ".join(f"{p['command']} (pid {p['pid']}, {p['cpu_cores']:.2f} cores)" for p in cpu[:5])
        more = f" and {len(cpu) - 5} more" if len(cpu) > 5 else ""
        flags.append(flag("cpu_busy", f"{len(cpu)} other process(es) above {CPU_BUSY_CORES:g} of a core at the "
                                      f"start of the repetition: {listed}{more}"))
    return {"gpu_processes": gpu, "cpu_busy_processes": cpu, "flags": [f.model_dump() for f in flags]}

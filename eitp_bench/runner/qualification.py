"""meters.qualify in a child process: the runner parent never opens a CUDA context.

The qualification's GPU load (energy/qualify.GpuMatmulLoad) initialises CUDA. Run in the parent, that
context (hundreds of MiB on the GPU, and a process NVML lists) would stay for the whole suite: on the GPU
the repetitions measure, beside every window, under the isolation check. So the parent starts
`python -m eitp_bench.runner.qualification SUITE.json OUT.json PARENT_PID`, which qualifies, writes the
result and exits, taking its context and loads with it; the parent reads the result. The child leads
its own process group, which the parent kills on a timeout or a stop (its CPU spinners with it), and
it dies with the parent (`die_with_parent`); a child that fails or hangs becomes a problem in the
result, never a failed run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

QUALIFY_TIMEOUT_S = 600.0  # the whole square-wave plan takes ~15 s; a child still there after this is stuck
TAIL_LINES = 8


def qualify_in_child(suite: Any, *, python: Optional[str] = None,
                     timeout_s: float = QUALIFY_TIMEOUT_S) -> Optional[dict[str, Any]]:
    """`energy.qualify.qualify_for_suite(suite)`, computed in a child process; None unless meters.qualify."""
    if not suite.meters.qualify:
        return None
    with tempfile.TemporaryDirectory(prefix="eitp-qualify-") as folder:
        suite_path, out_path = Path(folder) / "suite.json", Path(folder) / "qualification.json"
        suite_path.write_text(json.dumps(suite.model_dump(mode="json")), encoding="utf-8")
        command = [python or sys.executable, "-m", "eitp_bench.runner.qualification", str(suite_path), str(out_path),
                   str(os.getpid())]
        try:  # its own process group: a stop takes the loads it started with it
            child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, errors="replace", process_group=0)
        except OSError as err:
            return _failed(f"the qualification process could not start ({err})")
        try:
            output, _ = child.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            return _failed(f"the qualification process did not finish within {timeout_s:g} s")
        except BaseException:  # the runner is stopping (Ctrl-C, SIGTERM): no load may outlive it
            _kill_group(child)
            raise
        _kill_group(child)  # a load its qualification failed to close must not outlive it either
        try:
            return json.loads(out_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = "\n".join((output or "").strip().splitlines()[-TAIL_LINES:])
            return _failed(f"the qualification process ended with exit code {child.returncode} and no result"
                           + (f": {tail}" if tail else ""))


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    child.wait()


def _failed(problem: str) -> dict[str, Any]:
    """What qualify_here returns when nothing could be qualified, with the reason."""
    return {"sensors": [], "runs": [], "problems": [problem]}


def main(argv: list[str]) -> int:
    from eitp_bench.energy.qualify import qualify_for_suite
    from eitp_bench.runner.forkserver import die_with_parent
    from eitp_bench.runner.staging import write_json_atomic
    from eitp_bench.suite import Suite

    suite_path, out_path, parent_pid = argv
    die_with_parent(int(parent_pid))
    suite = Suite.model_validate(json.loads(Path(suite_path).read_text(encoding="utf-8")))
    write_json_atomic(Path(out_path), json.dumps(qualify_for_suite(suite)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

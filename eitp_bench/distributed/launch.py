"""Start one repetition's ranks through torch's elastic launcher (what `torchrun` runs), and wait.

Every repetition is a fresh launch, with max_restarts=0: a restarted rank would re-run work inside
windows already opened, so a failure fails the repetition instead. The static rendezvous puts global
rank 0 on node_rank 0 (the machine whose runner collects the records); on one machine it meets on a free
local port. Each rank's output goes to <staging>/ranks/; when a rank fails, every rank's log is copied into
this process's output (kept as <out>/logs/<repetition>.log) and the tail of the failing rank's log is the
last thing printed, so it lands in the failed records' error (runner.ERROR_TAIL_LINES).
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Optional

from eitp_bench.distributed.placement import rank_environment

RANK_LOG_TAIL_LINES = 15  # leaves room under runner.ERROR_TAIL_LINES for the heading
KEPT_LOG_LINES = 200  # of each rank's log, in the worker log the runner keeps under <out>/logs/


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def rendezvous_id(config_hash: str, label: str) -> str:
    """The same on every machine of one run (plans are deterministic), different per repetition."""
    return f"eitp-{config_hash[:12]}-{label}"


def rank_log(log_dir: Path, local_rank: int, stream: str = "stderr") -> Optional[Path]:
    """The log file torch's launcher wrote for a local rank (<log_dir>/<run>/attempt_0/<rank>/stderr.log)."""
    hits = sorted(log_dir.glob(f"**/attempt_*/{local_rank}/{stream}.log"))
    return hits[-1] if hits else None


def tail(path: Optional[Path], lines: int) -> str:
    if path is None:
        return "(no log)"
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as err:
        return f"(log unreadable: {err})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def launch_ranks(spec_path: str, launcher, staging: Path, run_id: str) -> int:
    """Launch launcher.nproc_per_node ranks here (this machine's share of the world); 0 when all succeed."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    threads = rank_environment(os.environ, launcher.nproc_per_node)  # as torchrun does; the ranks inherit it
    if threads:
        print(f"setting {', '.join(f'{k}={v}' for k, v in threads.items())} for {launcher.nproc_per_node} ranks "
              "on this machine (as torchrun does; set it yourself to choose)", flush=True)
        os.environ.update(threads)
    log_dir = Path(staging) / "ranks"
    log_dir.mkdir(parents=True, exist_ok=True)
    endpoint = launcher.rdzv_endpoint or f"localhost:{free_port()}"
    config = LaunchConfig(
        min_nodes=launcher.nnodes, max_nodes=launcher.nnodes, nproc_per_node=launcher.nproc_per_node,
        run_id=run_id, rdzv_backend="static", rdzv_endpoint=endpoint,
        rdzv_configs={"rank": launcher.node_rank, "timeout": int(launcher.join_timeout_s)},
        max_restarts=0,  # a restart would re-run measured work: fail the repetition instead
        monitor_interval=0.1,
        logs_specs=DefaultLogsSpecs(log_dir=str(log_dir), redirects=Std.ALL),
    )
    args = ("-u", "-m", "eitp_bench.runner", "--rank-worker", str(spec_path))
    print(f"launching {launcher.nproc_per_node} rank(s) on node {launcher.node_rank} of {launcher.nnodes} "
          f"(rendezvous {endpoint}, id {run_id})", flush=True)
    os.environ["EITP_BENCH_RANK_PARENT_PID"] = str(os.getpid())  # each rank exits if this process is gone
    try:
        elastic_launch(config, sys.executable)(*args)
    except ChildFailedError as err:
        for local_rank in range(launcher.nproc_per_node):  # every rank's log, kept with the worker's
            print(f"--- local rank {local_rank} on node {launcher.node_rank}: stderr ---", file=sys.stderr)
            print(tail(rank_log(log_dir, local_rank), KEPT_LOG_LINES), file=sys.stderr)
        rank, failure = err.get_first_failure()
        local = getattr(failure, "local_rank", rank)
        print(f"rank {rank} (local rank {local} on node {launcher.node_rank}) failed with exit code "
              f"{failure.exitcode}; the end of its log:", file=sys.stderr)
        print(tail(rank_log(log_dir, local), RANK_LOG_TAIL_LINES), file=sys.stderr, flush=True)
        return 1
    return 0

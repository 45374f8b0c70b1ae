"""`python -m eitp_bench.runner --worker SPEC.json [--parent-pid PID]`: one repetition as a plain process;
`--rank-worker SPEC.json`: one rank of a multi-rank repetition, started by torch's elastic launcher."""

import os
import sys

from eitp_bench.process_tree import die_with_parent
from eitp_bench.runner.worker import worker_main

args = sys.argv[1:]
if len(args) in (2, 4) and args[0] == "--worker" and (len(args) == 2 or args[2] == "--parent-pid"):
    if len(args) == 4:
        die_with_parent(int(args[3]))
    sys.exit(worker_main(args[1]))
if len(args) == 2 and args[0] == "--rank-worker":
    # a rank ends with the launcher that started it (the repetition's worker, which names itself)
    parent = os.environ.get("EITP_BENCH_RANK_PARENT_PID", "")
    die_with_parent(int(parent) if parent.isdigit() else None)
    sys.exit(worker_main(args[1], as_rank=True))
print("usage: python -m eitp_bench.runner --worker SPEC.json [--parent-pid PID] | --rank-worker SPEC.json", file=sys.stderr)
sys.exit(2)

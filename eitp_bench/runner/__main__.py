"""`python -m eitp_bench.runner --worker SPEC.json [--parent-pid PID]`: one repetition as a plain process."""

import sys

from eitp_bench.runner.forkserver import die_with_parent
from eitp_bench.runner.worker import worker_main

args = sys.argv[1:]
if len(args) in (2, 4) and args[0] == "--worker" and (len(args) == 2 or args[2] == "--parent-pid"):
    if len(args) == 4:
        die_with_parent(int(args[3]))
    sys.exit(worker_main(args[1]))
print("usage: python -m eitp_bench.runner --worker SPEC.json [--parent-pid PID]", file=sys.stderr)
sys.exit(2)

"""The forkserver's first import (forkserver.PRELOAD): the server dies with the runner that started it.

multiprocessing's forkserver exits when the runner's "alive" pipe closes, but only once it is back in
its loop: while it imports torch (seconds) a killed runner leaves it running, and a fork request the
runner sent just before dying is still served. So, before any other import, the server asks the
kernel for SIGKILL when the runner dies (`PR_SET_PDEATHSIG`) and exits at once if the runner is
already gone. The runner names itself in RUNNER_PID_ENV while it starts the server; in any other
process this import does nothing. (The kernel ties PDEATHSIG to the *thread* that started the server:
a server started from a thread that ends is killed then, and multiprocessing starts a new one on the
next use.)
"""

import os

from eitp_bench.process_tree import die_with_parent

RUNNER_PID_ENV = "EITP_BENCH_FORKSERVER_RUNNER_PID"

_runner = os.environ.pop(RUNNER_PID_ENV, "")
if _runner.isdigit() and int(_runner) != os.getpid():
    die_with_parent(int(_runner))

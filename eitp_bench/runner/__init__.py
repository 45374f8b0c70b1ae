"""The runner, split by role as pyperf does (see DEVELOPERS.md, "Runner"):

- plan.py: which repetitions, in which order, and what each worker is told (RepetitionSpec);
- parent.py: scheduling, timeouts, signals, publishing each repetition to the store and results folder;
- worker.py: one repetition inside its own fresh process (`worker_main`, body `run_repetition`);
- forkserver.py: starting workers from a server that has imported torch once; workers die with the parent;
- staging.py, recovery.py, progress.py: the staging folder, coming back to a folder, what every command
  shows while it works (the one progress module);
- preflight.py: everything checked before any work (`check_suite_before_work`: the suite, its files,
  what this machine lacks);
- calibrate.py: quality targets from baseline pilot runs (`eitp-bench calibrate`).

May import: suite, workloads, energy, distributed, hardware, store (it hands each repetition's records
to the store) and the shared vocabulary. Never analysis, report or commands.

Protocol: a repetition is one fresh Python process running one arm through every task of the
suite (so nothing is carried over between samples); arms are interleaved within each repetition
round in an order shuffled by the round's seed (recorded as `round_position`), so no arm always runs
first on a cold machine or last on a hot one; every arm gets the same seed in a round.
"""

from eitp_bench.runner.parent import Runner, RunInterrupted, RunSummary
from eitp_bench.runner.plan import RepetitionSpec, default_out_dir, plan, round_order
from eitp_bench.runner.staging import write_json_atomic
from eitp_bench.runner.worker import run_repetition, worker_main

__all__ = ["Runner", "RunInterrupted", "RunSummary", "RepetitionSpec", "default_out_dir", "plan", "round_order",
           "write_json_atomic", "run_repetition", "worker_main"]

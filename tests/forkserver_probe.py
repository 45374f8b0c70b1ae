"""Runs inside a forkserver child (tests/runner/test_runner_crash.py): reports what the child inherited."""

import os
import sys


def report(queue) -> None:
    preloaded = "transformers.models.gpt2.modeling_gpt2" in sys.modules  # before this child imports anything
    import torch

    queue.put({"pid": os.getpid(), "ppid": os.getppid(), "preloaded": preloaded,
               "cuda_initialized": torch.cuda.is_initialized(), "bad_fork": torch.cuda._is_in_bad_fork()})

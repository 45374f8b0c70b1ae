"""Training step time of every trained arm ÷ the baseline's, on CPU, on the tiny model.

    python benchmarks/step_time.py [--steps 40] [--warmup 5] [--size tiny] [--vocab 32] [--block 32]
                                   [--batch 8] [--threads 1] [--arms baseline,eitp-paper,...] [--clock cpu|wall]

Times are this thread's CPU time by default (`--clock wall` for perf_counter): with one torch thread
that is the step's own work, which other processes on a shared machine cannot stretch.

One AdamW step as the training loop takes it (objective.loss, zero_grad, backward, optimizer.step),
for each arm on its own copy of the same seeded model and the same batches. The arms take their steps
in turn (round robin), so a shared, noisy machine slows every arm alike; only ratios measured in one
run are comparable. Prints each arm's median step time and its ratio to the baseline's median.
The smoke suite's shapes are the defaults (vocab 32, 32-token blocks, batch 8, one thread).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from eitp_bench.workloads.models import build_model
from eitp_bench.workloads.objectives import ARMS, make_objective


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40, help="timed steps per arm")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per arm first")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--vocab", type=int, default=32)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this thread's CPU time (steady on a shared machine, = wall when idle at 1 thread); "
                        "wall: perf_counter")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    arms = args.arms.split(",")
    if "baseline" not in arms:
        arms.insert(0, "baseline")

    g = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, args.vocab, (args.batch, args.block), generator=g) for _ in range(8)]
    runs = {}
    for arm in arms:
        model = build_model(args.size, vocab_size=args.vocab, n_positions=args.block, seed=0).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        runs[arm] = (model, optimizer, make_objective(arm), [])

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    def step(arm: str, i: int) -> float:
        model, optimizer, objective, _ = runs[arm]
        ids = batches[i % len(batches)]
        t0 = clock()
        loss, _ = objective.loss(model, ids, ids, step=i, epoch=0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return clock() - t0

    for i in range(args.warmup + args.steps):
        for arm in arms:
            dt = step(arm, i)
            if i >= args.warmup:
                runs[arm][3].append(dt)

    base = statistics.median(runs["baseline"][3])
    print(f"size={args.size} vocab={args.vocab} block={args.block} batch={args.batch} threads={args.threads} "
          f"steps={args.steps} clock={args.clock} (load average {os.getloadavg()[0]:.1f})")
    print(f"{'arm':24s} {'median ms':>10s} {'÷ baseline':>11s}")
    for arm in arms:
        median = statistics.median(runs[arm][3])
        print(f"{arm:24s} {median * 1e3:10.2f} {median / base:10.2f}×")


if __name__ == "__main__":
    main()

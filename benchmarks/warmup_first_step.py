"""What does the first timed training step cost, with and without untimed warm-up steps?

The first steps of a process pay one-time costs (kernels loaded, allocator blocks, optimizer state,
on a GPU cuBLAS handles and CUDA's lazy module loading) that are no part of an arm's training cost.
`train.warmup_untimed_steps` runs that many steps before the first window and undoes them. This prints,
for each setting, the first timed step's seconds ÷ the median step's, and the warm-up's own seconds.
Each setting runs in a fresh process (a warm-up in one process would warm the next setting too).

    python benchmarks/warmup_first_step.py                      # tiny model, CPU
    python benchmarks/warmup_first_step.py --size small --device cuda --steps 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = """
import json, sys, torch
from eitp_bench.workloads.data import LMData, MarkovCorpus, as_tensors
from eitp_bench.workloads.models import build_model
from eitp_bench.workloads.objectives import make_objective
from eitp_bench.workloads.train import OptimSettings, train
size, device, steps, warmup, threads, arm = sys.argv[1:7]
torch.set_num_threads(int(threads))
corpus = MarkovCorpus(256, seed=0, concentration=0.05)
data = LMData(corpus.sample(200_000, 1), corpus.sample(4_096, 2), 256, 128, None, None)
torch.manual_seed(0)
model = build_model(size, vocab_size=256, n_positions=128, seed=0)
batches = (as_tensors(b, device) for b in data.train_batches(8, seed=0))
r = train(model, make_objective(arm), batches, steps=int(steps), settings=OptimSettings(1e-3), device=device,
          evaluate=lambda m: 0.0, eval_every=int(steps), tokens_per_step=8 * 128, steps_per_epoch=100.0,
          warmup_untimed_steps=int(warmup))
print(json.dumps({"step_times": r.step_times, "warmup_s": r.warmup_untimed_s}))
"""


def one(args, warmup: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, args.size, args.device, str(args.steps), str(warmup),
                          str(args.threads), args.arm], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arm", default="baseline")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmups", type=int, nargs="+", default=[0, 3])
    ap.add_argument("--repeats", type=int, default=3, help="fresh processes per setting")
    args = ap.parse_args()
    print(f"{args.size} model, {args.arm}, {args.device}, {args.steps} timed steps, {args.threads} thread(s), "
          f"{args.repeats} fresh processes per setting")
    for warmup in args.warmups:
        runs = [one(args, warmup) for _ in range(args.repeats)]
        first = [r["step_times"][0] / statistics.median(r["step_times"]) for r in runs]
        total = [sum(r["step_times"]) / (args.steps * statistics.median(r["step_times"])) for r in runs]
        warm = ", ".join(f"{r['warmup_s']:.3f}" for r in runs)
        print(f"warmup_untimed_steps={warmup}: first timed step ÷ median step = "
              f"{', '.join(f'{x:.2f}' for x in first)}; all timed steps ÷ (steps × median) = "
              f"{', '.join(f'{x:.2f}' for x in total)}; warm-up took {warm} s")


if __name__ == "__main__":
    main()

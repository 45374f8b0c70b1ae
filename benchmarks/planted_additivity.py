"""Is the planted work's measured time its whole cost? Training steps of the tiny model on CPU, plain
and with the planted hook (workloads/planted.py), alternating in one process.

    python benchmarks/planted_additivity.py [--fraction 10] [--steps 30] [--rounds 5]

Prints, per round, the plain step time, the planted step time, the planted seconds the hook measured,
and the ratio planted/plain against the ratio the measured seconds imply (1 / (1 − share)): equal when
the planted cost is additive, larger when the planted work also slows the rest of the step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from eitp_bench.workloads.models import build_model  # noqa: E402
from eitp_bench.workloads.planted import PlantedWork  # noqa: E402


def steps(model, n: int, batch: int = 8, block: int = 32) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(n):
        ids = torch.randint(0, 32, (batch, block), generator=g)
        loss = model(ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fraction", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    excess = []
    for r in range(a.rounds):
        plain = build_model("tiny", vocab_size=32, n_positions=64, seed=0)
        planted = build_model("tiny", vocab_size=32, n_positions=64, seed=0)
        work = PlantedWork.attach(planted, a.fraction)
        t_plain = steps(plain, a.steps)
        t_planted = steps(planted, a.steps)
        p = sum(d for _, d in work.calls)
        implied, seen = 1 / (1 - p / t_planted), t_planted / t_plain
        excess.append(seen / implied)
        print(f"round {r}: plain {t_plain:.3f} s, planted {t_planted:.3f} s (hook measured {p:.3f} s): "
              f"ratio {seen:.3f} vs implied {implied:.3f}")
    print(f"median seen / implied = {statistics.median(excess):.3f} (1.000: the measured seconds are the whole cost)")


if __name__ == "__main__":
    main()

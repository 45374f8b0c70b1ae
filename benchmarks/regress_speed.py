"""How long does `find_changes` take over 1 000 series? (target ≤ 5 s)

    python benchmarks/regress_speed.py [--series 1000] [--points 60]

Each series is one (suite, task, arm, metric, hardware) history; one in ten has a
planted 20 % step at a random index. Prints the time and how many planted steps were found.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from eitp_bench.analysis.regress import confirmed, find_changes


def synthetic_metrics(n_series: int, n_points: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    frames, planted = [], {}
    for s in range(n_series):
        values = 100 * (1 + rng.normal(0, 0.02, n_points))
        if s % 10 == 0:
            at = int(rng.integers(10, n_points - 10))
            values[at:] *= 0.8
            planted[f"arm{s}"] = at
        frames.append(pd.DataFrame({
            "run_id": [f"{s}-{i}" for i in range(n_points)], "suite": "nightly", "task": "generate",
            "arm": f"arm{s}", "name": "tokens_per_s", "hardware_profile_id": "hp", "status": "ok",
            "started_at": [f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}" for i in range(n_points)], "value": values}))
    return pd.concat(frames, ignore_index=True), planted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--points", type=int, default=60)
    args = parser.parse_args()
    metrics, planted = synthetic_metrics(args.series, args.points)
    t, cpu = time.perf_counter(), time.process_time()
    changes = find_changes(metrics, window=8, threshold=0.05)
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    found = confirmed(changes)
    hits = sum(1 for c in found if planted.get(c.arm) == c.index)
    false = sum(1 for c in found if c.arm not in planted)
    print(f"series={args.series} points={args.points}: {wall:.2f} s wall, {cpu:.2f} s CPU "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"planted steps={len(planted)} found at the exact index={hits} false alarms={false} "
          f"candidates={len(changes)} confirmed={len(found)}")


if __name__ == "__main__":
    main()

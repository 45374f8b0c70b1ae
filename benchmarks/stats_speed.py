"""How long does one claim's effect take at n = 909 per arm (10 000 stored runs of one suite)?

    python benchmarks/stats_speed.py [--n 909] [--repeat 5]

Prints milliseconds per call (best of --repeat, and CPU time) for the effect functions of
eitp_bench.analysis.stats, and for the previous implementation (scipy.stats.bootstrap, BCa,
10 000 resamples, batched), which is what the report used per claim before.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def _old_ratio_effect(c, b, n_resamples=10_000, seed=0):
    """The previous ratio_effect's bootstrap: scipy BCa over (B, n) resample arrays."""
    from scipy import stats as sps

    def stat(x, y, axis=-1):
        return np.median(x, axis=axis) / np.median(y, axis=axis)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sps.bootstrap((c, b), stat, confidence_level=0.95, n_resamples=n_resamples, vectorized=True,
                            paired=False, random_state=np.random.default_rng(seed), method="BCa",
                            batch=max(100, min(n_resamples, 2_000_000 // max(len(c), len(b)))))
    sps.mannwhitneyu(c, b)
    return res.confidence_interval


def _time(fn, repeat):
    walls, cpus = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return 1e3 * min(walls), 1e3 * min(cpus)


def main() -> None:
    from eitp_bench.analysis import stats

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=909)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n = args.n
    level = rng.lognormal(0, 0.1, n)
    c, b = level * 0.97 * rng.lognormal(0, 0.01, n), level * rng.lognormal(0, 0.01, n)
    q = np.full(n, 64)
    kc, kb = rng.binomial(q, 0.55), rng.binomial(q, 0.5)
    cases = [
        ("previous ratio_effect (scipy BCa, 10 000 resamples)", lambda: _old_ratio_effect(c, b)),
        ("ratio_effect (BCa, 10 000 resamples)", lambda: stats.ratio_effect(c, b)),
        ("paired_ratio_effect (exact Wilcoxon / Hodges–Lehmann)",
         lambda: stats.paired_ratio_effect(c, b, threshold=1.0, direction="lower_is_better")),
        ("proportion_ratio_effect (paired counts)",
         lambda: stats.proportion_ratio_effect(kc, q, kb, q, paired=True, threshold=1.0,
                                               direction="higher_is_better")),
        ("median_difference_effect (BCa, 10 000 resamples)", lambda: stats.median_difference_effect(c - b)),
        ("non_inferiority (paired)", lambda: stats.non_inferiority(c, b, max_relative_loss=0.03,
                                                                   direction="lower_is_better", paired=True)),
    ]
    print(f"n = {n} per arm, best of {args.repeat} (load average {os.getloadavg()[0]:.1f})")
    for name, fn in cases:
        fn()  # warm
        wall, cpu = _time(fn, args.repeat)
        print(f"  {name:<58} {wall:8.1f} ms wall {cpu:8.1f} ms CPU")


if __name__ == "__main__":
    main()

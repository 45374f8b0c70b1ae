"""Error rates of the verdict statistics on planted truths, old rules against new ones.

    python benchmarks/stats_error_rates.py [--seeds 400] [--old-resamples 10000]

Prints, for each scenario of issue 9, how often the old rule (unpaired ratio of medians with a
scipy BCa bootstrap, inclusive `ci_low >= t`; gates on medians; no multiplicity control) and the
new one (eitp_bench.analysis.stats) reach VERIFIED / pass a gate. The old bootstrap uses
--old-resamples (default 10 000, as the report used).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from eitp_bench.analysis import stats


def old_ci(c, b, n_resamples):
    """The previous ratio_effect interval: scipy BCa (percentile when undefined)."""
    from scipy import stats as sps

    def stat(x, y, axis=-1):
        return np.median(x, axis=axis) / np.median(y, axis=axis)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for method in ("BCa", "percentile"):
            res = sps.bootstrap((c, b), stat, n_resamples=n_resamples, vectorized=True,
                                random_state=np.random.default_rng(0), method=method)
            lo, hi = res.confidence_interval
            if np.isfinite(lo) and np.isfinite(hi):
                return lo, hi
        d = res.bootstrap_distribution
        return tuple(np.percentile(d[np.isfinite(d)], [2.5, 97.5]))


def rounds(rng, n, gain, seed_cv=0.10, noise_cv=0.01):
    level = 20.0 * rng.lognormal(0, seed_cv, n)
    return level * gain * rng.lognormal(0, noise_cv, n), level * rng.lognormal(0, noise_cv, n)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--old-resamples", type=int, default=10_000)
    args = parser.parse_args()
    seeds, b_old = args.seeds, args.old_resamples
    t0 = time.perf_counter()

    # 1. A real 3 % gain (lower is better) under a 10 % seed-to-seed spread, 6 rounds.
    old = new = 0
    for s in range(seeds):
        c, b = rounds(np.random.default_rng(s), 6, 0.97)
        old += old_ci(c, b, b_old)[1] <= 1.0
        eff = stats.paired_ratio_effect(c, b, threshold=1.0, direction="lower_is_better")
        new += stats.clears(eff, 1.0, "lower_is_better") and eff.p_threshold < 0.025
    print(f"3 % paired gain, 10 % seed spread, n = 6, VERIFIED:       old {old / seeds:6.1%}   new {new / seeds:6.1%}")

    # 2. A null on tied discrete accuracies: both arms 0.5 on 16–128 queries per run, 5–8 runs.
    old = new = 0
    for s in range(seeds):
        rng = np.random.default_rng(10_000 + s)
        runs, q = int(rng.integers(5, 9)), int(rng.integers(16, 129))
        n = np.full(runs, q)
        kc, kb = rng.binomial(n, 0.5), rng.binomial(n, 0.5)
        old += old_ci(kc / n, kb / n, b_old)[0] >= 1.0
        eff = stats.proportion_ratio_effect(kc, n, kb, n, paired=True, threshold=1.0, direction="higher_is_better")
        new += stats.clears(eff, 1.0, "higher_is_better") and eff.p_threshold < 0.025
    print(f"null, tied discrete accuracies, VERIFIED at 1.0:          old {old / seeds:6.1%}   new {new / seeds:6.1%}")

    # 3. A 4 %-worse candidate against a 3 % quality gate, 5 rounds (quality noise cv 3 %).
    old = new = 0
    for s in range(seeds):
        c, b = rounds(np.random.default_rng(20_000 + s), 5, 1.04, noise_cv=0.03)
        old += np.median(c) / np.median(b) - 1 <= 0.03
        new += bool(stats.non_inferiority(c, b, max_relative_loss=0.03, direction="lower_is_better",
                                          paired=True).holds)
    print(f"4 %-worse candidate passes a 3 % gate, n = 5:             old {old / seeds:6.1%}   new {new / seeds:6.1%}")

    # 4. Seven null claims in one report (independent p-values): any false VERIFIED.
    p = np.random.default_rng(0).uniform(size=(20_000, 7))  # one-sided p-values under the null
    raw = (p < 0.025).any(axis=1).mean()
    holm = (np.apply_along_axis(stats.holm, 1, p) < 0.025).any(axis=1).mean()
    print(f"7 null claims, family-wise false VERIFIED (one side):      raw {raw:6.1%}   Holm {holm:6.1%}")

    # 5. Optional stopping: top up an inconclusive null run of 6 rounds with 6 more.
    fixed = topped = 0
    for s in range(seeds):
        c, b = rounds(np.random.default_rng(30_000 + s), 12, 1.0, noise_cv=0.02)
        first = stats.paired_ratio_effect(c[:6], b[:6])
        v_first = stats.clears(first, 1.0, "lower_is_better")
        fixed += v_first
        if not v_first and not stats.falls_short(first, 1.0, "lower_is_better"):
            v_first = stats.clears(stats.paired_ratio_effect(c, b), 1.0, "lower_is_better")
        topped += v_first
    print(f"null, 6 rounds, topped up to 12 when inconclusive:        fixed {fixed / seeds:6.1%}"
          f"   topped {topped / seeds:6.1%}")
    print(f"({seeds} seeds, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

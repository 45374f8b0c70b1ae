"""How often the self-checks are right, on planted truths (analysis/self_check.py).

    python benchmarks/self_check_rates.py [--trials 200] [--rounds 10] [--cv 0.05] [--share-noise 0.1]

A/A: a whole EIT-P suite's synthetic records (tests/synthetic_store.eitp_records) plus an A/A arm that
is the baseline with independent lognormal noise of --cv per value (a healthy machine: the two arms
differ by noise only). Prints how often the A/A check fails (the rule promises ≤ 5 %), then how
often it catches a real 10 % setup difference on tokens_per_s.

Planted: baseline and planted runs with --cv noise and a planted time share of 5 %, 10 % and 20 %;
prints how often the effect is detected, and detected within its interval, over --trials draws. Then
a 20 % share that each planted run *measures* with --share-noise (relative, lognormal: the A/B's
per-run spread), judged against the bare median (the old rule) and against the median's own interval
(the rule), and a share every run under-measures by 20 % (the products' own seconds missing an
after-effect): how often the check calls it "size off".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eitp_bench.analysis.claims import load_claims  # noqa: E402
from eitp_bench.analysis.frames import load_frames  # noqa: E402
from eitp_bench.analysis.self_check import aa_check, planted_check  # noqa: E402
from eitp_bench.suite.arms import AA_ARM  # noqa: E402
from tests.synthetic_store import eitp_records, frames_from_records  # noqa: E402
from tests.analysis.test_self_check import _copy_arm, _planted_records  # noqa: E402

SHARES = ("planted_train_share", "planted_generate_share")


def aa_rate(trials: int, rounds: int, cv: float, scale: float) -> tuple[int, float]:
    claims, fails, t0 = load_claims("eitp"), 0, time.perf_counter()
    for k in range(trials):
        recs = eitp_records(n_reps=rounds, seed=k, failed=0, timeline=False)
        recs += _copy_arm(recs, AA_ARM, scale={"tokens_per_s": scale}, noise=cv, seed=10_000 + k)
        f = load_frames(frames_from_records(recs))
        fails += aa_check(f.metrics, f.energy, claims, n_resamples=200)["status"] == "failed"
    return fails, time.perf_counter() - t0


def planted_rate(trials: int, rounds: int, cv: float, share: float, *, measured_noise: float = 0.0,
                 measured_bias: float = 1.0) -> tuple[int, int, int]:
    """(detected, detected within its interval, and within by the old rule: the interval covers the bare
    median) over `trials`; each run records its share × `measured_bias` × lognormal(0, `measured_noise`)."""
    detected = within = within_point = 0
    for k in range(trials):
        recs = _planted_records(rounds, share, seed=k, cv=cv)
        rng = np.random.default_rng(50_000 + k)
        for r in recs:
            for m in r.metrics:
                if m.name in SHARES:
                    m.value = m.value * measured_bias * float(rng.lognormal(0.0, measured_noise))
        f = load_frames(frames_from_records(recs))
        rows = [r for r in planted_check(f.metrics, f.energy, n_resamples=200)["rows"] if r["kind"] != "energy"]
        detected += all(r["detected"] for r in rows)
        within += all(r["detected"] and r["covered"] for r in rows)
        within_point += all(r["detected"] and r["ci"][0] <= r["planted"] <= r["ci"][1] for r in rows)
    return detected, within, within_point


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cv", type=float, default=0.05)
    ap.add_argument("--share-noise", type=float, default=0.1, help="relative noise of each run's measured share")
    a = ap.parse_args()
    fails, secs = aa_rate(a.trials, a.rounds, a.cv, 1.0)
    print(f"A/A, healthy machine ({a.rounds} rounds, cv {a.cv:g}): failed {fails}/{a.trials} = "
          f"{100 * fails / a.trials:.1f} % (rule: ≤ 5 %); {secs / a.trials:.2f} s per check")
    caught, _ = aa_rate(a.trials, a.rounds, a.cv, 1.10)
    print(f"A/A, a 10 % setup difference on tokens_per_s: caught {caught}/{a.trials} = {100 * caught / a.trials:.1f} %")
    for share in (0.05, 0.10, 0.20):
        detected, within, _ = planted_rate(a.trials, a.rounds, a.cv, share)
        print(f"planted share {100 * share:g} % ({a.rounds} rounds, cv {a.cv:g}): detected {detected}/{a.trials}, "
              f"detected within its interval {within}/{a.trials} = {100 * within / a.trials:.1f} %")
    detected, within, point = planted_rate(a.trials, a.rounds, a.cv, 0.2, measured_noise=a.share_noise)
    print(f"planted share 20 %, each run measuring it with {100 * a.share_noise:g} % noise: detected {detected}/"
          f"{a.trials}; within its interval {within}/{a.trials} = {100 * within / a.trials:.1f} % (the old rule, "
          f"the bare median inside the interval: {point}/{a.trials} = {100 * point / a.trials:.1f} %)")
    detected, within, point = planted_rate(a.trials, a.rounds, a.cv, 0.2, measured_noise=a.share_noise,
                                           measured_bias=0.8)
    print(f"planted share 20 %, every run measuring 20 % too little (and {100 * a.share_noise:g} % noise): called "
          f"size off {detected - within}/{a.trials} = {100 * (detected - within) / a.trials:.1f} % (old rule: "
          f"{detected - point}/{a.trials})")


if __name__ == "__main__":
    main()

"""False VERIFIED of a to-target energy claim read on the evaluation lattice, and with the crossing interpolated.

    python benchmarks/to_target_lattice.py [--trials 200] [--rounds 10] [--seed-spread 0.05]   (~4 min, 2 cores)

Planted truth: the candidate reaches the target in exactly 0.80× the baseline's steps at the same joules per
step, so its true energy-to-target ratio is 0.80, against the paper's "≤ 0.75×" (the claim is false). Each
trial is one configuration: the baseline's typical crossing step is drawn uniformly in [60, 190] of 200
steps; each round (seed) moves it by a seed-to-seed spread (--seed-spread, 5 %) and draws a loss curve L(s) = 2 + 2·exp(−s/τ)
through the target 2.5 at that step (the candidate's τ is 0.8× the baseline's), an evaluation noise of
0.003 nats, and joules per step with a 3 % round-to-round and 1 % run-to-run spread.
joules_to_target is read three ways and judged by the real judge (analysis.claims.judge_claims, the
training-energy claim without its quality gate and measured-joules check, which this simulation does not model):

- lattice: the first evaluation at or below the target, every 50 steps (the old rule);
- chord: the crossing interpolated linearly between the bracketing evaluations, every 50 steps;
- interpolated: workloads.train.interpolate_crossing (the monotone cubic through the evaluations), every 50;
- dense: the first evaluation at or below the target, every 10 steps (5 % of the budget);
- exact: the true crossing (no evaluations): what any reading can at best reach.

It also prints a truth just outside the claim (0.76×: false VERIFIED again, where a reading's bias would show)
and the power kept (true 0.70× and 0.60×: VERIFIED how often under each reading).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from eitp_bench.analysis.claims import VERIFIED, judge_claims, load_claims
from eitp_bench.workloads.train import EvalPoint, interpolate_crossing

STEPS, TARGET, FLOOR, START = 200, 2.5, 2.0, 4.0
READINGS = (("lattice", 50, None), ("chord", 50, "linear"), ("interpolated", 50, "pchip"), ("dense", 10, None),
            ("exact", 0, None))


def curve(tau: float, steps: np.ndarray) -> np.ndarray:
    return FLOOR + (START - FLOOR) * np.exp(-steps / tau)


def read(tau: float, every: int, noise: np.ndarray, joules_per_step: float, interpolate) -> float:
    """Joules to target under one reading of the evaluations (every `every` steps, plus one before training)."""
    if every == 0:  # the exact crossing of the noiseless curve
        return joules_per_step * tau * np.log((START - FLOOR) / (TARGET - FLOOR))
    steps = np.arange(0, STEPS + 1, every)
    losses = curve(tau, steps) + noise[: len(steps)]
    losses[0] = START  # the evaluation before training
    evals = [EvalPoint(int(s), 0.0, float(v), joules_per_step * s, None) for s, v in zip(steps, losses)]
    if interpolate:
        hit = interpolate_crossing(evals, TARGET, method=interpolate)
        return float("nan") if hit is None else hit.measured_j
    first = next((e for e in evals[1:] if e.val_loss <= TARGET), None)
    return float("nan") if first is None else first.measured_j


def trial(rng, n: int, ratio: float, claim, spread: float) -> dict[str, str]:
    rows = {mode: [] for mode, _, _ in READINGS}
    centre = rng.uniform(60, 190)
    for r in range(n):
        crossing_b = min(195.0, centre * rng.lognormal(0, spread))
        tau_b = crossing_b / np.log((START - FLOOR) / (TARGET - FLOOR))
        machine = rng.lognormal(0, 0.03)
        for arm, tau in (("baseline", tau_b), ("eitp-paper", ratio * tau_b)):
            jps = 10.0 * machine * rng.lognormal(0, 0.01)
            noise = rng.normal(0, 0.003, STEPS + 1)
            for mode, every, interp in READINGS:
                value = read(tau, every, noise, jps, interp)
                run = f"{arm}-{r}"
                base = dict(run_id=run, arm=arm, task="train", size="tiny", seed=r, repetition=r, status="ok")
                rows[mode] += [dict(base, name="joules_to_target", value=value, window="train"),
                               dict(base, name="target_reached", value=float(np.isfinite(value)), window=None)]
    return {mode: judge_claims(pd.DataFrame(r), None, [claim])[0].verdict for mode, r in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed-spread", type=float, default=0.05)
    args = parser.parse_args()
    claim = next(c for c in load_claims("eitp").claims if c.id == "training-energy")
    claim = claim.model_copy(update={"quality_gate": None, "energy": False})
    t0 = time.perf_counter()
    print(f"seed-to-seed spread of the crossing step: {100 * args.seed_spread:g} %")
    for truth, what in ((0.80, "false VERIFIED (true 0.80×, claim ≤ 0.75×)"), (0.76, "false VERIFIED (true 0.76×)"),
                        (0.70, "power (true 0.70×)"), (0.60, "power (true 0.60×)")):
        counts = {mode: 0 for mode, _, _ in READINGS}
        for s in range(args.trials):
            for mode, verdict in trial(np.random.default_rng(s), args.rounds, truth, claim, args.seed_spread).items():
                counts[mode] += verdict == VERIFIED
        print(f"{what}, n = {args.rounds} rounds, {args.trials} trials: "
              + ", ".join(f"{mode} {100 * k / args.trials:.1f} %" for mode, k in counts.items()))
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

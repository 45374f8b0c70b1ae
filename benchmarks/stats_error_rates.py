"""Error rates of the verdict statistics on planted truths, old rules against new ones.

    python benchmarks/stats_error_rates.py [--seeds 400] [--old-resamples 10000] [--trials 60]
    python benchmarks/stats_error_rates.py --only 17 --trials 1000   # issue 17's rules, more trials

Prints, for each scenario of issue 9, how often the old rule (unpaired ratio of medians with a
scipy BCa bootstrap, inclusive `ci_low >= t`; gates on medians; no multiplicity control) and the
new one (eitp_bench.analysis.stats) reach VERIFIED / pass a gate. The old bootstrap uses
--old-resamples (default 10 000, as the report used).

Then, for each verdict rule of issue 17, through the judge (`judge_claims` on planted frames), the
planted-null error rate and the power the rule keeps, against the rule it replaced (--trials each):
REFUTED Holm-adjusted like VERIFIED; censored convergence; the instrument's residual bound inside
the interval; long-range counts paired by round.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings

import numpy as np

from eitp_bench.analysis import stats
from eitp_bench.analysis.stats import paired


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


def issue9(seeds: int, b_old: int) -> None:
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


# ------------------------------------------------------------------ issue 17: the verdict rules, through the judge


def _frames(runs, task="t"):
    """Metrics and energy frames (the store's columns the judge reads) from
    [(arm, round, {metric: value}, (window_s, joules) or None)]."""
    import pandas as pd

    metrics, energy = [], []
    for arm, rep, values, window in runs:
        run_id = f"{arm}-{rep}"
        common = {"run_id": run_id, "arm": arm, "task": task, "status": "ok", "size": "tiny", "seed": rep,
                  "repetition": rep}
        metrics += [{**common, "name": k, "value": float(v), "window": "train"} for k, v in values.items()]
        if window is not None:
            energy.append({"run_id": run_id, "window": "train", "method": "counter", "joules": window[1],
                           "domain": "package", "meter": "rapl", "device": "cpu:0", "duration_s": window[0],
                           "flags": [], "flag_messages": []})
    return pd.DataFrame(metrics), pd.DataFrame(energy) if energy else None


def _claim(i=0, metric="m0", threshold=1.0, direction="lower_is_better", **kw):
    from eitp_bench.analysis.claims import Claim

    return Claim(id=f"c{i}", quote="q", paper_figure="f", metric=metric, task="t", candidate="eitp-paper",
                 baseline="baseline", direction=direction, threshold=threshold, **kw)


def _judge(runs, claims, instrument=None):
    from eitp_bench.analysis.claims import judge_claims

    metrics, energy = _frames(runs)
    return judge_claims(metrics, energy, claims, n_resamples=200, instrument=instrument)


def multiplicity(trials, rng):
    """10 claims × 10 rounds, every claim exactly at its claimed value (the least favourable null)."""
    from eitp_bench.analysis import stats

    claims = [_claim(i, f"m{i}") for i in range(10)]
    any_ref = any_ver = old_ref = 0
    power = 0
    for _ in range(trials):
        runs = []
        level = rng.lognormal(0, 0.10, 10)
        d = rng.normal(0, 0.05, (10, 10))
        for rep in range(10):
            runs.append(("baseline", rep, {f"m{i}": 100 * level[rep] for i in range(10)}, None))
            runs.append(("eitp-paper", rep, {f"m{i}": 100 * level[rep] * np.exp(d[i, rep]) for i in range(10)}, None))
        verdicts = _judge(runs, claims)
        any_ref += any(v.verdict == "REFUTED" for v in verdicts)
        any_ver += any(v.verdict == "VERIFIED" for v in verdicts)
        old_ref += any(stats.falls_short(stats.paired_ratio_effect(np.exp(d[i]), np.ones(10)), 1.0,
                                         "lower_is_better") for i in range(10))
        # power kept: one claim truly 6 % short of its value among nine at it
        d2 = d.copy()
        d2[0] += np.log(1.06)
        runs = []
        for rep in range(10):
            runs.append(("baseline", rep, {f"m{i}": 100 * level[rep] for i in range(10)}, None))
            runs.append(("eitp-paper", rep, {f"m{i}": 100 * level[rep] * np.exp(d2[i, rep]) for i in range(10)}, None))
        power += _judge(runs, claims)[0].verdict == "REFUTED"
    print(f"1. least favourable null, 10 claims × 10 rounds (5 % round sd): any false REFUTED "
          f"old {old_ref / trials:6.1%}  new {any_ref / trials:6.1%};  any false VERIFIED {any_ver / trials:6.1%}")
    print(f"   power kept: a claim truly 6 % short (among 9 at their value) REFUTED {power / trials:6.1%}")
    # The same rule on the signed-rank p-values directly (what the judge adjusts), 20× the trials: the
    # judge-level figures above have a Monte-Carlo SE of about 2–3 points at 60 trials.
    many = 20 * trials
    ver = ref = 0
    for _ in range(many):
        d = rng.normal(0, 0.05, (10, 10))
        ver += bool((stats.holm([paired._signed_rank_p(x, "less") for x in d]) < 0.025).any())
        ref += bool((stats.holm([paired._signed_rank_p(x, "greater") for x in d]) < 0.025).any())
    print(f"   the same Holm rule on the claims' one-sided p-values, {many} reports: any false REFUTED "
          f"{ref / many:6.1%};  any false VERIFIED {ver / many:6.1%}")


def _to_target_runs(rng, n, slow=1.0, fail_b=0.5, fail_c=None, sd_seed=0.10, sd_run=0.10):
    """Paired rounds: time to target = seed level × run noise (× slow for the candidate); each arm's
    budget is set so that it misses the target with probability fail_b / fail_c; train_s = budget."""
    from scipy.stats import norm

    sd = math.hypot(sd_seed, sd_run)
    budget_b = float(np.exp(norm.ppf(1 - fail_b) * sd))
    budget_c = budget_b if fail_c is None else float(slow * np.exp(norm.ppf(1 - fail_c) * sd))
    runs, old = [], {"c": [], "b": []}
    for rep in range(n):
        level = rng.normal(0, sd_seed)
        for arm, factor, budget, key in (("baseline", 1.0, budget_b, "b"), ("eitp-paper", slow, budget_c, "c")):
            t = factor * float(np.exp(level + rng.normal(0, sd_run)))
            m = {"target_reached": float(t <= budget), "train_s": budget, "final_val_loss": 3.0}
            if t <= budget:
                m["time_to_target_s"] = t
            old[key].append(t if t <= budget else np.nan)
            runs.append((arm, rep, m, None))
    return runs, old


def _old_convergence_verdict(old, t=1.0):
    """The previous rule: candidate converged in < half → REFUTED; baseline < half → NO DATA; else the
    paired test on rounds where both converged (survivors)."""
    from eitp_bench.analysis import stats

    c, b = np.array(old["c"]), np.array(old["b"])
    if 2 * np.isfinite(b).sum() < len(b):
        return "NO DATA"
    if 2 * np.isfinite(c).sum() < len(c):
        return "REFUTED"
    both = np.isfinite(c) & np.isfinite(b)
    if both.sum() < 5:
        return "NO DATA"
    eff = stats.paired_ratio_effect(c[both], b[both], threshold=t, direction="lower_is_better")
    if stats.clears(eff, t, "lower_is_better") and eff.p_threshold < 0.025:
        return "VERIFIED"
    return "REFUTED" if stats.falls_short(eff, t, "lower_is_better") else "INCONCLUSIVE"


def censoring(trials, rng):
    claim = _claim(metric="time_to_target_s", to_target=True)
    rates = {}
    for name, kw, n, target in (("identical arms, each converging 50 %, n = 10: false REFUTED", {}, 10, "REFUTED"),
                                ("10 % slower, missing 45 % (baseline 10 %), n = 20: false VERIFIED",
                                 dict(slow=1.1, fail_b=0.1, fail_c=0.45, sd_seed=0.05, sd_run=0.2), 20, "VERIFIED"),
                                ("power: 30 % faster, both missing ~30 %, n = 10: VERIFIED",
                                 dict(slow=0.7, fail_b=0.3), 10, "VERIFIED")):
        old = new = 0
        for _ in range(trials):
            runs, raw = _to_target_runs(rng, n, **kw)
            new += _judge(runs, [claim])[0].verdict == target
            old += _old_convergence_verdict(raw) == target
        rates[name] = (old / trials, new / trials)
        print(f"2. {name:70s} old {old / trials:6.1%}  new {new / trials:6.1%}")


def _qualification(period_s, delay_s):
    return {"sensors": [{"meter": "rapl", "device": "cpu:0", "domain": "package", "quantity": "energy",
                         "windows": True, "update_period_s": period_s, "averaging_window_s": period_s,
                         "delay_s": delay_s}]}


def instrument(trials, rng):
    """Qualified 100-ms counters (50-ms delay), 5-s baseline windows, 10 rounds, 3 % run noise.
    The measured joules carry the lag's real bias: each window misses e = D + P/2 of load at its end
    and picks up e of idle (30 % of load power) at its start."""
    period, delay, idle = 0.1, 0.05, 0.3
    lag = delay + period / 2
    edge = delay + period  # the old rule's edge span, D + max(P, W)
    cases = (("no gain vs '−25 %' (≤ 0.75×): REFUTED", 1.0, 0.75, "REFUTED"),
             ("true 25 % gain vs '≥ 20 % less' (≤ 0.80×): VERIFIED", 0.75, 0.80, "VERIFIED"),
             ("planted null: true 0.80× vs ≤ 0.80×: false VERIFIED", 0.80, 0.80, "VERIFIED"))
    for name, ratio, t, target in cases:
        claim = _claim(metric="joules", threshold=t, energy=True)
        old = new = 0
        for _ in range(trials):
            runs = []
            for rep in range(10):
                level = rng.lognormal(0, 0.10)
                for arm, r in (("baseline", 1.0), ("eitp-paper", ratio)):
                    window = 5.0 * r  # the same power: a smaller energy is a shorter window
                    true_j = 200.0 * window * level * rng.lognormal(0, 0.03)
                    measured = true_j * (1 - (1 - idle) * lag / window)
                    runs.append((arm, rep, {"joules": measured}, (window, measured)))
            quals = {f"{a}-{rep}": _qualification(period, delay)
                     for a in ("baseline", "eitp-paper") for rep in range(10)}
            v = _judge(runs, [claim], instrument=quals)[0]
            new += v.verdict == target
            u = 2 * edge / 5.0 + 2 * edge / (5.0 * ratio)  # the old gate: |ratio − 1| below both arms' u
            plain = _judge(runs, [claim])[0]
            old += plain.verdict == target and abs(plain.ratio - 1) >= u
        print(f"3. {name:70s} old {old / trials:6.1%}  new {new / trials:6.1%}")


def paired_counts(trials, rng):
    """Long-range accuracies: 10 rounds × 256 queries, a shared seed effect (accuracy 0.3–0.6 per round)."""
    from eitp_bench.analysis import stats

    t = 1.0
    for name, gain in (("tied null (both arms equal) vs ≥ 1×: false VERIFIED", 1.0),
                       ("power: 1.2× better vs ≥ 1×: VERIFIED", 1.2)):
        hits = {True: 0, False: 0}
        for _ in range(trials):
            level = rng.uniform(0.3, 0.6, 10)
            q = np.full(10, 256)
            kb, kc = rng.binomial(q, level), rng.binomial(q, np.minimum(1, gain * level))
            for paired in (True, False):
                eff = stats.proportion_ratio_effect(kc, q, kb, q, paired=paired, threshold=t,
                                                    direction="higher_is_better")
                hits[paired] += stats.clears(eff, t, "higher_is_better") and eff.p_threshold < 0.025
        print(f"4. {name:70s} unpaired {hits[False] / trials:6.1%}  paired {hits[True] / trials:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=400, help="issue 9 scenarios: planted data sets each")
    parser.add_argument("--old-resamples", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=60, help="issue 17 scenarios: planted reports each")
    parser.add_argument("--only", choices=("9", "17"), help="run one issue's scenarios")
    args = parser.parse_args()
    if args.only != "17":
        issue9(args.seeds, args.old_resamples)
    if args.only != "9":
        t0 = time.perf_counter()
        rng = np.random.default_rng(17)
        print("issue 17 (old rule → new rule):")
        for scenario in (multiplicity, censoring, instrument, paired_counts):
            scenario(args.trials, rng)
        print(f"({args.trials} trials each, {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()

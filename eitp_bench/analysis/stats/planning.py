"""Advice for the next suite and the paragraph that states every choice.

- `repetitions_for_power`: advice for the next suite (fixed n, never a stopping rule);
- `sequential_looks`: spots stores that hold several batches (top-ups) of one configuration;
- `min_paired_rounds`: the fewest rounds with which a claim can be VERIFIED under Holm;
- `methods_paragraph()`: all of the statistics in one paragraph for the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from eitp_bench.analysis.stats.distributions import t_ppf
from eitp_bench.analysis.stats.effect import DEFAULT_RESAMPLES
from eitp_bench.store.instants import iso_texts_micros, micros_of


@dataclass(frozen=True)
class PowerPlan:
    """Repetitions per arm (rounds, when paired) a next suite would need, or None with the reason."""

    repetitions: Optional[int]
    reason: str


def repetitions_for_power(
    effect_sd_log: float,
    true_log_ratio: float,
    threshold_log: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    max_repetitions: int = 100_000,
) -> PowerPlan:
    """Rounds a NEXT suite needs for its (1 − alpha) interval to exclude the threshold with `power`,
    if the true log-ratio were `true_log_ratio` and one round's log-ratio had SD `effect_sd_log`.

    n = ((t_{1−α/2, n−1} + t_{power, n−1}) · sd / |Δ|)² ÷ (3/π), Δ = true − threshold (iterated for
    the t quantiles; 3/π is the signed-rank test's efficiency against the t-test on normal data), and
    at least the smallest n whose exact signed-rank test can reach α (2^−n ≤ α/2). For an unpaired
    design pass sd = √(sd_c² + sd_b²) of ln values and read the result per arm. When claims are
    Holm-adjusted across m claims, pass alpha/m. Advice to fix n up front, never a stopping rule:
    adding repetitions to a run because it was inconclusive inflates false verdicts.
    """
    delta = abs(true_log_ratio - threshold_log)
    if not (math.isfinite(effect_sd_log) and math.isfinite(delta)):
        return PowerPlan(None, "no finite spread or estimate to plan from")
    if effect_sd_log <= 0:
        return PowerPlan(None, "no spread between rounds: nothing to plan from (a deterministic metric?)")
    if delta == 0 or delta < 1e-12 * max(1.0, abs(threshold_log)):
        return PowerPlan(None, "the estimate sits on the threshold: no number of repetitions is expected to settle it")
    n_exact = max(2, math.ceil(math.log2(2 / alpha)))
    are = 3 / math.pi
    n = n_exact
    for _ in range(100):
        df = max(n - 1, 1)
        need = ((t_ppf(1 - alpha / 2, df) + t_ppf(power, df)) * effect_sd_log / delta) ** 2 / are
        new = max(n_exact, math.ceil(need))
        if new == n or new > max_repetitions:
            n = new
            break
        n = new
    if n > max_repetitions:
        return PowerPlan(None, f"more than {max_repetitions} repetitions would be needed: the estimate is too close "
                               "to the threshold for any practical suite")
    return PowerPlan(n, f"{n} rounds for a {100 * (1 - alpha):g} % interval to exclude the threshold with "
                        f"{100 * power:g} % power if the true ratio were {math.exp(true_log_ratio):.4g} "
                        f"(round-to-round SD of ln ratio {effect_sd_log:.3g}); fix it in the next suite, do not top up")


@dataclass(frozen=True)
class Looks:
    """How many separate batches of repetitions one configuration's runs came in."""

    batches: int
    sizes: list[int]
    warning: Optional[str]


def seconds(values) -> np.ndarray:
    """Times (ISO 8601 text, timestamps or seconds) as seconds; NaN where missing."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":  # already seconds: no per-item work
        return values.astype(float)
    if getattr(values, "dtype", None) is not None and values.dtype.kind == "M":  # timestamps (store/instants.py)
        micros = np.asarray(values, dtype="datetime64[us]")
        return np.where(np.isnat(micros), np.nan, micros.astype(np.int64) / 1e6)  # as datetime.timestamp
    values = list(values)
    if values and all(type(v) is str for v in values):  # the stored runs' times: parsed in one call
        parsed = _iso_seconds(values)
        if parsed is not None:
            return parsed
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(math.nan)
        elif isinstance(v, (int, float, np.integer, np.floating)):
            out.append(float(v))
        else:  # ISO 8601; naive times are taken as UTC, as the records write them
            out.append(micros_of(v) / 1e6)
    return np.asarray(out, dtype=float)


def _iso_seconds(texts: list[str]) -> Optional[np.ndarray]:
    """ISO 8601 texts as seconds, exactly as the loop in `seconds` gives them (naive = UTC; whole
    microseconds / 1e6, as datetime.timestamp computes it); None where pandas reads one differently from
    datetime.fromisoformat (the loop then decides, and says what is wrong)."""
    micros = iso_texts_micros(texts)
    return None if micros is None else micros / 1e6


def sequential_looks(
    rounds: Sequence[Iterable],
    started_at: Sequence,
    finished_at: Optional[Sequence] = None,
    *,
    max_idle_s: float = 3600.0,
) -> Looks:
    """Batches of one configuration's runs (call once per config hash), and a warning if more than one.

    `rounds[i]` identifies run i's slot, e.g. (arm, task, size, repetition); `started_at` /
    `finished_at` are ISO strings or seconds. A new batch starts when (a) a slot already seen in the
    current batch appears again (the same repetitions were run again), or (b) a run starts more than
    `max_idle_s` after every earlier run had finished (someone came back later). Several batches
    may be top-ups of an earlier, inconclusive run: a fixed-n test's error rates then no longer hold.
    """
    start = seconds(started_at)
    end = seconds(finished_at) if finished_at is not None else start.copy()
    end = np.where(np.isfinite(end), end, start)
    # the common cases first (a tuple of values, an integer code: rounds.RunsBehind's), as they are:
    # isinstance(r, Iterable) is slow (0.5 s for the 1 000 000 runs a report's evidence counts pass)
    slots = [r if type(r) is tuple or type(r) is int else
             tuple(r) if not isinstance(r, (str, bytes)) and isinstance(r, Iterable) else (r,) for r in rounds]
    if len(slots) != len(start):
        raise ValueError("rounds and started_at must have one entry per run")
    order = np.argsort(np.where(np.isfinite(start), start, np.inf), kind="stable").tolist()
    starts, ends = start.tolist(), end.tolist()  # Python floats: a year of nightly runs is a long loop
    sizes: list[int] = []
    batch_of: dict = {}  # slot → the last batch it was seen in: "seen in the current batch" without a new set
    last_end = -math.inf
    for i in order:
        idle = starts[i] - last_end if math.isfinite(starts[i]) else 0.0
        if not sizes or batch_of.get(slots[i]) == len(sizes) or idle > max_idle_s:
            sizes.append(0)
        sizes[-1] += 1
        batch_of[slots[i]] = len(sizes)
        if math.isfinite(ends[i]):
            last_end = max(last_end, ends[i])
    warning = None
    if len(sizes) > 1:
        warning = (f"these runs came in {len(sizes)} separate batches ({_sizes_text(sizes)} runs): if later "
                   "batches were added because an earlier result was inconclusive (a top-up), the intervals and "
                   "p-values overstate the evidence; fix the repetitions up front and run a fresh suite")
    return Looks(len(sizes), sizes, warning)


def _sizes_text(sizes: list[int], shown: int = 6) -> str:
    """Batch sizes as a sum; a long list (a year of nightly batches) as its first and last few and the total."""
    if len(sizes) <= shown:
        return " + ".join(map(str, sizes))
    head, tail = sizes[: shown // 2], sizes[-(shown // 2):]
    return f"{' + '.join(map(str, head))} + … + {' + '.join(map(str, tail))} = {sum(sizes):,}"


def min_paired_rounds(n_claims: int = 1, alpha: float = 0.05) -> int:
    """Fewest paired rounds with which any claim can be VERIFIED under Holm across `n_claims`.

    With n rounds the smallest one-sided signed-rank p is 2⁻ⁿ (every round on the better side);
    Holm's first step needs it below (α/2)/m: n = ⌊log2(2m/α)⌋ + 1 (6 for one claim, 9 for 7).
    """
    return int(math.floor(math.log2(2 * max(1, n_claims) / alpha))) + 1


def methods_paragraph(*, confidence: float = 0.95, alpha: float = 0.05, n_claims: Optional[int] = None,
                      resamples: int = DEFAULT_RESAMPLES) -> str:
    """Every statistical choice, in one paragraph a reviewer can check (for the report and README)."""
    pct = f"{100 * confidence:g} %"
    draws = f"{resamples:,}".replace(",", " ")
    few = next(n for n in range(2, 64) if 2.0 ** (1 - n) <= 1 - confidence + 1e-12)
    family = f"the {n_claims} claims" if n_claims else "the claims"
    need = (f"; with {n_claims} claims that needs at least {min_paired_rounds(n_claims, alpha)} paired rounds"
            if n_claims else "")
    return (
        "Arms of a round share its seed, so they are compared round by round: the effect is the "
        "Hodges–Lehmann estimate of the per-round log-ratios candidate ÷ baseline, with the exact Wilcoxon "
        f"signed-rank {pct} interval and p-value (assumed: independent rounds, log-ratios symmetric about "
        f"their centre; below {few} rounds the interval is [min, max], shown with its lower coverage). "
        f"Unpaired rows use the ratio of medians, a {draws}-resample BCa bootstrap and a Mann–Whitney "
        "test. Accuracies are judged as counts: ratio of pooled accuracies, log (Katz) interval with the larger "
        "of the binomial and the run-to-run variance (paired by round when the rounds pair). A claim is VERIFIED "
        "only when its interval lies strictly beyond the claimed value, is not degenerate (zero width, no "
        "correct answer, both arms at 100 %), and its one-sided p-value against the claimed value, "
        f"Holm-adjusted across {family} in this report, is below {alpha / 2:g}{need}. REFUTED needs the "
        "interval strictly on the other side (or the quality gate shown failed) and the one-sided p-value "
        f"against the claim holding, Holm-adjusted across the same claims, below {alpha / 2:g} (with a "
        "quality gate, twice the smaller of the effect's and the gate's p). A run that misses its quality target "
        "within its budget is censored there, not dropped: its round's log-ratio is only bounded, and each side "
        "of the interval and each one-sided p takes the worst case of the bounds (a side left unbounded decides "
        "nothing). An energy ratio's interval is widened by the sensors' residual systematic bound "
        "|e/T (candidate) − e/T (baseline)|, e = D + P/2 from the qualification, before it is judged. A quality gate "
        "holds when the upper bound of the relative quality loss is below the allowed loss (non-inferiority). "
        "Repetitions are fixed by the suite; “repetitions needed” is an 80 %-power plan for the next suite, "
        "and the report warns when a configuration's runs came in several batches (top-ups inflate false "
        "verdicts)."
    )

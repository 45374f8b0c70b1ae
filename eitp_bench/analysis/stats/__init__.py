"""Statistics that state what they assume. Pure functions: numbers in, numbers out.

One repetition (one fresh process) is one sample; the arms of a round share its seed, so a claim is judged
on *paired* rounds whenever it can be. One module per job:

- effect.py: `Effect` (every test's answer) and `clears` / `falls_short`, the one comparison with a
  threshold, strict, and never on a degenerate (zero-width or undefined) interval;
- paired.py: `paired_ratio_effect` (Hodges–Lehmann of per-round log-ratios, exact Wilcoxon signed-rank
  interval and p-value), `signed_rank_p_ties`, the censored variant for runs that missed their target;
- unpaired.py: `ratio_effect` (ratio of medians, bootstrap BCa, Mann–Whitney) when rounds cannot pair;
- counts.py: `proportion_ratio_effect`, accuracies judged as counts;
- multiplicity.py: `holm` (across the claims of one paper) and `benjamini_hochberg` (many series);
- gates.py: `non_inferiority`, the quality gate;
- planning.py: `repetitions_for_power`, `sequential_looks`, `min_paired_rounds`, `methods_paragraph()`
  (every statistical choice in one paragraph for the report);
- series.py: descriptive helpers and change points (compare, regress);
- distributions.py: Student-t, beta and binomial tails/quantiles from scipy.special, equal to scipy.stats' bit
  for bit.

scipy.stats itself (about 0.5 s to import) is imported only inside the functions that need it (Wilcoxon with
ties or over 50 rounds, Mann–Whitney, Benjamini–Hochberg), so a report that calls none of them never
loads it (tests/report/test_report_imports.py checks that).

The rest of eitp-bench reads them as `stats.<name>` (`from eitp_bench.analysis import stats`); this module
re-exports them. May import: numpy and scipy only (nothing of eitp-bench outside this folder).
"""

from eitp_bench.analysis.stats.effect import (
    DEFAULT_RESAMPLES, Direction, Effect, LOG_TIE, MIN_REPETITIONS, clears, falls_short,
)
from eitp_bench.analysis.stats.paired import (
    EXACT_MAX_N, TIES_EXACT_MAX_N, WALSH_FULL_MAX_N, censored_log_ratio_bounds, censored_paired_ratio_effect,
    paired_ratio_effect, signed_rank_p_ties,
)
from eitp_bench.analysis.stats.unpaired import median_difference_effect, ratio_effect
from eitp_bench.analysis.stats.counts import proportion_ratio_effect
from eitp_bench.analysis.stats.multiplicity import benjamini_hochberg, holm
from eitp_bench.analysis.stats.gates import Gate, non_inferiority
from eitp_bench.analysis.stats.planning import (
    Looks, PowerPlan, methods_paragraph, min_paired_rounds, repetitions_for_power, sequential_looks,
)
from eitp_bench.analysis.stats.series import change_points, coefficient_of_variation, median_ci, noise_scale
from eitp_bench.analysis.stats.distributions import beta_ppf, binom_ppf, binom_sf, t_cdf, t_ppf, t_sf

__all__ = [
    "DEFAULT_RESAMPLES", "Direction", "EXACT_MAX_N", "Effect", "Gate", "LOG_TIE", "Looks", "MIN_REPETITIONS",
    "PowerPlan", "TIES_EXACT_MAX_N", "WALSH_FULL_MAX_N", "benjamini_hochberg", "beta_ppf", "binom_ppf", "binom_sf", "censored_log_ratio_bounds",
    "censored_paired_ratio_effect", "change_points", "clears", "coefficient_of_variation", "falls_short", "holm",
    "median_ci", "median_difference_effect", "methods_paragraph", "min_paired_rounds", "noise_scale",
    "non_inferiority", "paired_ratio_effect", "proportion_ratio_effect", "ratio_effect", "repetitions_for_power",
    "sequential_looks", "signed_rank_p_ties", "t_cdf", "t_ppf", "t_sf",
]

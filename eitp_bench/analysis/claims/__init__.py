"""Claims and their verdicts: the paper's claims (YAML data) judged from the store's measured samples.

One job: a verdict per claim, never a number that was not measured. Modules:

- registry.py: the claims registry (`Claim`, `ClaimSet`, `load_claims`);
- verdict.py: `Verdict` and its words (VERIFIED, REFUTED, INCONCLUSIVE, NOT MEASURED, NO DATA, NOT COMPARABLE);
- judge.py: `judge_claims` / `judge_one`: the rules of a fair experiment, then the statistics, Holm across
  the claims of a report;
- samples.py: each claim's samples from the frames (paired rounds, censored to-target figures, counts,
  measured energy only) and the checks before any statistics;
- effects.py: the test that fits the samples (analysis/stats) and the power plan;
- gate.py: the quality gate (non-inferiority);
- conditions.py: caveats from the runs' conditions (what the joules cover, a shared GPU, a busy CPU).

May import: analysis/stats, analysis/resultset, the suite's arm registry and the shared vocabulary; never
report/ (report renders verdicts, it does not make them).
"""

from eitp_bench.analysis.claims.judge import judge_claims, judge_one
from eitp_bench.analysis.claims.registry import Claim, ClaimSet, Direction, LearnedGate, QualityGate, load_claims
from eitp_bench.analysis.claims.samples import CENSOR_BUDGETS, ROUND_KEYS, convergence_counts
from eitp_bench.analysis.claims.verdict import (
    INCONCLUSIVE, NO_DATA, NOT_COMPARABLE, NOT_MEASURED, REFUTED, VERIFIED, Verdict,
)

__all__ = ["CENSOR_BUDGETS", "Claim", "ClaimSet", "Direction", "INCONCLUSIVE", "LearnedGate", "NOT_COMPARABLE",
           "NOT_MEASURED", "NO_DATA", "QualityGate", "REFUTED", "ROUND_KEYS", "VERIFIED", "Verdict",
           "convergence_counts", "judge_claims", "judge_one", "load_claims"]

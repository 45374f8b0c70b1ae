"""The claims registry and the verdicts (being split by job)."""

from eitp_bench.analysis.claims.judge import *  # noqa: F401,F403  (the one module, for this commit only)

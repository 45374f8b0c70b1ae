"""Statistics that state what they assume (being split by job: paired, unpaired, counts, multiplicity, …)."""

from eitp_bench.analysis.stats.paired import *  # noqa: F401,F403  (the one module, for this commit only)

"""CPU energy from RAPL counters (being split by job)."""

from eitp_bench.energy.rapl.meter import *  # noqa: F401,F403  (the one module, for this commit only)

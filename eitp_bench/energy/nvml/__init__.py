"""NVIDIA GPU energy through NVML (being split by job)."""

from eitp_bench.energy.nvml.meter import *  # noqa: F401,F403  (the one module, for this commit only)

"""Theory: measured joules against Landauer's bound, EIT-P's E_min, training floors and derivation entropy.

Temperatures for physics are kelvin (the heat sink's); ML/loss "temperatures" are dimensionless
and kept apart. Every output is a `Quantity` that names its definition, units, source and whether
the definition is our operationalisation. Submodules import torch, so import them directly.

May import: energy (RAPL's update period, for the derivation's resolution) and the shared vocabulary.
The workloads compute theory tasks with it; analysis and report read it.
"""

from eitp_bench.theory.constants import K_B, LN2, landauer_j_per_bit
from eitp_bench.theory.quantity import Quantity

__all__ = ["K_B", "LN2", "Quantity", "landauer_j_per_bit"]

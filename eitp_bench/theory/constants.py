"""Physical constants and Landauer's bit energy E_L(T) = k_B·T·ln2 (T in kelvin, the heat sink's)."""

from __future__ import annotations

import math

from scipy.constants import Boltzmann as K_B  # J/K, exact since the 2019 SI

from eitp_bench.errors import UserError

LN2 = math.log(2.0)
DEFAULT_TEMPERATURE_K = 300.0
LANDAUER_SOURCE = "Landauer 1961; Bérut et al., Nature 2012"


def check_temperature(temperature_k) -> float:
    """A heat-sink temperature must be a finite number of kelvin above zero."""
    try:
        t = float(temperature_k)
    except (TypeError, ValueError):
        raise UserError(
            f"temperature {temperature_k!r} is not a number of kelvin",
            fix="give the heat-sink temperature in kelvin, e.g. 300",
        ) from None
    if not math.isfinite(t) or t <= 0:
        raise UserError(
            f"temperature {temperature_k!r} K is not a positive finite number of kelvin",
            fix="give the heat-sink temperature in kelvin (> 0), e.g. 300; a loss 'temperature' such as 1.0 is not a physical one",
        )
    return t


def landauer_j_per_bit(temperature_k: float) -> float:
    """Minimum heat to erase one bit at the heat-sink temperature: k_B·T·ln2 joules."""
    return K_B * check_temperature(temperature_k) * LN2


def bits_from_joules(joules: float, temperature_k: float) -> float:
    """Negentropy spent, in bits: E / (k_B·T·ln2)."""
    return joules / landauer_j_per_bit(temperature_k)

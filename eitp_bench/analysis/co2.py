"""CO₂ per arm from *measured* joules and the grid's carbon intensity.

codecarbon ships a table of each country's grid carbon intensity (g CO₂eq per kWh, from its energy-mix
data); we take only that number from it. Its own energy figure (an estimate from CPU/GPU models and
TDPs) never enters: CO₂ = our measured joules ÷ 3.6e6 J/kWh × the intensity. Without codecarbon, a
country or measured joules, there is no CO₂ figure (and the report says why).
"""

from __future__ import annotations

from typing import Optional

J_PER_KWH = 3.6e6


def grid_intensity(country: str) -> Optional[dict]:
    """{country, g_per_kwh, source} from codecarbon's bundled energy-mix table, or None."""
    try:
        import codecarbon
        from codecarbon.input import DataSource
    except ImportError:
        return None
    try:
        mix = DataSource().get_global_energy_mix_data()
    except (OSError, ValueError, KeyError):  # a broken install: no figure rather than a wrong one
        return None
    row = mix.get(country.upper())
    if not row or row.get("carbon_intensity") is None:
        return None
    name = row.get("country_name", country.upper())
    return {"country": f"{name} ({country.upper()})", "g_per_kwh": float(row["carbon_intensity"]),
            "source": f"codecarbon {codecarbon.__version__} global energy-mix table (carbon_intensity, g CO₂eq/kWh)"}


def co2_per_arm(arm_energy: list[dict], country: Optional[str]) -> dict:
    """{rows: [{task, window, arm, joules, low, high, g_co2, g_low, g_high, n}], intensity, note}.

    arm_energy: training_view.arm_energy's pictures; estimated ones are skipped (never turned into CO₂)."""
    if not country:
        return {"rows": [], "intensity": None,
                "note": "no grid country given (suite meters.co2_country or $EITP_BENCH_COUNTRY): no CO₂ figure"}
    intensity = grid_intensity(country)
    if intensity is None:
        return {"rows": [], "intensity": None,
                "note": f"no carbon intensity for {country.upper()} (codecarbon not installed, or the country is "
                        "not in its table): no CO₂ figure"}
    per_j = intensity["g_per_kwh"] / J_PER_KWH
    rows = []
    for picture in arm_energy:
        if picture.get("estimated"):
            continue
        for b in picture["bars"]:
            rows.append({"task": picture["task"], "window": picture["window"], "arm": b["arm"], "joules": b["total"], "n": b["n"],
                         "g_co2": b["total"] * per_j, "g_low": b["low"] * per_j, "g_high": b["high"] * per_j})
    note = "" if rows else "no measured joules (estimates are never turned into CO₂)"
    return {"rows": rows, "intensity": intensity, "note": note}

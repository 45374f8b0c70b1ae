"""The energy ladder: Landauer's bit, hardware per-op/per-byte figures, measured J/token and J/step."""

from __future__ import annotations

from typing import Any, Optional

from eitp_bench.theory.constants import DEFAULT_TEMPERATURE_K, LANDAUER_SOURCE, check_temperature, landauer_j_per_bit


def profile_figures(profile, kind: str) -> list[tuple[str, float, str]]:
    """(label, joules, basis) for kind "flop" or "byte" from a hardware profile dict.

    Accepts `energy_per_<kind>: {joules, basis}` (hardware_profiles/*.yaml), or
    `energy_per_<kind>_j` as a number or a {precision/memory: number} dict.
    """
    if profile is None:
        return []
    if hasattr(profile, "model_dump"):
        profile = profile.model_dump()
    out = []
    for key in (f"energy_per_{kind}", f"energy_per_{kind}_j"):
        value = profile.get(key)
        if isinstance(value, (int, float)):
            out.append(("", float(value), ""))
        elif isinstance(value, dict) and isinstance(value.get("joules"), (int, float)):
            out.append(("", float(value["joules"]), str(value.get("basis", ""))))
        elif isinstance(value, dict):
            out += [(str(k), float(v), "") for k, v in value.items() if isinstance(v, (int, float))]
    return out


def profile_source(profile) -> str:
    if hasattr(profile, "model_dump"):
        profile = profile.model_dump()
    sources = profile.get("sources") or ([profile["source"]] if profile.get("source") else [])
    name = profile.get("name", "hardware profile")
    return f"{name}: {'; '.join(sources)}" if sources else str(name)


def ladder_rungs(temperature_k: float = DEFAULT_TEMPERATURE_K, *, profile: Optional[dict] = None,
                 joules_per_token: Optional[float] = None, joules_per_step: Optional[float] = None,
                 extra: Optional[list[dict]] = None) -> list[dict[str, Any]]:
    """Rungs sorted by joules, each with its ratio to Landauer's bit and to the rung below."""
    t = check_temperature(temperature_k)
    e_l = landauer_j_per_bit(t)
    rungs = [{"name": f"Landauer: erase 1 bit at {t:g} K", "joules": e_l, "per": "bit",
              "method": "physics", "source": LANDAUER_SOURCE}]
    if profile:
        src = profile_source(profile)
        for kind in ("flop", "byte"):
            for label, joules, basis in profile_figures(profile, kind):
                rungs.append({"name": f"{kind.upper() if kind == 'flop' else kind}{' ' + label if label else ''}",
                              "joules": joules, "per": "FLOP" if kind == "flop" else "byte",
                              "method": "hardware profile", "source": src + (f" ({basis})" if basis else "")})
    if joules_per_token is not None:
        rungs.append({"name": "measured inference", "joules": float(joules_per_token), "per": "token",
                      "method": "measured", "source": "this run"})
    if joules_per_step is not None:
        rungs.append({"name": "measured training step", "joules": float(joules_per_step), "per": "step",
                      "method": "measured", "source": "this run"})
    rungs += list(extra or [])
    rungs.sort(key=lambda r: r["joules"])
    prev = None
    for r in rungs:
        r["ratio_to_landauer"] = r["joules"] / e_l
        r["ratio_to_previous"] = None if prev is None or prev <= 0 else r["joules"] / prev
        r["temperature_k"] = t
        prev = r["joules"]
    return rungs

"""Hardware profiles: published datasheet figures per GPU/CPU model, matching, stable profile id.

Profiles live in eitp_bench/hardware_profiles/*.yaml (package data). A figure not
published, or not known for sure, is null — never guessed. Energy per FLOP/byte says
its basis: "derived: ..." (arithmetic on datasheet figures, checked here) or a citation.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eitp_bench.errors import UserError
from eitp_bench.hardware.detect import Machine

PRECISIONS = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8")
_GIB = 1024**3


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PeakFlops(_Model):
    """Dense peak operations per second, as published (no sparsity)."""

    fp64: Optional[float] = None
    fp32: Optional[float] = None
    tf32: Optional[float] = None
    bf16: Optional[float] = None
    fp16: Optional[float] = None
    fp8: Optional[float] = None
    int8: Optional[float] = None


class EnergyFigure(_Model):
    joules: float = Field(gt=0)
    basis: str  # "derived: tdp_w / peak_flops.bf16" or a cited measurement


class HardwareProfile(_Model):
    name: str
    kind: Literal["gpu", "cpu"]
    architecture: Optional[str] = None
    match: list[str]  # regexes (case-insensitive) on the NVML GPU name or the CPU model string
    generic: bool = False  # a fallback, used only when nothing specific matches
    tdp_w: Optional[float] = None
    idle_w: Optional[float] = None
    idle_w_basis: Literal["published", "typical", "unknown"] = "unknown"
    peak_flops: PeakFlops = Field(default_factory=PeakFlops)
    memory_bandwidth_bytes_per_s: Optional[float] = None
    memory_bytes: Optional[int] = None  # the published size, GB × 10^9
    memory_type: Optional[str] = None
    energy_per_flop: Optional[EnergyFigure] = None
    energy_per_byte: Optional[EnergyFigure] = None
    nvml_energy_counter: Optional[bool] = None
    sources: list[str] = Field(min_length=1)
    notes: Optional[str] = None

    @field_validator("match")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        if not patterns:
            raise ValueError("at least one match pattern is needed")
        for p in patterns:
            try:
                re.compile(p)
            except re.error as err:
                raise ValueError(f"match pattern {p!r} is not a valid regex: {err}") from None
        return patterns

    @model_validator(mode="after")
    def _derived_figures_add_up(self) -> "HardwareProfile":
        # "derived: tdp_w / peak_flops.bf16" must equal that arithmetic (within 2 %), so a typo is caught.
        for label, figure in (("energy_per_flop", self.energy_per_flop), ("energy_per_byte", self.energy_per_byte)):
            if figure is None or not figure.basis.startswith("derived: tdp_w / "):
                continue
            denominator = figure.basis.removeprefix("derived: tdp_w / ").split()[0]
            value = self._lookup(denominator)
            if self.tdp_w is None or value is None:
                raise ValueError(f"{label}: basis {figure.basis!r} needs tdp_w and {denominator}")
            expected = self.tdp_w / value
            if abs(figure.joules - expected) > 0.02 * expected:
                raise ValueError(f"{label}: {figure.joules:g} J but {figure.basis!r} gives {expected:.3g} J")
        return self

    def _lookup(self, dotted: str) -> Optional[float]:
        obj = self
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        return obj

    def matches(self, text: str) -> bool:
        return any(re.search(p, text, re.IGNORECASE) for p in self.match)


def load_profiles() -> tuple[HardwareProfile, ...]:
    """Every bundled profile, validated; a broken YAML is a UserError naming the file."""
    return tuple(p for _, p in _profile_files())


@lru_cache(maxsize=1)
def _profile_files() -> tuple[tuple[str, HardwareProfile], ...]:
    """(file stem, profile) of every bundled profile: the stem is the profile's id (`nvidia-h100-sxm`)."""
    from importlib.resources import files

    import yaml
    from pydantic import ValidationError

    profiles = []
    for entry in sorted(files("eitp_bench").joinpath("hardware_profiles").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".yaml"):
            continue
        try:
            profiles.append((entry.name.removesuffix(".yaml"),
                             HardwareProfile.model_validate(yaml.safe_load(entry.read_text()))))
        except (yaml.YAMLError, ValidationError) as err:
            raise UserError(
                f"hardware profile {entry.name} is invalid: {err}",
                fix="correct the YAML (see the other files in eitp_bench/hardware_profiles/)",
            ) from None
    return tuple(profiles)


def find_profile(name: str) -> Optional[HardwareProfile]:
    """A bundled profile by its id (the file stem, `nvidia-h100-sxm`, with or without `.yaml`) or its display
    name (`NVIDIA H100 SXM5 80GB`), ignoring case; None when none is called so."""
    wanted = name.strip().lower().removesuffix(".yaml")
    for stem, profile in _profile_files():
        if wanted in (stem.lower(), profile.name.lower()):
            return profile
    return None


def profile_ids() -> list[str]:
    """The ids (file stems) of the bundled profiles, for error messages."""
    return [stem for stem, _ in _profile_files()]


def match_profile(text: str, kind: str, profiles: tuple[HardwareProfile, ...] | None = None) -> Optional[HardwareProfile]:
    """The specific profile whose patterns match `text`, else the generic one of that kind, else None."""
    candidates = [p for p in (profiles or load_profiles()) if p.kind == kind]
    specific = [p for p in candidates if not p.generic and p.matches(text)]
    if specific:
        return specific[0]
    generic = [p for p in candidates if p.generic and p.matches(text)]
    return generic[0] if generic else None


def match_machine(machine: Machine, profiles: tuple[HardwareProfile, ...] | None = None) -> dict:
    """{"gpus": [profile or None per GPU], "cpu": profile or None}."""
    return {
        "gpus": [match_profile(g.name, "gpu", profiles) for g in machine.gpus],
        "cpu": match_profile(machine.cpu.model, "cpu", profiles),
    }


def stable_fields(machine: Machine, matched: dict | None = None) -> dict:
    """What identifies the hardware: models, counts, sizes. Never hostname, clocks, drivers, temperatures."""
    matched = matched if matched is not None else match_machine(machine)
    gpu_counts: dict[str, int] = {}
    for g in machine.gpus:
        gpu_counts[g.name] = gpu_counts.get(g.name, 0) + 1
    # MemTotal moves by a few hundred MB between kernels; round to 4 GiB so the id does not.
    memory = round(machine.memory_bytes / _GIB / 4) * 4 if machine.memory_bytes else None
    return {
        "gpus": sorted([name, n] for name, n in gpu_counts.items()),
        "cpu_model": machine.cpu.model,
        "sockets": machine.cpu.sockets,
        "cores": machine.cpu.cores,
        "memory_gib": memory,
        "profiles": sorted({p.name for p in [*matched["gpus"], matched["cpu"]] if p is not None}),
    }


def profile_id(machine: Machine, matched: dict | None = None) -> str:
    """A short, stable hash of the stable hardware fields."""
    canonical = json.dumps(stable_fields(machine, matched), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def profile_alias(machine: Machine) -> str:
    """A human-readable label to go with the id, e.g. '2x NVIDIA H100 80GB HBM3 + AMD EPYC 9654'."""
    counts: dict[str, int] = {}
    for g in machine.gpus:
        counts[g.name] = counts.get(g.name, 0) + 1
    parts = [f"{n}x {name}" for name, n in counts.items()]
    sockets = f"{machine.cpu.sockets}x " if machine.cpu.sockets and machine.cpu.sockets > 1 else ""
    return " + ".join([*parts, f"{sockets}{machine.cpu.model}"])

"""The scope of a verdict: the setting it was judged in, so no verdict reads as more than it is.

A verdict is a statement about one regime (the paper's pretrained GPT-2 on WikiText-2, or a
synthetic corpus), one model size, one machine and one precision. A REFUTED from a tiny model on a
synthetic corpus says nothing about the paper's regime, so every verdict carries its `Scope`, and
the report words it as a verdict *here* ("REFUTED here — synthetic regime, tiny model; says nothing
about the paper's regime") unless the scope is the paper's own.

Kept apart from the judge (analysis/claims/) on purpose: scope is a fact about the runs, never an input
to the statistics.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

REGIME_WORDS = {"paper": "the paper's regime", "synthetic": "synthetic regime", "text": "a text corpus, not the paper's",
                "unknown": "regime unknown"}
PAPER_SIZES = {"small", "medium"}  # GPT-2 124M and larger: the sizes the paper fine-tunes


@dataclass(frozen=True)
class Scope:
    regime: str  # paper | synthetic | text | unknown
    model_sizes: tuple[str, ...]
    hardware_profile: str  # the profile id the runs were grouped by
    hardware: str  # its human name (alias) when recorded, else the id
    precision: Optional[str]
    device: Optional[str]
    rounds: tuple[int, int]  # (fewest, most) measured repetitions per arm, as stored (not as configured)
    smoke: bool

    @property
    def about_paper(self) -> bool:
        """Whether a verdict here speaks to the paper's claim as the paper made it."""
        return self.regime == "paper" and not self.smoke and bool(set(self.model_sizes) & PAPER_SIZES)

    @property
    def setting(self) -> str:
        """The setting in a few words: 'synthetic regime, tiny model, fp32 on cpu'."""
        sizes = "/".join(self.model_sizes) or "unknown-size"
        parts = [REGIME_WORDS.get(self.regime, self.regime), f"{sizes} model"]
        if self.precision:
            parts.append(f"{self.precision}" + (f" on {self.device}" if self.device else ""))
        return ", ".join(parts)

    @property
    def rounds_text(self) -> str:
        lo, hi = self.rounds
        return f"{lo} rounds" if lo == hi else f"{lo}–{hi} rounds"

    def qualifier(self) -> str:
        """What a verdict badge must carry: '' for the paper's regime, else 'here — <setting>; says nothing …'."""
        if self.about_paper:
            return ""
        why = "a smoke run, " if self.smoke else ""
        return f"here — {why}{self.setting}; says nothing about the paper's regime"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["model_sizes"], out["rounds"] = list(self.model_sizes), list(self.rounds)
        out["about_paper"], out["setting"] = self.about_paper, self.setting
        return out


def group_scope(experiment, config: Optional[dict], profile: str, metrics, provenance=None) -> Scope:
    """The Scope of one configuration × machine group, from its stored config and its runs."""
    config = config or {}
    train = config.get("train") or {}
    sizes = config.get("sizes") or (sorted(map(str, metrics["size"].dropna().unique())) if "size" in metrics.columns
                                    else [])
    return Scope(regime=experiment.regime, model_sizes=tuple(map(str, sizes)), hardware_profile=profile,
                 hardware=_hardware_name(provenance, metrics, profile), precision=train.get("precision") or None,
                 device=config.get("device") or None, rounds=_rounds(metrics), smoke=bool(experiment.smoke))


def _rounds(metrics) -> tuple[int, int]:
    """Fewest and most stored repetitions (runs) of one arm on one task: what `n` in a verdict counts."""
    if metrics is None or len(metrics) == 0 or not {"arm", "task", "run_id"} <= set(metrics.columns):
        return (0, 0)
    per = metrics.groupby(["arm", "task"])["run_id"].nunique()
    return (int(per.min()), int(per.max()))


def _hardware_name(provenance, metrics, profile: str) -> str:
    if provenance is None or len(provenance) == 0 or "hardware.alias" not in provenance.columns:
        return profile
    runs = set(metrics["run_id"]) if "run_id" in metrics.columns else set()
    names = provenance.loc[provenance["run_id"].isin(runs), "hardware.alias"].dropna().astype(str).unique()
    return names[0] if len(names) == 1 else profile

"""The suite's `claims:` and `thresholds:` keys, honoured: which claims a report judges, and at what threshold.

A suite names the claims it was run to test (`claims: [training_energy, …]`, suite.CLAIMS) and may move a
claim's threshold (`thresholds: {training_energy: 0.9}`). Both are part of the stored configuration, fixed
before anything ran (a pre-registration): the judge judges the listed headline claims only (an empty list:
every claim), so the multiplicity family is the one the suite declared; a threshold from the suite replaces
the registry's and the verdict says so ("threshold 0.9 from the suite; the paper's is 0.75"). Ablation claims
follow the arms the suite ran. Claims of another paper's file (`report --claims FILE`) are not named by the
suite's keys and are all judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

# suite.CLAIMS name → the registry's claim ids (eitp_bench/claims/eitp.yaml) it stands for
SUITE_CLAIMS: dict[str, tuple[str, ...]] = {
    "inference_speedup": ("inference-speedup", "inference-speedup-compressed"),
    "training_energy": ("training-energy", "training-energy-per-step"),
    "model_size": ("model-size",),
    "perplexity": ("perplexity",),
    "long_range": ("long-range",),
    "theorem3": ("theorem-3",),
}
_NAME_OF = {claim_id: name for name, ids in SUITE_CLAIMS.items() for claim_id in ids}


@dataclass
class Selection:
    """What the stored suite asked the report to judge."""

    claims: list[str] = field(default_factory=list)  # suite claim names; empty: every claim
    thresholds: dict[str, float] = field(default_factory=dict)  # suite claim name → threshold

    def as_json(self) -> dict:
        return {"claims": list(self.claims), "thresholds": dict(self.thresholds)}


def from_config(suite_cfg) -> Selection:
    return Selection(list(suite_cfg.claims), dict(suite_cfg.thresholds))


def apply(claims: list, selection: Optional[Selection]) -> tuple[list, list[str], dict[str, str]]:
    """(the claims to judge, with the suite's thresholds applied; ids of claims the suite did not list;
    claim id → what the suite changed, in words, for its verdict)."""
    if selection is None:
        return list(claims), [], {}
    listed = set(selection.claims)
    keep, dropped, changed = [], [], {}
    for c in claims:
        name = _NAME_OF.get(c.id)
        if listed and name is not None and name not in listed and c.group != "ablation":
            dropped.append(c.id)
            continue
        if name is not None and name in selection.thresholds:
            field_name = "epsilon" if c.kind == "bound" else "threshold"
            value, registry = selection.thresholds[name], getattr(c, field_name)
            if value != registry:
                changed[c.id] = (f"{field_name} {value:g} from the suite (thresholds.{name}); the claims file's is "
                                 f"{registry:g}")
                c = c.model_copy(update={field_name: value})
        keep.append(c)
    return keep, dropped, changed

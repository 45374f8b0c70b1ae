"""What was run, and whether it was a fair experiment: regime, per-arm settings, convergence.

Computed from the records (their suite config and metrics), never from the suite file on disk:
a report judges the runs that were stored. The recorded `lr` of each run is checked against the
configured one, so runs of an older eitp-bench that gave arms their own lr are caught too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from eitp_bench.analysis import selection


@dataclass
class Experiment:
    """One configuration's regime, settings per arm and convergence counts."""

    suite: str
    config_hash: str
    regime: str  # "paper" (pretrained GPT-2 on WikiText-2), "synthetic", "text" or "unknown"
    regime_text: str
    smoke: bool = False
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # arm → setting → value
    differ: dict[str, dict[str, Any]] = field(default_factory=dict)  # setting → arm → value (not the loss)
    chosen_lr: dict[str, list[float]] = field(default_factory=dict)  # lr_policy tuned: arm → chosen lrs
    convergence: dict[str, tuple[int, int]] = field(default_factory=dict)  # arm → (reached, runs)
    target: Optional[str] = None
    note: Optional[str] = None  # why settings could not be read, if so
    # a stored config that no longer validates: the arms' fairness cannot be checked, so no comparison
    # between arms is issued (findings marks those verdicts NOT COMPARABLE with this reason)
    unchecked: Optional[str] = None
    selection: Optional[Any] = None  # analysis.selection.Selection: the suite's claims / thresholds keys

    @property
    def setting_names(self) -> list[str]:
        return list(dict.fromkeys(k for s in self.settings.values() for k in s))


def describe_experiment(suite: str, config_hash: str, config: Optional[dict], metrics) -> Experiment:
    """The Experiment of one configuration from its stored config and its runs' metrics."""
    from eitp_bench.analysis.claims import convergence_counts

    arms = sorted(map(str, metrics["arm"].unique())) if len(metrics) else []
    exp = Experiment(suite, config_hash, "unknown", "regime unknown (no suite config stored with these runs)")
    exp.convergence = convergence_counts(metrics[metrics["status"] == "ok"] if "status" in metrics.columns else metrics,
                                         "train")
    if not config:
        exp.note = "no suite config stored: arms' settings cannot be compared"
        return exp
    from pydantic import ValidationError

    from eitp_bench.suite import Suite, effective_settings, unequal_settings

    try:
        suite_cfg = Suite.model_validate(config)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        exp.note = (f"the stored suite config does not validate under this version ({err.error_count()} problems, "
                    f"e.g. {where}: {first['msg']})")
        exp.unchecked = (f"{exp.note}: the arms' settings cannot be checked for fairness, so no comparison between "
                         "arms is issued (report these runs with the eitp-bench version that stored them, or rerun)")
        return exp
    exp.regime, exp.regime_text = _regime(suite_cfg)
    exp.selection = selection.from_config(suite_cfg)
    t = suite_cfg.train
    exp.regime_text += (f"; scale: {'/'.join(suite_cfg.sizes)} model, {suite_cfg.repetitions} rounds per arm configured, "
                        f"{t.steps} training steps × batch {t.batch_size} on {suite_cfg.device}")
    exp.smoke = suite_cfg.kind == "smoke"
    exp.settings = {arm: effective_settings(suite_cfg, arm) for arm in arms if arm in suite_cfg.arms}
    _check_recorded_lr(exp, metrics)
    exp.differ = unequal_settings(exp.settings)
    exp.target = next((s.get("target") for s in exp.settings.values() if s.get("target")), None)
    return exp


def _regime(suite) -> tuple[str, str]:
    data, pretrained = suite.data, suite.pretrained
    if data.kind == "wikitext2" and pretrained:
        return "paper", f"the paper's regime: pretrained {pretrained} fine-tuned on WikiText-2 (block {data.block_size})"
    if data.kind == "markov":
        weights = "fresh GPT-2 weights"
        return "synthetic", (f"synthetic regime: {weights} on a seeded Markov corpus with a known optimum "
                             "(not the paper's pretrained GPT-2 on WikiText-2)")
    weights = f"pretrained {pretrained}" if pretrained else "fresh GPT-2 weights"
    return "text", f"{weights} on {data.kind} ({data.text_file or 'WikiText-2'}) — not the paper's exact regime"


def _check_recorded_lr(exp: Experiment, metrics) -> None:
    """Replace the configured lr with what each arm's runs recorded (they must agree when equal)."""
    from eitp_bench.suite.arms import COMPRESSION_ARMS

    rows = metrics[(metrics["name"] == "lr")]
    if "task" in rows.columns:  # compressed arms record the lr of the model they compress in `compress`
        rows = rows[(rows["task"] == "train") | ((rows["task"] == "compress") & rows["arm"].isin(COMPRESSION_ARMS))]
    for arm, settings in exp.settings.items():
        values = sorted({float(v) for v in rows.loc[rows["arm"] == arm, "value"]})
        if not values:
            continue
        if settings.get("lr_policy") == "tuned":
            exp.chosen_lr[arm] = values
            continue
        settings["lr"] = values[0] if len(values) == 1 else json.dumps(values)

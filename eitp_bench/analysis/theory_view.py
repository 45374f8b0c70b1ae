"""What the theory sections show, read from the frames: medians (or the largest, smallest value) of a metric
over repetitions per arm, the first of several metric names present, per-distance series, and the joule
methods of the generate task's headline windows, and what the sections compute from them (Theorem 2's
consistency check per arm, the energy ladder's rungs). report/theory_sections.py renders them; like
training_view.py, nothing here writes HTML.
"""

from __future__ import annotations

from typing import Optional

from eitp_bench import names


def ok_metrics(frames):
    m = frames.metrics
    if m is None or len(m) == 0:
        return None
    return m[m["status"] == "ok"] if "status" in m.columns else m


def per_arm(m, name: str) -> dict[str, float]:
    """Median of metric `name` over repetitions, per arm."""
    if m is None:
        return {}
    rows = m[m["name"] == name]
    return {str(a): float(v) for a, v in rows.groupby("arm")["value"].median().items()}


def per_arm_max(m, name: str) -> dict[str, float]:
    """Largest value of metric `name` over repetitions, per arm (for flags: set in any repetition)."""
    if m is None:
        return {}
    rows = m[m["name"] == name]
    return {str(a): float(v) for a, v in rows.groupby("arm")["value"].max().items()}


def per_arm_min(m, name: str) -> dict[str, float]:
    """Smallest value of metric `name` over repetitions, per arm."""
    if m is None:
        return {}
    rows = m[m["name"] == name]
    return {str(a): float(v) for a, v in rows.groupby("arm")["value"].min().items()}


def first_present(m, candidates: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Per arm, the first of `candidates` present, and which one (so an estimate says it is one)."""
    values, which = {}, {}
    for name in candidates:
        for arm, v in per_arm(m, name).items():
            if arm not in values:
                values[arm], which[arm] = v, name
    return values, which


def theory_frames(frames):
    """Frames of what the theory sections read, and nothing more: the metrics and the generate task's energy
    entries (`generate_methods`). The report draws those sections from these, the runs, their provenance and
    the other energy entries let go first: matplotlib's first figure is the page's largest passing cost, and
    at 1 000 000 records it was drawn on top of 25 MiB of runs read."""
    from eitp_bench.analysis.frames import Frames

    e = frames.energy
    if e is not None and len(e) and "task" in e.columns:
        e = e[e["task"] == "generate"]
    return Frames(None, frames.metrics, e, None, source=frames.source, configs=frames.configs,
                  not_finite=frames.not_finite)


def generate_methods(frames) -> dict[str, str]:
    """Per arm, the joule methods seen in the generate task's headline (sample, batch 1) windows."""
    e = frames.energy
    if e is None or len(e) == 0:
        return {}
    e = e[(e["task"] == "generate") & e["joules"].notna() & e["window"].astype(str).str.startswith("generate")]
    head = e[e["window"].astype(str) == names.headline_generate_window()]
    e = head if len(head) else e
    return {str(a): ", ".join(sorted(set(g["method"]))) for a, g in e.groupby("arm")}


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return a / b if a is not None and b else None


def series(m, prefix: str) -> dict[str, dict[int, float]]:
    """arm → {L: median} for metrics named `<prefix>@L`."""
    if m is None:
        return {}
    rows = m[m["name"].astype(str).str.startswith(prefix + "@")]
    out: dict[str, dict[int, float]] = {}
    for (arm, name), g in rows.groupby(["arm", "name"]):
        try:
            L = int(str(name).split("@", 1)[1])
        except ValueError:
            continue
        out.setdefault(str(arm), {})[L] = float(g["value"].median())
    return out


def theorem2_checks(m, e_min_metric: str) -> dict[str, dict]:
    """Theorem 2's consistency check (theory/param_entropy.theorem_checks) per arm with an E_min: the arm's
    measured training joules (median) against its E_min over `e_min_metric`'s codes. Theorem 3 is a claim:
    the claims judge decides it, not this view."""
    from eitp_bench.theory.param_entropy import theorem_checks

    measured = per_arm(m, "train_joules")
    return {arm: theorem_checks(measured.get(arm), bound)["theorem_2"]
            for arm, bound in per_arm(m, e_min_metric).items() if bound is not None}


def energy_ladder(m, temperature_k: float, profile) -> Optional[list[dict]]:
    """The energy ladder's rungs (theory/ladder.py) with this suite's inference and training-step joules per
    arm added (medians; an estimate says so); None when the suite stored neither."""
    from eitp_bench.theory.ladder import ladder_rungs

    extra = []
    for metrics, per, what in ((["joules_per_token", names.estimated("joules_per_token")], "token", "inference"),
                               (["train_joules_per_step", names.estimated("train_joules_per_step")], "step",
                                "training step")):
        values, which = first_present(m, metrics)
        for arm, v in sorted(values.items()):
            est = names.is_estimated(which[arm])
            extra.append({"name": f"{arm}: {what}{' (ESTIMATED)' if est else ''}", "joules": v, "per": per,
                          "method": "estimated" if est else "measured", "source": "this suite"})
    return ladder_rungs(temperature_k, profile=profile, extra=extra) if extra else None

"""Build the one-file HTML report from the store's frames.

Everything the page shows is computed here from frames (runs, metrics, energy,
timeline, optional provenance); the template only lays it out. Jinja autoescapes
every string; only the SVG markup we generate ourselves is marked safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

from eitp_bench.errors import UserError

ADDITIVE_DOMAINS = ("gpu", "package", "dram")  # never add core/uncore/psys into a total
HIGH_CV = 0.10
BADGE = {"VERIFIED": "ok", "REFUTED": "bad", "INCONCLUSIVE": "warn", "NOT MEASURED": "grey", "NO DATA": "grey",
         "NOT COMPARABLE": "bad"}


@dataclass
class Frames:
    runs: Any
    metrics: Any
    energy: Any
    timeline: Any
    provenance: Any = None  # one row per run: run_id + provenance fields, when the store provides it
    source: str = "frames"
    configs: dict = None  # suite_config_hash → the stored suite config (None: unknown)


def load_frames(store_or_frames=None) -> Frames:
    """Frames from a Frames, a dict of frames, a Store, or a store path/URL (None: the default store)."""
    import pandas as pd

    if isinstance(store_or_frames, Frames):
        return store_or_frames
    if isinstance(store_or_frames, dict):
        empty = pd.DataFrame()
        return Frames(*(store_or_frames.get(k, empty) for k in ("runs", "metrics", "energy", "timeline")),
                      provenance=store_or_frames.get("provenance"), source="frames",
                      configs=store_or_frames.get("configs"))
    store = store_or_frames
    if store is None or isinstance(store, (str, Path)):
        try:
            from eitp_bench.store import Store
        except ImportError as err:  # pragma: no cover - until the store lands
            raise UserError(f"the results store is not available ({err})", fix="install eitp-bench completely") from None
        store = Store.open(str(store) if store is not None else None, create=False)  # a typo is not a new store
    provenance = store.provenance_frame() if hasattr(store, "provenance_frame") else None
    return Frames(store.runs_frame(), store.metrics_frame(), store.energy_frame(), store.timeline_frame(),
                  provenance=provenance, source=str(getattr(store, "path", store_or_frames or "default store")),
                  configs=store.configs() if hasattr(store, "configs") else None)


def _for_suite(frames: Frames, suite: Optional[str]) -> Frames:
    if frames.runs is None or len(frames.runs) == 0:
        raise UserError(f"no runs in {frames.source}: nothing to report",
                        fix="run a suite first (eitp-bench run SUITE) or point --store at a results store")
    if suite is None:
        return frames
    if suite not in set(frames.runs["suite"]):
        known = ", ".join(sorted(set(frames.runs["suite"]))[:10])
        raise UserError(f"no runs of suite {suite!r} in {frames.source}", fix=f"use one of: {known}")
    return only_runs(frames, set(frames.runs.loc[frames.runs["suite"] == suite, "run_id"]))


def only_runs(frames: Frames, run_ids: set) -> Frames:
    """The frames restricted to these runs."""

    def keep(df):
        return df if df is None or len(df) == 0 else df[df["run_id"].isin(run_ids)]

    return Frames(keep(frames.runs), keep(frames.metrics), keep(frames.energy), keep(frames.timeline),
                  keep(frames.provenance), frames.source, frames.configs)


def build_report(store_or_frames, *, suite: Optional[str] = None,
                 extra_sections: Iterable[tuple[str, str]] = (), claims="eitp", n_resamples: int = 10_000,
                 max_groups: int = 5, theory: bool = True) -> str:
    """The whole report as one self-contained HTML string.

    Verdicts are judged per (suite, hardware profile); only the `max_groups` most recent
    groups are judged and drawn (the rest are listed), so a store of many nightly suites stays fast.
    """
    from markupsafe import Markup

    from eitp_bench.claims import ClaimSet, load_claims

    frames = _for_suite(load_frames(store_or_frames), suite)
    claim_set = claims if isinstance(claims, ClaimSet) else load_claims(claims)
    groups, omitted = _verdict_groups(frames, claim_set, n_resamples, max_groups)
    extra_sections = list(extra_sections)
    if theory:  # measured joules against the physical floors, when the suite ran the theory tasks
        from eitp_bench.report.theory_sections import theory_sections

        extra_sections += theory_sections(frames, temperature_k=_heat_sink_k(frames))
    context = {
        "title": f"eitp-bench report — {suite}" if suite else "eitp-bench report",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": frames.source,
        "paper": claim_set.paper,
        "summary": _summary(frames),
        "groups": groups,
        "omitted_groups": omitted,
        "badge": BADGE,
        "distributions": [Markup(s) for s in _distributions(frames, groups)],
        "timelines": [Markup(s) for s in _timelines(frames)],
        "energy_table": _energy_table(frames),
        "energy_svg": Markup(_energy_svg(frames)),
        "pareto": [Markup(s) for s in _pareto(frames)],
        "environment": _environment(frames),
        "warnings": _warnings(frames),
        # Extra sections come from our own code (theory, regress) and are trusted HTML; titles are escaped.
        "extra_sections": [(title, Markup(body)) for title, body in extra_sections],
    }
    return _env().get_template("report.html.j2").render(**context)


def _heat_sink_k(frames: Frames) -> float:
    """The heat-sink temperature the theory task used (the same for every run), else 300 K."""
    m = frames.metrics
    if m is not None and len(m):
        t = m.loc[m["name"] == "heat_sink_temperature_k", "value"]
        if len(t):
            return float(t.median())
    return 300.0


def write_report(store_or_frames, out: str | Path = "report.html", **kwargs) -> Path:
    path = Path(out)
    text = build_report(store_or_frames, **kwargs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot write report to {path}: {err.strerror}", fix="choose a writable --out path") from None
    return path


def _env():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("eitp_bench", "report/templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    return env


def _num(value, digits: int = 3) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:.{digits}g}"


# ---------------------------------------------------------------- sections


def _summary(frames: Frames) -> dict:
    runs = frames.runs
    return {
        "suites": sorted(map(str, runs["suite"].unique())),
        "runs": len(runs),
        "ok": int((runs["status"] == "ok").sum()),
        "failed": int((runs["status"] != "ok").sum()),
        "arms": sorted(map(str, runs["arm"].unique())),
        "tasks": sorted(map(str, runs["task"].unique())),
        "profiles": sorted(map(str, runs["hardware_profile_id"].dropna().unique())),
        "config_hashes": sorted(map(str, runs["suite_config_hash"].unique())),
    }


def _verdict_groups(frames: Frames, claim_set, n_resamples, max_groups) -> tuple[list[dict], list[str]]:
    """One verdict table per (suite, configuration, hardware profile): claims are never judged across
    machines or across different configurations that share a suite name."""
    from eitp_bench.analysis.experiment import describe_experiment
    from eitp_bench.claims import judge_claims

    metrics, energy = frames.metrics, frames.energy
    if len(metrics) == 0:
        return [], []
    keys = ["suite", "suite_config_hash", "hardware_profile_id"]
    metrics = metrics.assign(hardware_profile_id=metrics["hardware_profile_id"].fillna("unknown"))
    if energy is not None and len(energy):
        energy = energy.assign(hardware_profile_id=energy["hardware_profile_id"].fillna("unknown"))
    latest = metrics.groupby(keys, dropna=False, sort=False)["started_at"].max().sort_values(ascending=False)
    omitted = [f"{s} ({h[:8]}) · {p}" for s, h, p in latest.index[max_groups:]]
    groups = []
    by_key = dict(iter(metrics.groupby(keys, dropna=False, sort=False)))
    for suite, config_hash, profile in latest.index[:max_groups]:  # most recent first
        m = by_key[(suite, config_hash, profile)]
        e = energy
        if energy is not None and len(energy):
            e = energy[(energy["suite_config_hash"] == config_hash) & (energy["hardware_profile_id"] == profile)]
        experiment = describe_experiment(str(suite), str(config_hash), (frames.configs or {}).get(config_hash), m)
        arms = set(map(str, m["arm"].unique()))
        claims = [c for c in claim_set.claims if c.candidate in arms and (c.baseline is None or c.baseline in arms)]
        not_run = [c.id for c in claim_set.claims if c not in claims]
        verdicts = judge_claims(m, e, claims, settings=experiment.settings or None, n_resamples=n_resamples)
        groups.append({
            "suite": str(suite), "config_hash": str(config_hash), "profile": str(profile), "metrics": m,
            "verdicts": [v for v in verdicts if v.claim.group != "ablation"],
            "ablation": _ablation_table([v for v in verdicts if v.claim.group == "ablation"]),
            "experiment": experiment, "claims_not_run": not_run,
        })
    return groups, omitted


def _ablation_table(verdicts: list) -> list[dict]:
    """The paper's ablation table beside ours: one row per component, one cell per aspect."""
    rows: dict[str, dict] = {}
    for v in verdicts:
        row = rows.setdefault(v.claim.component or v.claim.candidate, {"component": v.claim.component,
                                                                      "arm": v.claim.candidate, "cells": {}})
        row["cells"][v.claim.aspect or v.claim.id] = v
    return list(rows.values())


def _distributions(frames: Frames, groups: list[dict]) -> list[str]:
    """Box/strip plots of each claim metric, for the most recent group only (figures are the slow part)."""
    from eitp_bench.report import plots

    out, seen = [], set()
    for g in groups[:1]:
        m = g["metrics"]
        m = m[m["status"] == "ok"] if "status" in m.columns else m
        for v in g["verdicts"]:
            c = v.claim
            if v.metric is None or (g["suite"], g["profile"], c.task, v.metric) in seen:
                continue
            seen.add((g["suite"], g["profile"], c.task, v.metric))
            rows = m[(m["name"] == v.metric) & ((m["task"] == c.task) if c.task else True)]
            arms = [a for a in (c.candidate, c.baseline) if a] + sorted(set(rows["arm"]) - {c.candidate, c.baseline})
            samples = {a: rows.loc[rows["arm"] == a, "value"].to_numpy() for a in arms}
            samples = {a: s for a, s in samples.items() if len(s)}
            if samples:
                unit = str(rows["unit"].iloc[0]) if "unit" in rows.columns and len(rows) else ""
                out.append(plots.distribution(samples, title=f"{c.task}: {v.metric}\n{g['suite']} · {g['profile']}",
                                              unit=unit))
    return out


def _timelines(frames: Frames, max_runs: int = 6) -> list[str]:
    from eitp_bench.report import plots

    tl = frames.timeline
    if tl is None or len(tl) == 0:
        return []
    out = []
    for device, d in tl.groupby("device", sort=True):
        run_ids = list(dict.fromkeys(d["run_id"]))[:max_runs]
        series = {}
        for (run_id, domain), r in d[d["run_id"].isin(run_ids)].groupby(["run_id", "domain"], sort=False):
            label = f"{r['arm'].iloc[0]} {r['task'].iloc[0]} {str(run_id)[:6]} {domain}"
            r = r.sort_values("t")
            series[label] = (r["t"].to_numpy(), r["watts"].to_numpy())
        out.append(plots.timelines(series, title=f"power on {device} (first {len(run_ids)} runs)"))
    return out


def _ok_energy(frames: Frames):
    e = frames.energy
    if e is None or len(e) == 0:
        return None
    return e[e["status"] == "ok"] if "status" in e.columns else e


def _energy_table(frames: Frames) -> list[dict]:
    """Median gross and net-of-idle joules per (task, arm, window, device, domain, method)."""
    e = _ok_energy(frames)
    if e is None:
        return []
    keys = ["hardware_profile_id", "task", "arm", "window", "device", "domain", "method", "meter"]
    e = e.assign(hardware_profile_id=e["hardware_profile_id"].fillna("unknown"))
    agg = e.groupby(keys, dropna=False, sort=True).agg(
        n=("run_id", "size"), valid=("joules", "count"), joules=("joules", "median"),
        net=("net_joules", "median"), idle=("idle_watts", "median"), seconds=("duration_s", "median"))
    return agg.reset_index().to_dict("records")


def _measured_additive(frames: Frames):
    from eitp_bench.records import MEASURED_METHODS

    e = _ok_energy(frames)
    if e is None:
        return None
    e = e[e["method"].isin(MEASURED_METHODS) & e["joules"].notna() & e["domain"].isin(ADDITIVE_DOMAINS)]
    return e if len(e) else None


def _energy_svg(frames: Frames) -> str:
    from eitp_bench.report import plots

    e = _measured_additive(frames)
    if e is None:
        return ""
    e = e.assign(hardware_profile_id=e["hardware_profile_id"].fillna("unknown").astype(str))
    per = e.groupby(["hardware_profile_id", "task", "arm", "window", "device", "domain"],
                    sort=True)["joules"].median().reset_index()
    per["group"] = (per["hardware_profile_id"] + ": " + per["task"] + " / " + per["window"].astype(str) + " / "
                    + per["arm"])
    per["channel"] = per["device"] + " " + per["domain"]
    return plots.energy_bars(per, title="energy breakdown (median per repetition, counter/sampled only)")


def _pareto(frames: Frames, max_plots: int = 4) -> list[str]:
    from eitp_bench.report import plots

    e = _measured_additive(frames)
    if e is None:
        return []
    e = e.assign(hardware_profile_id=e["hardware_profile_id"].fillna("unknown").astype(str))
    per_run = e.groupby(["hardware_profile_id", "task", "window", "arm", "run_id"], sort=True).agg(
        joules=("joules", "sum"), seconds=("duration_s", "max")).reset_index()
    out = []
    groups = per_run.groupby(["hardware_profile_id", "task", "window"], sort=True)
    for (profile, task, window), pts in list(groups)[:max_plots]:  # never mix machines on one frontier
        pts = pts.assign(label=pts["arm"])
        med = pts.groupby("label")[["seconds", "joules"]].median().sort_values(["seconds", "joules"])
        frontier, best = [], float("inf")
        for label, row in med.iterrows():  # faster first; keep only arms that also save energy
            if row["joules"] < best:
                frontier.append(row)
                best = row["joules"]
        import pandas as pd

        out.append(plots.pareto(pts, pd.DataFrame(frontier), title=f"time vs energy: {task} / {window} ({profile})"))
    return out


def _environment(frames: Frames) -> list[dict]:
    """Each provenance field with its distinct values (and counts): a mixed environment shows at once."""
    p = frames.provenance
    if p is None or len(p) == 0:
        p = frames.runs[["hardware_profile_id", "device", "suite_config_hash"]]
    rows = []
    for col in p.columns:
        if col == "run_id":
            continue
        counts = p[col].fillna("—").astype(str).value_counts()
        rows.append({"field": col, "seen": [(v, int(n)) for v, n in counts.head(6).items()],
                     "more": max(0, len(counts) - 6)})
    return rows


def _warnings(frames: Frames) -> dict:
    runs = frames.runs
    failed = runs[runs["status"] != "ok"]
    out = {"failed": failed[["suite", "arm", "task", "repetition", "status", "error"]].head(50).to_dict("records"),
           "failed_total": len(failed), "flags": [], "estimated": [], "high_cv": []}
    e = _ok_energy(frames)
    if e is not None:
        flagged = e[e["flags"].map(len) > 0]  # flags: list of codes, flag_messages: their messages
        if len(flagged):
            split = flagged.explode(["flags", "flag_messages"]).rename(columns={"flags": "code", "flag_messages": "flag"})
            counts = split.groupby(["meter", "device", "domain", "code", "flag"], sort=True).size()
            out["flags"] = [dict(zip(["meter", "device", "domain", "code", "flag"], k), n=int(n))
                            for k, n in counts.items()]
        est = e[e["method"] == "estimated"]
        if len(est):
            counts = est.groupby(["task", "arm", "window"], sort=True).size()
            out["estimated"] = [dict(zip(["task", "arm", "window"], k), n=int(n)) for k, n in counts.items()]
    m = frames.metrics
    if len(m):
        m = m[m["status"] == "ok"] if "status" in m.columns else m
        g = m.groupby(["suite", "task", "arm", "name", "hardware_profile_id"], dropna=False, sort=True)["value"]
        stats = g.agg(["count", "mean", "std"]).reset_index()
        stats["cv"] = stats["std"] / stats["mean"].abs()
        high = stats[(stats["count"] >= 2) & (stats["cv"] > HIGH_CV)]
        out["high_cv"] = high.sort_values("cv", ascending=False).to_dict("records")
    return out

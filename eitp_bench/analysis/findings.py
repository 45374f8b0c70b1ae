"""Findings: everything a report, `report --json`, compare or regress shows, computed in one place.

`analyse(frames, claims)` groups runs by configuration hash and hardware profile (never by suite
name alone), describes each experiment (regime, settings, convergence), asks the claims judge — the
only place a verdict is made — and prepares every table and every plot's data. Renderers (HTML, JSON)
compute nothing.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Optional

from eitp_bench.analysis.experiment import Experiment, describe_experiment
from eitp_bench.analysis.frames import Frames
from eitp_bench.analysis.per_object import counts_per_object
from eitp_bench.analysis.task_tables import task_tables

ADDITIVE_DOMAINS = ("gpu", "package", "dram")  # never add core/uncore/psys into a total
# The ablation table's columns: the claim aspect and what it is judged on. The paper's "speed" column is
# judged as training time to the target loss (the ablation claims' metric), not inference speed.
ABLATION_COLUMNS = {"speed": "training time to target (paper: speed)",
                    "energy": "training joules to target (paper: energy)",
                    "accuracy": "next-token validation accuracy (paper: accuracy)"}
HIGH_CV = 0.10


@dataclass
class GroupFindings:
    """One configuration on one machine: what ran, how fair it was, and the verdict per claim."""

    suite: str
    config_hash: str
    profile: str
    experiment: Experiment
    verdicts: list  # claims.Verdict, headline claims
    ablation: list[dict]  # one row per component: {component, arm, cells: {aspect: Verdict}}
    claims_not_run: list[str]
    claims_not_selected: list[str] = field(default_factory=list)  # run, but not in the suite's `claims:` list
    tables: list = field(default_factory=list)  # task_tables.Table: what each task measured per arm
    batches_warning: Optional[str] = None  # several batches of one configuration: possible top-ups
    metrics: Any = field(repr=False, default=None)  # the group's metrics frame (for plots)
    # isolation check per arm: {repetitions, gpu_shared, cpu_busy} (counts of repetitions)
    isolation: dict = field(default_factory=dict)
    # measured energy windows with a FAULT code (skipped by the judge), per code: {code: windows}
    energy_skipped: dict = field(default_factory=dict)
    scope: Any = None  # scope.Scope: the setting every verdict of this group is about
    # training_view: loss curves, energy per arm, time per step / to target (data for the pictures)
    curves: list = field(default_factory=list)
    arm_energy: list = field(default_factory=list)
    training_time: list = field(default_factory=list)
    step_times: dict = field(default_factory=dict)
    co2: dict = field(default_factory=dict)  # co2.co2_per_arm: measured joules × grid intensity
    # the hardware state the group's runs share (analysis/hwstate.py): its label, the NOT COMPARABLE note
    # when the same configuration also ran under another state, and per arm {state, boards, windows,
    # throttled_windows, max_temperature_c}
    hardware_state: str = ""
    not_pooled: Optional[str] = None
    arm_hardware: dict = field(default_factory=dict)
    # the suite's own proof (analysis/self_check.py): {"aa": {...}, "planted": {...}} for the control arms run
    self_check: dict = field(default_factory=dict)

    @property
    def ablation_columns(self) -> dict[str, str]:
        """aspect → the column's label (what the aspect is judged on)."""
        return ABLATION_COLUMNS


@dataclass
class Findings:
    source: str
    paper: str
    summary: dict
    groups: list[GroupFindings]
    omitted_groups: list[str]
    distributions: list[dict]  # {title, unit, samples: {arm: array}} for the most recent group
    timelines: list[dict]  # {title, series: {label: (t, watts)}}
    energy_table: list[dict]
    energy_breakdown: Any  # frame of median joules per group × channel, or None
    pareto: list[dict]  # {title, points, frontier}
    environment: list[dict]
    warnings: dict
    heat_sink_k: float = 300.0
    statement: str = ""  # every statistical choice, in one paragraph
    scoped: bool = False  # from frames.load_newest: only the verdicts and what to_json shows are computed
    # frames.load_newest's frames with the page's sections: which runs those sections describe
    # ({"groups", "runs_read", "runs_not_read"}); None when every run of the store (or suite) was read
    coverage: Optional[dict] = None
    # the frames the page's metric sections read: the runs read, with their metrics as rounds (a round's
    # copies combined, resultset.ResultSet.page_rounds); report/build.py's theory and time sections use them
    page_frames: Any = field(default=None, repr=False, compare=False)


    def to_json(self) -> dict:
        """The findings as plain JSON (the report's --json): groups and one verdict row per claim."""
        return {
            "source": self.source,
            "paper": self.paper,
            "groups": [
                {
                    "suite": g.suite,
                    "config_hash": g.config_hash,
                    "hardware": g.profile,
                    "regime": g.experiment.regime,
                    "regime_text": g.experiment.regime_text,
                    "smoke": g.experiment.smoke,
                    "unequal_settings": g.experiment.differ,
                    "convergence": {a: {"reached": r, "runs": n} for a, (r, n) in g.experiment.convergence.items()},
                    "scope": g.scope.to_json() if g.scope else None,
                    "verdicts": [verdict_json(v, g.scope) for v in g.verdicts]
                    + [verdict_json(v, g.scope) for row in g.ablation for v in row["cells"].values()],
                    # the Holm families of this configuration × hardware (the report states them)
                    "multiplicity": multiplicity_families(
                        list(g.verdicts) + [v for row in g.ablation for v in row["cells"].values()]),
                    "ablation_columns": g.ablation_columns if g.ablation else {},
                    "claims_not_run": g.claims_not_run,
                    "claims_not_selected": g.claims_not_selected,
                    "suite_selection": g.experiment.selection.as_json() if g.experiment.selection else None,
                    "tables": [t.to_json() for t in g.tables],
                    "batches_warning": g.batches_warning,
                    "isolation": g.isolation,
                    "energy_windows_skipped": g.energy_skipped,
                    "training_time": g.training_time,
                    "co2": {k: v for k, v in g.co2.items()},
                    "hardware_state": g.hardware_state,
                    "not_pooled": g.not_pooled,
                    "arm_hardware": g.arm_hardware,
                    "self_check": g.self_check,
                }
                for g in self.groups
            ],
            "omitted_groups": self.omitted_groups,
            # the first screen's self-checks: the most recent group's (every group carries its own)
            "self_check": self.groups[0].self_check if self.groups else {},
            "metrics_not_finite": self.warnings.get("not_finite", []),  # NaN/inf values left out of every figure
            "statistics": self.statement,
        }


def verdict_json(v, scope=None) -> dict:
    def num(x):  # NaN and ±∞ are not JSON: null (an unbounded interval side is said in `ci_unbounded`)
        return None if x is None or not math.isfinite(x) else float(x)

    return {
        "claim": v.claim.id,
        "group": v.claim.group,
        "verdict": v.verdict,
        "effect": num(v.ratio),
        "ci": [num(v.ci_low), num(v.ci_high)] if v.ci_low is not None else None,
        "p": num(v.p_value),
        "p_adjusted": num(getattr(v, "p_adjusted", None)),
        "n": [v.n_candidate, v.n_baseline],
        "rounds": getattr(v, "n_rounds", None),  # distinct rounds behind the verdict (copies counted once)
        "batches": getattr(v, "n_batches", None),  # batches that stored them
        "metric": v.metric,
        "why": v.reason,
        "instrument": getattr(v, "resolution", None),
        "isolation": getattr(v, "isolation", None),
        "throttled": getattr(v, "throttled", None),  # the throttled windows an energy/speed claim skipped
        **_multiplicity_json(v),
        # the setting the verdict is about; `verdict_here` words it ("REFUTED here — synthetic regime, …")
        "scope": scope.to_json() if scope else None,
        "verdict_here": " ".join(filter(None, [v.verdict, scope.qualifier() if scope else ""])),
    }


def _multiplicity_json(v) -> dict:
    """The verdict rules' figures (issue 17): both one-sided p-values, raw and Holm-adjusted, the
    family they were adjusted across, the design, and censored runs per arm for to-target claims."""
    def num(x):  # NaN and None alike: JSON null
        return None if x is None or x != x else float(x)

    unbounded = [side for side, x, edge in (("below", v.ci_low, 0.0), ("above", v.ci_high, math.inf))
                 if x is not None and (x == edge or x == -math.inf)]
    return {
        "ci_unbounded": unbounded or None,  # a censored to-target interval open on this side
        "design": getattr(v, "design", None),
        "p_verify": num(getattr(v, "p_threshold", None)),
        "p_refute": num(getattr(v, "p_refute", None)),
        "p_refute_adjusted": num(getattr(v, "p_refute_adjusted", None)),
        "family": getattr(v, "family", None),
        "censored": getattr(v, "censored", None),
    }


def multiplicity_families(verdicts) -> dict:
    """{group: {"claims": [ids], "size": m, "rule": …}}: which claims each Holm family held."""
    out = {}
    for v in verdicts:
        if v.family and v.claim.group not in out:
            out[v.claim.group] = {"claims": list(v.family), "size": len(v.family),
                                  "rule": "Holm, each direction at α/2 = 0.025 on one-sided p-values: VERIFIED "
                                          "against 'does not clear', REFUTED against 'the claim holds'"}
    return out


def analyse(frames: Frames, claim_set, *, n_resamples: int = 10_000, max_groups: int = 5,
            sections: bool = False) -> Findings:
    """Every finding of a report over these frames (already restricted to the runs wanted). Frames of
    frames.load_newest give the verdicts only, unless `sections`: then the page's sections too, computed
    from the runs read, with `coverage` saying which runs those are."""
    from eitp_bench.analysis.resultset import ResultSet
    from eitp_bench.analysis.stats import methods_paragraph

    rs = ResultSet(frames)  # the rules (ok runs, comparability key, measured-only) applied once
    if frames.scope is not None:
        scoped = _scoped(frames.scope, frames.source, [rs], claim_set, n_resamples, max_groups)
        if not sections:
            return scoped
        scope = frames.scope
        coverage = {"groups": len(scoped.groups), "runs_read": len(frames.runs),
                    "runs_not_read": scope.runs_total - len(frames.runs)}
        page = _page_sections(frames, rs)
        # the frames hold no null metric row: the runs read's NaN/inf values were counted in SQL
        page["warnings"] = {**page["warnings"], "not_finite": scope.not_finite_read}
        return replace(scoped, scoped=False, coverage=coverage, **page)
    groups, omitted = _verdict_groups(rs, claim_set, n_resamples, max_groups)
    family = max((sum(v.claim.group == "headline" for v in g.verdicts) for g in groups), default=0)
    return Findings(
        statement=methods_paragraph(n_claims=family or None, resamples=n_resamples),
        source=frames.source,
        paper=claim_set.paper,
        groups=groups,
        omitted_groups=omitted,
        distributions=_distributions(groups),
        **_page_sections(frames, rs),
    )


def _page_sections(frames: Frames, rs) -> dict:
    """The report's sections over every run of the frames: summary, power timelines, energy tables,
    Pareto plots, environment, warnings, heat-sink temperature. Metrics are read as rounds (the round is
    the unit of replication: a nightly store's copies of one round are one repetition here too)."""
    from eitp_bench.analysis.resultset import measured_only
    from eitp_bench.analysis.hwstate import profile_per_state

    frames = replace(frames, metrics=rs.page_rounds)

    energy = profile_per_state(rs.energy)  # never one energy table across power limits (analysis/hwstate.py)
    measured = measured_only(energy)
    additive = measured[measured["domain"].isin(ADDITIVE_DOMAINS)] if measured is not None and len(measured) else None
    return dict(
        summary=_summary(frames),
        timelines=_timelines(frames),
        energy_table=_energy_table(energy),
        energy_breakdown=_energy_breakdown(additive),
        pareto=_pareto(additive),
        environment=_environment(frames),
        warnings=_warnings(frames, rs.energy),
        heat_sink_k=heat_sink_k(frames),
        page_frames=frames,
    )


def analyse_each(frames_each: Iterable[Frames], claim_set, *, n_resamples: int = 10_000,
                 max_groups: int = 5) -> Findings:
    """analyse() of load_newest's frames (the verdicts only) from frames.load_newest_each, which reads them
    one (configuration, profile) pair at a time: the same Findings, while one pair's runs are held. A
    frame read otherwise (no StoreScope: frames, dicts, stores without SQL) is analysed whole."""
    frames_each = iter(frames_each)
    first = next(frames_each)
    if first.scope is None:
        return analyse(first, claim_set, n_resamples=n_resamples, max_groups=max_groups)
    scope, source = first.scope, first.source
    result_sets = _pair_by_pair(first, frames_each)
    del first  # held by the result sets alone: let go once its pair is judged
    return _scoped(scope, source, result_sets, claim_set, n_resamples, max_groups)


def _pair_by_pair(frames: Optional[Frames], rest: Iterator[Frames]):
    """The ResultSet of each frames read, each let go before the next is read."""
    from eitp_bench.analysis.resultset import ResultSet

    while frames is not None:
        rs = ResultSet(frames)
        del frames
        yield rs
        del rs
        gc.collect()  # the frames sit in reference cycles: freed now, before the next pair is read
        frames = next(rest, None)


def _scoped(scope, source: str, result_sets, claim_set, n_resamples: int, max_groups: int) -> Findings:
    """The findings of frames that hold only the newest groups' runs (frames.load_newest, or
    load_newest_each a pair at a time): the verdicts, the omitted groups and the not-finite counts, all
    as a full read gives them. `result_sets`: those of the runs read, each judging the listed groups of the
    pairs its frames' StoreScope.pairs names. The whole-store sections (summary, energy tables,
    environment, the other warnings) are not computed from such frames: they stay empty and `scoped` says
    so (the HTML report reads every run)."""
    from eitp_bench.analysis.stats import methods_paragraph

    if max_groups > scope.max_groups:
        raise ValueError(f"frames hold the newest {scope.max_groups} groups, not {max_groups}")
    stored = [(g.config_hash, g.hardware_profile_id, g.energy_state) for g in scope.groups[:max_groups]]
    groups = []
    for rs in result_sets:
        wanted = [k for k in stored if k[:2] in rs.frames.scope.pairs]  # in the store's order: newest first
        groups += _judged(rs, _listed(rs, wanted), claim_set, n_resamples)
        del rs
    groups.sort(key=lambda g: stored.index((g.config_hash, g.profile, g.hardware_state)))
    if len(groups) != len(stored):
        raise RuntimeError(f"newest groups differ between the store ({stored}) and the groups judged")
    family = max((sum(v.claim.group == "headline" for v in g.verdicts) for g in groups), default=0)
    return Findings(
        statement=methods_paragraph(n_claims=family or None, resamples=n_resamples),
        source=source, paper=claim_set.paper, summary={}, groups=groups,
        omitted_groups=[g.label for g in scope.groups[max_groups:]], distributions=_distributions(groups),
        timelines=[], energy_table=[], energy_breakdown=None, pareto=[], environment=[],
        warnings={"not_finite": scope.not_finite}, scoped=True)


def _listed(rs, keys: list[tuple]) -> list:
    """The result set's groups of these keys (the store's listing of the newest groups), in that order. A
    group of the runs read that the listing does not have was stored after it (another machine of the fleet
    storing its night while the report reads): it waits for the next report. A listed group missing from
    the runs read means the SQL and the frames disagree on the groups: a bug, never a guess."""
    found = {(g.key.config_hash, g.key.hardware_profile_id, g.key.energy_state): g for g in rs.groups()}
    missing = [k for k in keys if k not in found]
    if missing:
        raise RuntimeError(f"groups listed by the store are not in the runs read: {missing} (read: {list(found)})")
    return [found[k] for k in keys]


def _verdict_groups(rs, claim_set, n_resamples, max_groups) -> tuple[list[GroupFindings], list[str]]:
    """One verdict table per comparability key (configuration hash × hardware profile), the newest
    `max_groups` of the result set, and the labels of the others."""
    all_groups = rs.groups()
    omitted = [f"{g.suite} ({g.key.config_hash[:8]}) · {g.key.hardware_profile_id}" for g in all_groups[max_groups:]]
    return _judged(rs, all_groups[:max_groups], claim_set, n_resamples), omitted


def _judged(rs, chosen: list, claim_set, n_resamples) -> list[GroupFindings]:
    """The verdict table of each of these groups of the result set, in their order: claims are never judged
    across machines or across different configurations that share a suite name."""
    from eitp_bench.analysis.claims import judge_claims
    from eitp_bench.analysis import training_view
    from eitp_bench.analysis.co2 import co2_per_arm
    from eitp_bench.analysis.hwstate import arm_states
    from eitp_bench.analysis.instrument import isolation_codes, isolation_counts, lags_for_judge, positions_of
    from eitp_bench.analysis.scope import group_scope
    from eitp_bench.analysis.selection import apply as apply_selection
    from eitp_bench.analysis.self_check import demote_on_aa_failure, self_checks

    positions = positions_of(rs.frames.provenance)  # the provenance's run ids, looked up by both
    instrument = lags_for_judge(rs.frames.provenance, positions)
    conditions = isolation_codes(rs.frames.provenance, positions)
    groups = []
    for g in chosen:  # most recent first
        m, e = g.rounds, g.energy  # copies of a round stored by several batches: one round (resultset.py)
        experiment = describe_experiment(g.suite, g.key.config_hash, g.config, m)
        arms = set(map(str, m["arm"].unique()))
        claims = [c for c in claim_set.claims if c.candidate in arms and (c.baseline is None or c.baseline in arms)]
        not_run = [c.id for c in claim_set.claims if c not in claims]
        # the suite's claims / thresholds keys, honoured (analysis/selection.py): its declared family
        claims, not_selected, changed = apply_selection(claims, experiment.selection)
        arm_energy = training_view.arm_energy(e)
        verdicts = judge_claims(m, e, claims, settings=experiment.settings or None, n_resamples=n_resamples,
                                instrument=instrument, conditions=conditions)
        verdicts = [_annotate(v, g.runs_behind, experiment, changed) for v in verdicts]
        checks = self_checks(m, e, claim_set, n_resamples=n_resamples, instrument=instrument)
        demote_on_aa_failure(verdicts, checks.get("aa"))  # a machine that tells A from A decides nothing
        groups.append(GroupFindings(
            g.suite, g.key.config_hash, g.key.hardware_profile_id, experiment,
            verdicts=[v for v in verdicts if v.claim.group != "ablation"],
            ablation=_ablation_table([v for v in verdicts if v.claim.group == "ablation"]),
            claims_not_run=not_run, claims_not_selected=not_selected, tables=task_tables(m), metrics=m,
            batches_warning=_batches(g.runs_behind), isolation=isolation_counts(g.runs_behind.runs(), conditions),
            energy_skipped=_energy_skipped(e),
            scope=group_scope(experiment, g.config, g.key.hardware_profile_id, m, rs.frames.provenance),
            curves=training_view.loss_curves(m), arm_energy=arm_energy,
            training_time=training_view.training_time(m), step_times=training_view.step_time_samples(m),
            co2=co2_per_arm(arm_energy, _co2_country(g.config)),
            hardware_state=g.key.energy_state, not_pooled=g.not_pooled,
            arm_hardware=arm_states(m, e, rs.frames.provenance),
            self_check=checks,
        ))
        g.runs_behind.forget()  # the group's verdicts are made: its runs' clock and codes are not needed again
    return groups


def _annotate(v, behind, experiment: Experiment, changed: dict[str, str]):
    """The verdict with what the suite changed (its threshold), NOT COMPARABLE where fairness cannot be
    checked, and what it rests on: distinct rounds, and the batches that stored them (`behind`: the
    stored runs behind the rounds, rounds.RunsBehind)."""
    from eitp_bench.analysis.rounds import evidence

    if v.claim.id in changed and changed[v.claim.id] not in v.reason:
        v.reason = f"{v.reason}; {changed[v.claim.id]}"
    if experiment.unchecked:
        v = _not_comparable(v, experiment.unchecked)
    arms = [a for a in (v.claim.candidate, v.claim.baseline) if a]
    # a bound claim's metric reads "x with y": its claimed metric names the rows
    v.n_rounds, v.n_batches = max(evidence(behind, v.claim.task, arms, name) for name in (v.metric, v.claim.metric))
    return v


def _not_comparable(v, why: str):
    """A comparison between arms whose fairness cannot be checked is not issued (NOT COMPARABLE, the reason
    and what the statistics would have said kept); verdicts that compare nothing are left as they are."""
    from eitp_bench.analysis.claims import NO_DATA, NOT_COMPARABLE, NOT_MEASURED

    if v.claim.baseline is None or v.verdict in (NO_DATA, NOT_MEASURED, NOT_COMPARABLE):
        return v
    v.reason = f"{why}; the statistics would say {v.verdict}: {v.reason}"
    v.verdict, v.plan = NOT_COMPARABLE, None
    return v


def _co2_country(config: Optional[dict]) -> Optional[str]:
    """The grid whose carbon intensity prices these joules: the suite's meters.co2_country, else
    $EITP_BENCH_COUNTRY (the country the reader says the machine ran in), else none."""
    import os

    return ((config or {}).get("meters") or {}).get("co2_country") or os.environ.get("EITP_BENCH_COUNTRY") or None


def _energy_skipped(energy) -> dict[str, int]:
    """Measured windows (run × window) carrying each FAULT code: what the energy judge skips."""
    from eitp_bench.analysis.resultset import measured_only
    from eitp_bench.flags import FAULT_CODES

    e = measured_only(energy)
    if e is None or len(e) == 0 or "flags" not in e.columns:
        return {}
    out: dict[str, set] = {}
    for run_id, window, codes in zip(e["run_id"].tolist(), e["window"].tolist(), e["flags"].tolist()):
        for code in set(codes or ()) & FAULT_CODES:
            out.setdefault(code, set()).add((run_id, window))
    return {code: len(ws) for code, ws in sorted(out.items())}


def _batches(behind) -> Optional[str]:
    """A warning when one configuration's runs came in several batches (possible top-ups)."""
    if len(behind) < 2 or not {"arm", "task", "size", "repetition", "started_at"} <= set(behind.columns):
        return None
    return behind.looks().warning


def _ablation_table(verdicts: list) -> list[dict]:
    """The paper's ablation table beside ours: one row per component, one cell per aspect."""
    rows: dict[str, dict] = {}
    for v in verdicts:
        row = rows.setdefault(v.claim.component or v.claim.candidate, {"component": v.claim.component,
                                                                      "arm": v.claim.candidate, "cells": {}})
        row["cells"][v.claim.aspect or v.claim.id] = v
    return list(rows.values())


def _distributions(groups: list[GroupFindings]) -> list[dict]:
    """Samples of each claim metric per arm, for the most recent group only (figures are the slow part)."""
    out, seen = [], set()
    for g in groups[:1]:
        m = g.metrics
        m = m[m["status"] == "ok"] if "status" in m.columns else m
        for v in g.verdicts:
            c = v.claim
            if v.metric is None or (c.task, v.metric) in seen:
                continue
            seen.add((c.task, v.metric))
            rows = m[(m["name"] == v.metric) & ((m["task"] == c.task) if c.task else True)]
            arms = [a for a in (c.candidate, c.baseline) if a] + sorted(set(rows["arm"]) - {c.candidate, c.baseline})
            samples = {a: rows.loc[rows["arm"] == a, "value"].to_numpy() for a in arms}
            samples = {a: s for a, s in samples.items() if len(s)}
            if samples:
                unit = str(rows["unit"].iloc[0]) if "unit" in rows.columns and len(rows) else ""
                out.append({"title": f"{c.task}: {v.metric}\n{g.suite} · {g.profile}", "unit": unit, "samples": samples})
    return out


def _timelines(frames: Frames, max_runs: Optional[int] = None) -> list[dict]:
    from eitp_bench.analysis.frames import PLOTTED_RUNS, plotted_timeline

    max_runs = PLOTTED_RUNS if max_runs is None else max_runs

    tl = plotted_timeline(frames, max_runs)  # from a store: only the points of the runs plotted are read
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
        out.append({"title": f"power on {device} (first {len(run_ids)} runs)", "series": series})
    return out


def _rank_keys(e) -> list[str]:
    """A multi-rank run has one entry per rank's sensor: gpu:0 of rank 0 and gpu:0 of rank 1 (or of
    another host) are different sensors whose joules add, never one channel to take a median over."""
    return [c for c in ("host", "rank") if c in e.columns]


def _energy_breakdown(e):
    """Median measured joules per machine × task × arm × window × channel (additive domains only)."""
    if e is None or len(e) == 0:
        return None
    ranks = _rank_keys(e)
    per = e.groupby(["hardware_profile_id", "task", "arm", "window", "device", "domain", *ranks],
                    sort=True, dropna=False)["joules"].median().reset_index()
    text = {c: per[c].astype(str) for c in ("hardware_profile_id", "task", "window", "arm", "device", "domain")}
    per["group"] = (text["hardware_profile_id"] + ": " + text["task"] + " / " + text["window"] + " / " + text["arm"])
    per["channel"] = text["device"] + " " + text["domain"]
    if "rank" in per.columns and per["rank"].notna().any():  # name each rank's sensor apart
        where = per["rank"].map(lambda r: "" if r != r or r is None else f" rank {int(r)}")
        if "host" in per.columns:
            where = where + per["host"].map(lambda h: f" on {h}" if isinstance(h, str) else "")
        per["channel"] = per["channel"] + where
    return per


def _pareto(e, max_plots: int = 4) -> list[dict]:
    """Per run: window seconds against measured joules (additive domains), with the arms' frontier."""
    import pandas as pd

    if e is None or len(e) == 0:
        return []
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
        out.append({"title": f"time vs energy: {task} / {window} ({profile})", "points": pts,
                    "frontier": pd.DataFrame(frontier)})
    return out


def heat_sink_k(frames: Frames) -> float:
    """The heat-sink temperature the theory task used (the same for every run), else 300 K."""
    m = frames.metrics
    if m is not None and len(m):
        t = m.loc[m["name"] == "heat_sink_temperature_k", "value"]
        if len(t):
            return float(t.median())
    return 300.0


def _sensors(frames: Frames) -> dict:
    """Meters that read in these runs, and those that could not, with the reason (from provenance)."""
    p = frames.provenance
    present, missing = set(), set()
    if p is not None and len(p):
        for col, into in (("hardware.meters", present), ("hardware.meters_unavailable", missing)):
            if col in p.columns:
                for value, _ in counts_per_object(p[col]):  # the runs share a handful of lists
                    if value is not None and value == value:  # not NaN: a run without the entry
                        into.update(map(str, value if isinstance(value, (list, tuple)) else [value]))
    return {"present": sorted(present), "missing": sorted(missing)}


def _summary(frames: Frames) -> dict:
    runs = frames.runs
    return {
        "sensors": _sensors(frames),
        "suites": sorted(map(str, runs["suite"].unique())),
        "runs": len(runs),
        "ok": int((runs["status"] == "ok").sum()),
        "failed": int((runs["status"] != "ok").sum()),
        "arms": sorted(map(str, runs["arm"].unique())),
        "tasks": sorted(map(str, runs["task"].unique())),
        "profiles": sorted(map(str, runs["hardware_profile_id"].dropna().unique())),
        "config_hashes": sorted(map(str, runs["suite_config_hash"].unique())),
    }


def _energy_table(e) -> list[dict]:
    """Median gross and net-of-idle joules per (task, arm, window, device, domain, method)."""
    if e is None or len(e) == 0:
        return []
    keys = ["hardware_profile_id", "task", "arm", "window", "device", "domain", "method", "meter", *_rank_keys(e)]
    agg = e.groupby(keys, dropna=False, sort=True).agg(
        n=("run_id", "size"), valid=("joules", "count"), joules=("joules", "median"),
        net=("net_joules", "median"), idle=("idle_watts", "median"), seconds=("duration_s", "median"))
    return agg.reset_index().to_dict("records")


def _environment(frames: Frames) -> list[dict]:
    """Each provenance field with its distinct values (and counts): a mixed environment shows at once.

    Nested values (hardware.isolation, hardware.gpu_temperature_c …) become one row per leaf
    (`hardware.isolation.gpu_processes`), lists are joined (a list of mappings as `key: value` groups) and
    None is "—": never a Python repr."""
    p = frames.provenance
    if p is None or len(p) == 0:
        p = frames.runs[["hardware_profile_id", "device", "suite_config_hash"]]
    import json

    import numpy as np
    import pandas as pd

    from eitp_bench.store.shared_objects import SharedObjectsDtype

    rows = []
    for col in p.columns:
        if col == "run_id":
            continue
        # count each distinct value once (10 000 runs share a handful), then expand only those
        if p[col].dtype != object and not isinstance(p[col].dtype, SharedObjectsDtype):
            # text (the store's categories), numbers: counted in first-seen order
            codes, values = pd.factorize(p[col], use_na_sentinel=False)
            per_value = [(dict(_leaves(col, value)), n) for value, n in
                         zip(values, np.bincount(codes, minlength=len(values)).tolist())]
        else:  # mappings and lists (pandas compares them one by one: 1.6 s for 125 000 runs' idle
            # baselines): counted by their JSON text
            # counted per shared object first (store/provenance_read.py), then per text
            by_text: dict[str, list] = {}
            for value, n in counts_per_object(p[col]):
                key = json.dumps(value, sort_keys=True, default=str)
                by_text.setdefault(key, [value, 0])[1] += n
            per_value = [(dict(_leaves(col, value)), n) for value, n in by_text.values()]
        for name in dict.fromkeys(k for leaves, _ in per_value for k in leaves):  # first-seen order
            counts: dict[str, int] = {}
            for leaves, n in per_value:
                text = leaves.get(name, "—")
                counts[text] = counts.get(text, 0) + n
            ranked = sorted(counts.items(), key=lambda kv: -kv[1])
            rows.append({"field": name, "seen": ranked[:6], "more": max(0, len(ranked) - 6)})
    return rows


def _leaves(name: str, value, depth: int = 0):
    """(dotted name, display text) for every leaf of a provenance value."""
    from eitp_bench.display import cell

    if isinstance(value, dict) and value and depth < 4:
        for k, v in value.items():
            yield from _leaves(f"{name}.{k}", v, depth + 1)
    else:
        yield name, cell(value)


def _warnings(frames: Frames, energy=None) -> dict:
    """Failed runs, flag counts, estimate-only windows, high variance. `energy`: ok runs' entries
    (the ResultSet's); computed from the frames when not given."""
    from eitp_bench.analysis.resultset import ResultSet

    runs = frames.runs
    failed = runs[runs["status"] != "ok"]
    out = {"failed": failed[["suite", "arm", "task", "repetition", "status", "error"]].head(50).to_dict("records"),
           "failed_total": len(failed), "flags": [], "estimated": [], "high_cv": [], "not_finite": []}
    nf = frames.not_finite
    if nf is not None and len(nf):  # metrics that were NaN/inf: excluded from every figure, counted here
        counts = nf.groupby(["suite", "task", "arm", "name"], sort=True).size()
        out["not_finite"] = [dict(zip(["suite", "task", "arm", "name"], k), n=int(n)) for k, n in counts.items()]
    e = ResultSet(frames).energy if energy is None else energy
    if e is not None and len(e):
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
        from eitp_bench.names import is_design

        design = [n for n in m["name"].unique() if is_design(n)]  # run order, settings, curve points:
        m = m[~m["name"].isin(design)]  # their spread is by design
        g = m.groupby(["suite", "task", "arm", "name", "hardware_profile_id"], dropna=False, sort=True)["value"]
        stats = g.agg(["count", "mean", "std"]).reset_index()
        stats["cv"] = stats["std"] / stats["mean"].abs()
        high = stats[(stats["count"] >= 2) & (stats["cv"] > HIGH_CV)]
        out["high_cv"] = high.sort_values("cv", ascending=False).to_dict("records")
    return out

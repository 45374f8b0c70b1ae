"""Render the one-file HTML report from Findings.

Everything the page shows is computed by eitp_bench.analysis (`analyse`); this module only
draws plots from the findings' data and lays them out. Jinja autoescapes every string; only the
SVG markup we generate ourselves is marked safe.
"""

from __future__ import annotations

import gc
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional

from eitp_bench.analysis.frames import Frames, for_suite, load_frames, load_report, only_runs  # noqa: F401 (re-exported)
from eitp_bench.display import cell, num as _num
from eitp_bench.errors import UserError

BADGE = {"VERIFIED": "ok", "REFUTED": "bad", "INCONCLUSIVE": "warn", "NOT MEASURED": "grey", "NO DATA": "grey",
         "NOT COMPARABLE": "bad"}


def build_report(store_or_frames, *, suite: Optional[str] = None,
                 extra_sections: Iterable[tuple[str, str]] = (), claims="eitp", n_resamples: int = 10_000,
                 max_groups: int = 5, theory: bool = True, title: Optional[str] = None) -> str:
    """The whole report as one self-contained HTML string.

    Verdicts are judged per (suite, configuration, hardware profile); only the `max_groups` most
    recent groups are judged and drawn (the rest are listed). From a store of more groups, only those
    groups' runs are read (frames.load_report) and the page says which runs its sections describe.
    """
    findings, sections = _findings_and_sections(load_report(store_or_frames, suite=suite, max_groups=max_groups),
                                                claims, n_resamples, max_groups, theory)
    title = title or (f"eitp-bench report — {suite}" if suite else "eitp-bench report")
    return render_report(findings, title=title, extra_sections=[*extra_sections, *sections])


def _findings_and_sections(frames: Frames, claims, n_resamples: int, max_groups: int, theory: bool):
    """The findings and the page's theory and time sections, computed from the frames; the findings are
    returned without them (`page_frames` None). The frames are let go as soon as nothing needs them: the
    time section reads the runs and their provenance, the theory sections only the metrics and the
    generate task's energy entries (theory_view.theory_frames), and the page's plots and template nothing
    of them. At 1 000 000 records the theory sections' first figure and the page's plots were drawn on top
    of 25 to 34 MiB of runs read."""
    from eitp_bench.analysis.theory_view import theory_frames
    from eitp_bench.report.runtime_section import runtime_sections

    findings = findings_of(frames, claims, n_resamples=n_resamples, max_groups=max_groups, sections=True)
    del frames  # from here only the findings' page_frames hold the frames: let go below, once read
    runtime = runtime_sections(findings.page_frames)  # the cost model's estimate against the actual times
    page, findings.page_frames = theory_frames(findings.page_frames), None
    gc.collect()  # the frames read are held in reference cycles: freed now, before the first figure
    if not theory:
        return findings, runtime
    from eitp_bench.report.theory_sections import theory_sections  # measured joules against the floors

    theorem3 = [(v, g.scope.qualifier() if g.scope else "") for g in findings.groups for v in g.verdicts
                if v.claim.kind == "bound"]
    return findings, theory_sections(page, temperature_k=findings.heat_sink_k, theorem3=theorem3) + runtime


def findings_of(frames: Frames, claims="eitp", **kwargs):
    """Findings over frames with a claims file (a built-in name, a path or a ClaimSet)."""
    from eitp_bench.analysis.findings import analyse

    return analyse(frames, _claim_set(claims), **kwargs)


def newest_findings(store_or_path, claims="eitp", *, suite: Optional[str] = None, max_groups: int = 5, **kwargs):
    """The verdicts of the newest groups (what `report --json` prints): findings_of(load_newest(…)), read and
    judged one (configuration, profile) pair at a time (frames.load_newest_each)."""
    from eitp_bench.analysis.findings import analyse_each
    from eitp_bench.analysis.frames import load_newest_each

    claim_set = _claim_set(claims)  # a bad claims file is said before the store is read
    return analyse_each(load_newest_each(store_or_path, suite=suite, max_groups=max_groups), claim_set,
                        max_groups=max_groups, **kwargs)


def _claim_set(claims):
    from eitp_bench.analysis.claims import ClaimSet, load_claims

    return claims if isinstance(claims, ClaimSet) else load_claims(claims)


def render_report(findings, *, title: str = "eitp-bench report", extra_sections: Iterable[tuple[str, str]] = ()) -> str:
    """The HTML page of findings: plots drawn from their data, every string escaped."""
    if getattr(findings, "scoped", False):  # its whole-store sections were never computed
        raise ValueError("findings of frames.load_newest have no whole-store sections to render; use load_frames")
    from markupsafe import Markup

    from eitp_bench.report import plots

    context = {
        "title": title,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": findings.source,
        "paper": findings.paper,
        "summary": findings.summary,
        "statement": findings.statement,
        "groups": findings.groups,
        "omitted_groups": findings.omitted_groups,
        "coverage": findings.coverage,
        "badge": BADGE,
        "distributions": [Markup(plots.distribution(d["samples"], title=d["title"], unit=d["unit"]))
                          for d in findings.distributions],
        "timelines": [Markup(plots.timelines(t["series"], title=t["title"])) for t in findings.timelines],
        **_training_pictures(findings.groups[0] if findings.groups else None),
        "energy_table": findings.energy_table,
        "energy_svg": Markup(plots.energy_bars(
            findings.energy_breakdown, title="energy breakdown (median per repetition, counter/sampled only)"))
        if findings.energy_breakdown is not None else "",
        "pareto": [Markup(plots.pareto(p["points"], p["frontier"], title=p["title"])) for p in findings.pareto],
        "environment": findings.environment,
        "warnings": findings.warnings,
        # Extra sections come from our own code (theory, regress) and are trusted HTML; titles are escaped.
        "extra_sections": [(title, Markup(body)) for title, body in extra_sections],
    }
    return _env().get_template("report.html.j2").render(**context)


def _training_pictures(group) -> dict:
    """The most recent group's training pictures: loss curves, time per step, energy per arm."""
    from markupsafe import Markup

    from eitp_bench.report import plots

    if group is None:
        return {"curves": [], "step_svg": "", "arm_energy_svgs": []}
    return {
        "curves": [Markup(plots.loss_curves(c["curves"], x=c["x"], xlabel=c["xlabel"], title=c["title"]))
                   for c in group.curves],
        "step_svg": Markup(plots.distribution(group.step_times, title="time per training step", unit="s / step"))
        if group.step_times else "",
        "arm_energy_svgs": [Markup(plots.arm_energy(p["bars"], title=p["title"], xlabel=p["xlabel"]))
                            for p in group.arm_energy[:6]],
    }


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
    env.filters["cell"] = cell
    env.filters["effect"] = effect
    env.filters["claimed_note"] = claimed_note
    env.filters["breakable"] = breakable
    return env


def breakable(name: str):
    """A dotted field name that may wrap after each dot or underscore (escaped, then <wbr> added)."""
    from markupsafe import Markup, escape

    return Markup(str(escape(name)).replace(".", ".<wbr>").replace("_", "_<wbr>"))


def effect(v) -> str:
    """A verdict's measured effect in the claim's own terms: `0.278×` for a ratio, the difference for a bound."""
    if v.ratio is None or v.ratio != v.ratio:
        return "—"
    return _num(v.ratio) if v.claim.kind == "bound" else f"{_num(v.ratio)}×"


def claimed_note(v) -> str:
    """A ratio claim below 1 in the words people use: ≤ 0.24× of the bytes is "4.2× compression claimed"."""
    c = v.claim
    if c.kind != "ratio" or c.direction != "lower_is_better" or not c.threshold or c.threshold >= 1:
        return ""
    word = "compression" if "bytes" in (c.metric or "") else "less"
    return f"{1 / c.threshold:.2g}× {word} claimed"

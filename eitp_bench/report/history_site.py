"""Write the nightly history (analysis/history.py) as a static site: plain HTML files, inline SVG, no
script, no external URL, so it opens from a file system or any static host.

    index.html            confirmed regressions first (newest, then largest), then every series
    series/<slug>.html    one metric of one (suite, task, arm), hardware profiles side by side
    runs/<run_id>.html    one run's metrics and provenance (what a point links to)
    manifest.json         per series page: its point count, last run and change fingerprint

Incremental: a series page is rewritten only when its manifest entry changed (new runs, or a change
point whose confirmation moved: Benjamini–Hochberg runs across every series) or its file is missing;
run pages are written once (a stored run never changes). The index is always rewritten.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from eitp_bench.errors import UserError

SITE_FORMAT = 1  # bump when the pages' layout changes: every page is then rewritten
CSS = """
body{font-family:system-ui,sans-serif;margin:1.2em;max-width:1300px;color:#222}
h1{font-size:1.4em;margin:.2em 0} h2{font-size:1.15em;margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%;font-size:.88em}
th,td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;overflow-wrap:anywhere}
tr.regression td:first-child{color:#c44e52;font-weight:bold} tr.improvement td:first-child{color:#2e7d32}
.panels{display:flex;flex-wrap:wrap;gap:12px} .panel{flex:1 1 560px;min-width:0}
svg{max-width:100%;height:auto} .muted{color:#666;font-size:.9em}
"""


@dataclass
class SiteResult:
    index: Path
    written: int  # series pages written this time
    skipped: int  # series pages unchanged since the last build
    run_pages: int  # run pages written this time


def prepare_out(out: str | os.PathLike) -> Path:
    """The site folder, created; a UserError if it cannot be written (before any analysis runs)."""
    path = Path(out)
    try:
        (path / "series").mkdir(parents=True, exist_ok=True)
        (path / "runs").mkdir(exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write the history site to {path} ({err.strerror or err})",
                        fix="give --out a folder you can write (or fix its permissions)") from None
    return path


def write_site(history, frames, out: str | os.PathLike) -> SiteResult:
    from eitp_bench.report.history_plots import trend

    root = prepare_out(out)
    manifest_path = root / "manifest.json"
    old = _read_manifest(manifest_path)
    new = {"format": SITE_FORMAT, "series": {}}
    written = skipped = 0
    for page in history.pages:
        entry = page.fingerprint()
        new["series"][page.slug] = entry
        target = root / "series" / f"{page.slug}.html"
        if old.get("format") == SITE_FORMAT and old.get("series", {}).get(page.slug) == entry and target.exists():
            skipped += 1
            continue
        figures = [(panel, trend(panel, unit=page.unit, title=panel.label,
                                 point_href=lambda run_id: f"../runs/{_safe(run_id)}.html"))
                   for panel in page.panels]
        target.write_text(_series_page(page, figures, history), encoding="utf-8")
        written += 1
    run_pages = _write_run_pages(root, history, frames, rewrite=old.get("format") != SITE_FORMAT)
    index = root / "index.html"
    index.write_text(_index_page(history, frames), encoding="utf-8")
    manifest_path.write_text(json.dumps(new, indent=1, sort_keys=True), encoding="utf-8")
    return SiteResult(index, written, skipped, run_pages)


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no manifest or a damaged one: rebuild every page
    return data if isinstance(data, dict) else {}


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(run_id))


def _e(value) -> str:
    return html.escape(str(value))


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
            f"<body>{body}</body></html>")


def _change_cells(c) -> str:
    return (f"<td>{c.before:.4g} → {c.after:.4g}</td><td>{100 * c.relative:+.1f} %</td>"
            f"<td>{c.q_value:.2g}</td>")


def _index_page(history, frames) -> str:
    found = history.confirmed_first()
    n_reg = sum(1 for c, _ in found if c.kind == "regression")
    n_runs = frames.runs["run_id"].nunique() if frames.runs is not None and len(frames.runs) else 0
    parts = [f"<h1>eitp-bench nightly history</h1><p id='summary'><b>{n_reg} confirmed regression(s)</b>, "
             f"{len(found) - n_reg} confirmed improvement(s) or change(s) across {len(history.pages)} series pages "
             f"({n_runs} runs). <span class='muted'>Change points as <code>eitp-bench regress</code> finds them: PELT, "
             f"Mann–Whitney over {history.window} points each side, |effect| ≥ {100 * history.threshold:g} %, "
             "Benjamini–Hochberg q ≤ 0.05 across every series.</span></p>"]
    if found:
        rows = []
        for i, (c, page) in enumerate(found, start=1):
            commit = next((pt.git_commit for p in page.panels for pt in p.points if pt.run_id == c.run_id), "")
            rows.append(f"<tr class='{_e(c.kind)}' id='change-{i}'><td>{_e(c.kind)}</td>"
                        f"<td><a href='series/{_e(page.slug)}.html'>{_e(page.title)}</a></td>"
                        f"<td>{_e(c.hardware_profile_id or '')}{_e(' [' + c.energy_state + ']' if c.energy_state else '')}</td>"
                        f"<td><a href='runs/{_e(_safe(c.run_id))}.html'>{_e(c.started_at[:16])}</a> {_e(commit[:10])}</td>"
                        f"{_change_cells(c)}</tr>")
        parts.append("<h2>Confirmed changes (regressions first, newest first)</h2><table><thead><tr><th>kind</th>"
                     "<th>series</th><th>hardware</th><th>first run after (commit)</th><th>before → after (medians)</th>"
                     "<th>change</th><th>q</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    else:
        parts.append("<h2>Confirmed changes</h2><p>None: no series has a confirmed change point.</p>")
    rows = []
    for page in sorted(history.pages, key=lambda p: (-len(p.regressions()), p.title)):
        last = max((pt for p in page.panels for pt in p.points), key=lambda pt: pt.started_at)
        rows.append(f"<tr><td><a href='series/{_e(page.slug)}.html'>{_e(page.title)}</a></td>"
                    f"<td>{_e(', '.join(p.label for p in page.panels))}</td><td>{page.n_points}</td>"
                    f"<td>{_e(last.started_at[:16])}</td><td>{last.value:.4g} {_e(page.unit)}</td>"
                    f"<td>{len(page.regressions())}</td></tr>")
    parts.append("<h2>Every series</h2><table><thead><tr><th>series</th><th>hardware</th><th>points</th>"
                 "<th>last run</th><th>last value</th><th>regressions</th></tr></thead><tbody>"
                 + "".join(rows) + "</tbody></table>")
    return _page("eitp-bench nightly history", "".join(parts))


def _series_page(page, figures, history) -> str:
    parts = [f"<p><a href='../index.html'>← history index</a></p><h1>{_e(page.title)}</h1>"
             f"<p class='muted'>{_e(page.unit)} over run start time, one panel per hardware profile; each point "
             "links to its run. Shaded: the noise band (median ± 2 robust sd) of each stretch between confirmed "
             "changes; solid lines: confirmed changes; dotted: change-point candidates that were not confirmed.</p>"
             "<div class='panels'>"]
    for panel, svg in figures:
        parts.append(f"<div class='panel'><h2>{_e(panel.label)}</h2>{svg}{_changes_table(panel)}"
                     f"{_points_table(panel)}</div>")
    parts.append("</div>")
    return _page(page.title, "".join(parts))


def _changes_table(panel) -> str:
    if not panel.changes:
        return "<p class='muted'>No change-point candidates.</p>"
    rows = "".join(f"<tr class='{_e(c.kind) if c.confirmed else ''}'><td>{_e(c.kind) if c.confirmed else 'candidate'}</td>"
                   f"<td><a href='../runs/{_e(_safe(c.run_id))}.html'>{_e(c.started_at[:16])}</a></td>"
                   f"{_change_cells(c)}<td>{c.p_value:.2g}</td></tr>" for c in panel.changes)
    return ("<table><thead><tr><th>change</th><th>first run after</th><th>before → after</th><th>change</th>"
            f"<th>q</th><th>p</th></tr></thead><tbody>{rows}</tbody></table>")


def _points_table(panel) -> str:
    rows = "".join(f"<tr><td><a href='../runs/{_e(_safe(p.run_id))}.html'>{_e(p.started_at[:16])}</a></td>"
                   f"<td>{_e(p.git_commit[:10])}</td><td>{p.value:.6g}</td></tr>" for p in reversed(panel.points))
    return (f"<details><summary>{len(panel.points)} points (newest first)</summary><table><thead><tr><th>run</th>"
            f"<th>commit</th><th>value</th></tr></thead><tbody>{rows}</tbody></table></details>")


def _write_run_pages(root: Path, history, frames, *, rewrite: bool) -> int:
    wanted = {pt.run_id for page in history.pages for p in page.panels for pt in p.points}
    todo = {r for r in wanted if rewrite or not (root / "runs" / f"{_safe(r)}.html").exists()}
    if not todo:
        return 0
    metrics = frames.metrics[frames.metrics["run_id"].isin(todo)]
    prov = frames.provenance
    prov_by_run = ({} if prov is None or len(prov) == 0 else
                   {str(r["run_id"]): r for r in prov[prov["run_id"].isin(todo)].to_dict("records")})
    for run_id, rows in metrics.groupby("run_id", sort=False):
        first = rows.iloc[0]
        p = prov_by_run.get(str(run_id), {})
        facts = [("suite", first.get("suite")), ("task", first.get("task")), ("arm", first.get("arm")),
                 ("started", first.get("started_at")), ("status", first.get("status")),
                 ("hardware profile", first.get("hardware_profile_id")), ("git commit", p.get("git_commit")),
                 ("eitp-bench", p.get("eitp_bench_version")), ("run id", run_id)]
        head = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts if v is not None)
        body = "".join(f"<tr><td>{_e(m['name'])}</td><td>{m['value']:.6g}</td><td>{_e(m.get('unit') or '')}</td>"
                       f"<td>{_e(m.get('window') or '')}</td></tr>" for m in rows.to_dict("records"))
        (root / "runs" / f"{_safe(run_id)}.html").write_text(_page(
            f"run {run_id}", f"<p><a href='../index.html'>← history index</a></p><h1>Run {_e(str(run_id)[:12])}</h1>"
            f"<table>{head}</table><p class='muted'>The store does not record where this run's folder (and its "
            "report.html) lies; its metrics as stored:</p><h2>Metrics</h2><table><thead><tr><th>metric</th>"
            f"<th>value</th><th>unit</th><th>window</th></tr></thead><tbody>{body}</tbody></table>"), encoding="utf-8")
    return len(todo)

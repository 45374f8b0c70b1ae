"""Write the nightly history (analysis/history.py: store_history) as a static site: plain HTML files,
inline SVG, no script, no external URL, so it opens from a file system or any static host.

    index.html                      confirmed regressions first (newest, then largest), then every series
    series/<slug>.html              one metric of one (suite, task, arm), hardware profiles side by side
    runs/<date>-<profile>.html      the runs of one night (start date, UTC) on one hardware profile, an
                                    anchor #run-<run_id> each: what a point links to
    commits.npz                     each run's git commit by store seq (analysis/history_commits.py)
    manifest.json                   per series page: its point count, last run and change fingerprint;
                                    per run page: its run count and newest stored run (seq)

Incremental: a series page is rewritten only when its manifest entry changed (new runs, or a change
point whose confirmation moved: Benjamini–Hochberg runs across every series) or its file is missing; a
run page only when its night × profile gained (or lost) runs. Only the metric names of the series pages
to write are read again, and only the rows of the run pages to write. The index is always rewritten.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from eitp_bench.analysis.history_commits import CommitIndex
from eitp_bench.errors import UserError

COMMITS = "commits.npz"  # each run's commit by seq (analysis/history_commits.py): only new runs' are read
SITE_FORMAT = 2  # bump when the pages' layout changes: every page is then rewritten (2: run pages per night × profile)
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
    run_pages: int  # run pages (night × profile) written this time
    runs_removed: int = 0  # run pages of an older site format (one per run) removed
    stale_removed: int = 0  # pages the last build listed whose series or night × profile is no longer stored


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


def built_from(store, *, window: int, threshold: float) -> dict:
    """What a site is built from: the store's state (store_queries.store_state) and the analysis' settings."""
    from eitp_bench.store import queries as store_queries

    runs, last_seq = store_queries.store_state(store)
    return {"runs": runs, "last_seq": last_seq, "window": window, "threshold": threshold}


def is_current(out: str | os.PathLike, state: dict) -> bool:
    """The site at `out` was built from this very store state with these settings, and every page it
    lists is there: nothing to analyse or write."""
    root = Path(out)
    old = _read_manifest(root / "manifest.json")
    if old.get("format") != SITE_FORMAT or old.get("store") != state:
        return False
    pages = [root / "index.html", *(root / "series" / f"{slug}.html" for slug in old.get("series", {})),
             *(root / "runs" / f"{slug}.html" for slug in old.get("runs", {}))]
    return all(page.exists() for page in pages)


def write_site(history, store, out: str | os.PathLike, *, state: dict | None = None) -> SiteResult:
    """Write (or update) the site of `history` (analysis/history.store_history of `store`) into `out`;
    `state` (built_from) is recorded in the manifest for is_current."""
    from eitp_bench.report.history_svg import trend
    from eitp_bench.store import queries as store_queries

    root = prepare_out(out)
    manifest_path = root / "manifest.json"
    old = _read_manifest(manifest_path)
    current = old.get("format") == SITE_FORMAT
    new = {"format": SITE_FORMAT, "store": state, "series": {}, "runs": {}}
    todo = set()
    for summary in history.summaries:
        entry = summary.fingerprint()
        new["series"][summary.slug] = entry
        target = root / "series" / f"{summary.slug}.html"
        if not (current and old.get("series", {}).get(summary.slug) == entry and target.exists()):
            todo.add(summary.slug)
    commits = CommitIndex.load(root / COMMITS)
    commits.update(store)  # the runs stored since the last build only
    written = 0
    for page in history.pages(store, todo, commits):
        figures = []
        for panel in page.panels:  # each point's link made once, for the figure and the points table
            hrefs = ["../" + run_href(pt.run_id, pt.started_at, panel.hardware_profile_id) for pt in panel.points]
            figures.append((panel, trend(panel, unit=page.unit, title=panel.label, hrefs=hrefs), hrefs))
        (root / "series" / f"{page.slug}.html").write_text(_series_page(page, figures), encoding="utf-8")
        written += 1
    removed = 0 if current else _remove_run_pages(root)
    groups = {run_page(date, profile): (date, profile, [count, last_seq])
              for date, profile, count, last_seq in store_queries.run_groups(store)}
    new["runs"] = {slug: entry for slug, (_, _, entry) in groups.items()}
    changed = {slug for slug, (_, _, entry) in groups.items()
               if not (current and old.get("runs", {}).get(slug) == entry and (root / "runs" / f"{slug}.html").exists())}
    run_pages = _write_run_pages(root, store, {s: groups[s] for s in changed}, commits)
    index = root / "index.html"
    index.write_text(_index_page(history, store_queries.run_count(store), store), encoding="utf-8")
    manifest_path.write_text(json.dumps(new, indent=0, sort_keys=True), encoding="utf-8")
    commits.save(root / COMMITS)
    stale = _remove_stale_pages(root, old, new) if current else 0
    return SiteResult(index, written, len(history.summaries) - written, run_pages, removed, stale)


@functools.lru_cache(maxsize=4096)
def run_page(date: str, profile) -> str:
    """The run page (file stem) of the runs started on `date` (YYYY-MM-DD) on hardware profile `profile`:
    readable, safe on every file system, and distinct for distinct profiles (a digest of the name)."""
    name = "no-profile" if profile is None else str(profile)
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)[:40].strip("-.") or "profile"
    digest = hashlib.sha1(b"\x00" if profile is None else name.encode()).hexdigest()[:6]  # not "no-profile"
    return f"{re.sub(r'[^0-9-]', '_', str(date)[:10])}-{readable}-{digest}"


def run_href(run_id: str, started_at: str, profile) -> str:
    """A run's anchor on its run page, relative to the site's root: only [A-Za-z0-9_.#/-], nothing to
    escape."""
    return f"runs/{run_page(str(started_at)[:10], profile)}.html#run-{_safe(run_id)}"


def _remove_run_pages(root: Path) -> int:
    """The run pages of an older format (one file per run): removed once, as the new pages replace them."""
    removed = 0
    for path in (root / "runs").glob("*.html"):
        path.unlink()
        removed += 1
    return removed


def _remove_stale_pages(root: Path, old: dict, new: dict) -> int:
    """The pages the last build listed (its manifest) whose series or night × profile this store no longer
    has (the site was pointed at another store, or runs were taken out): removed, so that an old link or
    bookmark never shows them as if current. Only files the manifest named go; nothing else in the folder."""
    removed = 0
    for folder in ("series", "runs"):
        for slug in set(old.get(folder, {})) - set(new[folder]):
            page = root / folder / f"{slug}.html"
            # the names this module writes only: a hand-edited manifest never reaches outside the folder
            if re.fullmatch(r"[A-Za-z0-9_.-]+", str(slug)) and page.exists():
                page.unlink()
                removed += 1
    return removed


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # no manifest or a damaged one: rebuild every page
    return data if isinstance(data, dict) else {}


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _safe(run_id: str) -> str:
    return _UNSAFE.sub("_", str(run_id))


def _e(value) -> str:
    return html.escape(str(value))


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
            f"<body>{body}</body></html>")


def _change_cells(c) -> str:
    return (f"<td>{c.before:.4g} → {c.after:.4g}</td><td>{100 * c.relative:+.1f} %</td>"
            f"<td>{c.q_value:.2g}</td>")


def _index_page(history, n_runs: int, store) -> str:
    from eitp_bench.store import queries as store_queries

    found = history.confirmed_first()
    n_reg = sum(1 for c, _ in found if c.kind == "regression")
    commits = store_queries.run_commits(store, [c.run_id for c, _ in found])
    parts = [f"<h1>eitp-bench nightly history</h1><p id='summary'><b>{n_reg} confirmed regression(s)</b>, "
             f"{len(found) - n_reg} confirmed improvement(s) or change(s) across {len(history.summaries)} series pages "
             f"({n_runs} runs). <span class='muted'>Change points as <code>eitp-bench regress</code> finds them: PELT, "
             f"Mann–Whitney over {history.window} points each side, |effect| ≥ {100 * history.threshold:g} %, "
             "Benjamini–Hochberg q ≤ 0.05 across every series.</span></p>"]
    if found:
        rows = []
        for i, (c, page) in enumerate(found, start=1):
            commit = commits.get(c.run_id) or ""
            rows.append(f"<tr class='{_e(c.kind)}' id='change-{i}'><td>{_e(c.kind)}</td>"
                        f"<td><a href='series/{_e(page.slug)}.html'>{_e(page.title)}</a></td>"
                        f"<td>{_e(c.hardware_profile_id or '')}{_e(' [' + c.energy_state + ']' if c.energy_state else '')}</td>"
                        f"<td><a href='{_e(run_href(c.run_id, c.started_at, c.hardware_profile_id))}'>"
                        f"{_e(c.started_at[:16])}</a> {_e(commit[:10])}</td>{_change_cells(c)}</tr>")
        parts.append("<h2>Confirmed changes (regressions first, newest first)</h2><table><thead><tr><th>kind</th>"
                     "<th>series</th><th>hardware</th><th>first run after (commit)</th><th>before → after (medians)</th>"
                     "<th>change</th><th>q</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    else:
        parts.append("<h2>Confirmed changes</h2><p>None: no series has a confirmed change point.</p>")
    rows = []
    for page in sorted(history.summaries, key=lambda p: (-len(p.regressions()), p.title)):
        rows.append(f"<tr><td><a href='series/{_e(page.slug)}.html'>{_e(page.title)}</a></td>"
                    f"<td>{_e(', '.join(page.labels))}</td><td>{page.n_points}</td>"
                    f"<td>{_e(page.last_started_at[:16])}</td><td>{page.last_value:.4g} {_e(page.unit)}</td>"
                    f"<td>{len(page.regressions())}</td></tr>")
    parts.append("<h2>Every series</h2><table><thead><tr><th>series</th><th>hardware</th><th>points</th>"
                 "<th>last run</th><th>last value</th><th>regressions</th></tr></thead><tbody>"
                 + "".join(rows) + "</tbody></table>")
    return _page("eitp-bench nightly history", "".join(parts))


def _series_page(page, figures) -> str:
    parts = [f"<p><a href='../index.html'>← history index</a></p><h1>{_e(page.title)}</h1>"
             f"<p class='muted'>{_e(page.unit)} over run start time, one panel per hardware profile; each point "
             "links to its run. Shaded: the noise band (median ± 2 robust sd) of each stretch between confirmed "
             "changes; solid lines: confirmed changes; dotted: change-point candidates that were not confirmed.</p>"
             "<div class='panels'>"]
    for panel, svg, hrefs in figures:
        parts.append(f"<div class='panel'><h2>{_e(panel.label)}</h2>{svg}{_changes_table(panel)}"
                     f"{_points_table(panel, hrefs)}</div>")
    parts.append("</div>")
    return _page(page.title, "".join(parts))


def _changes_table(panel) -> str:
    if not panel.changes:
        return "<p class='muted'>No change-point candidates.</p>"
    hp = panel.hardware_profile_id
    rows = "".join(f"<tr class='{_e(c.kind) if c.confirmed else ''}'><td>{_e(c.kind) if c.confirmed else 'candidate'}</td>"
                   f"<td><a href='../{_e(run_href(c.run_id, c.started_at, hp))}'>{_e(c.started_at[:16])}</a></td>"
                   f"{_change_cells(c)}<td>{c.p_value:.2g}</td></tr>" for c in panel.changes)
    return ("<table><thead><tr><th>change</th><th>first run after</th><th>before → after</th><th>change</th>"
            f"<th>q</th><th>p</th></tr></thead><tbody>{rows}</tbody></table>")


def _points_table(panel, hrefs: list[str]) -> str:
    rows = "".join(f"<tr><td><a href='{href}'>{_e(p.started_at[:16])}</a></td>"
                   f"<td>{_e(p.git_commit[:10])}</td><td>{p.value:.6g}</td></tr>"
                   for p, href in zip(reversed(panel.points), reversed(hrefs)))
    return (f"<details><summary>{len(panel.points)} points (newest first)</summary><table><thead><tr><th>run</th>"
            f"<th>commit</th><th>value</th></tr></thead><tbody>{rows}</tbody></table></details>")


DATES_PER_READ = 200  # nights of run pages read per query: a first build of a large store in a few reads,
# each bounded (PostgreSQL's driver holds a whole result in memory)


def _write_run_pages(root: Path, store, groups: dict, commits, *, dates_per_read: int = DATES_PER_READ) -> int:
    """Write the run pages `groups` ({slug: (date, profile, [count, last seq])}): their runs' rows are read
    in store order, a few nights per query; a page is written (and its rows dropped) as soon as all its
    runs came by."""
    from eitp_bench.store import queries as store_queries

    slug_of = {(date, profile): slug for slug, (date, profile, _) in groups.items()}
    left = {slug: entry[0] for slug, (_, _, entry) in groups.items()}
    pending: dict[str, dict] = {}
    done: set[str] = set()

    def write(slug: str) -> None:
        date, profile, _ = groups[slug]
        _write_run_page(root / "runs" / f"{slug}.html", date, profile, pending.pop(slug).values())
        done.add(slug)

    def consume(run, metrics):
        slug = slug_of.get((str(run["started_at"])[:10], run["hardware_profile_id"]))
        if slug is None or slug in done:  # a run stored since the pages were counted: the next build's
            return
        run["git_commit"] = commits.one(run["seq"])
        pending.setdefault(slug, {})[run["run_id"]] = (run, metrics)
        left[slug] -= 1
        if left[slug] == 0:
            write(slug)

    dates = sorted({d for d, _ in slug_of})
    for i in range(0, len(dates), dates_per_read):
        store_queries.group_run_rows(store, dates[i:i + dates_per_read], consume)
    for slug in list(pending):  # a run removed since the pages were counted: written with what came by
        write(slug)
    return len(done)


RUN_FACTS = [("started", "started_at"), ("commit", "git_commit"), ("eitp-bench", "eitp_bench_version"),
             ("configuration", "suite_config_hash")]


def _write_run_page(path: Path, date: str, profile, runs) -> None:
    """One night × profile: a table per (suite, task, arm), a row per run (anchor #run-<id>), its metrics
    as columns (name [window] unit)."""
    by_kind: dict[tuple, list] = {}
    for run, metrics in runs:
        by_kind.setdefault((run["suite"], run["task"], run["arm"]), []).append((run, metrics))
    parts = [f"<p><a href='../index.html'>← history index</a></p><h1>Runs of {_e(date)} on "
             f"{_e(profile if profile is not None else 'no hardware profile')}</h1><p class='muted'>Each ok run with a "
             "stored metric, as stored. The store does not record where a run's folder (and its report.html) lies.</p>"]
    for (suite, task, arm), rows in sorted(by_kind.items(), key=lambda kv: tuple(map(str, kv[0]))):
        columns: dict[tuple, None] = {}
        for _, metrics in rows:
            for name, _, unit, window in metrics:
                columns.setdefault((name, window or "", unit or ""), None)
        head = "".join(f"<th>{_e(name)}{_e(' [' + window + ']' if window else '')}"
                       f"{_e(' (' + unit + ')' if unit else '')}</th>" for name, window, unit in columns)
        body = []
        for run, metrics in sorted(rows, key=lambda rm: (str(rm[0]["started_at"]), str(rm[0]["run_id"]))):
            values = {(name, window or "", unit or ""): value for name, value, unit, window in metrics}
            cells = "".join(f"<td>{_value(values.get(col, ''))}</td>" for col in columns)
            facts = "".join(f"<td>{_e(run.get(key) or '')}</td>" for _, key in RUN_FACTS)
            body.append(f"<tr id='run-{_e(_safe(run['run_id']))}'><td>{_e(str(run['run_id'])[:12])}</td>"
                        f"{facts}{cells}</tr>")
        parts.append(f"<h2>{_e(suite)} / {_e(task)} / {_e(arm)}</h2><table><thead><tr><th>run</th>"
                     + "".join(f"<th>{_e(label)}</th>" for label, _ in RUN_FACTS)
                     + f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    path.write_text(_page(f"runs of {date} on {profile}", "".join(parts)), encoding="utf-8")


def _value(value) -> str:
    """A stored value; '' where the run has no such metric; a null (NaN/inf when written) says so."""
    if value == "":
        return ""
    return "not finite" if value is None or value != value else f"{float(value):.6g}"

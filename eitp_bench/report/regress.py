"""Render nightly-regression findings (computed by eitp_bench.analysis.regress) as a report section."""

from __future__ import annotations

import html

from eitp_bench.analysis.regress import Change, confirmed


def regressions_section(changes: list[Change], *, window: int, threshold: float) -> tuple[str, str]:
    """A (title, html) section for build_report's extra_sections."""
    rows = confirmed(changes)
    head = (f"<p>Series: suite/task/arm/metric@hardware. Change points (PELT) confirmed by Mann–Whitney "
            f"({window} points before vs after), |effect| ≥ {100 * threshold:g} %, Benjamini–Hochberg q ≤ 0.05."
            f" {len(changes)} candidate(s), {len(rows)} confirmed.</p>")
    if not rows:
        return "Nightly regressions", head + "<p>No confirmed changes.</p>"
    lines = ["<table><thead><tr><th>kind</th><th>series</th><th>first run after</th><th>before</th><th>after</th>"
             "<th>change</th><th>p</th><th>q</th></tr></thead><tbody>"]
    for c in rows:
        lines.append(
            f"<tr class='{html.escape(c.kind)}'><td>{html.escape(c.kind)}</td><td>{html.escape(c.series)}</td>"
            f"<td>{html.escape(c.started_at)} (#{c.index})</td><td>{c.before:.4g}</td><td>{c.after:.4g}</td>"
            f"<td>{100 * c.relative:+.1f} %</td><td>{c.p_value:.2g}</td><td>{c.q_value:.2g}</td></tr>")
    lines.append("</tbody></table>")
    return "Nightly regressions", head + "".join(lines)

"""The report's "time: estimated and actual" section: the cost model's estimate recorded with the run
(provenance.hardware.cost_estimate) against the wall times of its records, per phase.

Everything is computed by analysis/runtime.estimate_vs_actual; this only lays it out, every string escaped.
"""

from __future__ import annotations

from html import escape
from typing import Optional

TITLE = "Time: estimated and actual"


def _s(v: Optional[float]) -> str:
    return "—" if v is None else f"{v:,.0f} s"


def _ratio(actual: float, estimated: Optional[float]) -> str:
    return "—" if not estimated else f"{actual / estimated:.2f}×"


def _earlier(runs: int) -> str:
    if not runs:
        return ""
    return (f" of the newest run of the suite ({runs:,} task records of its earlier runs recorded the same "
            "estimate and are not counted)")


def _on(hardware) -> str:
    """' on H100 SXM' where the estimate named its hardware; nothing where it did not."""
    return f" on {escape(str(hardware))}" if hardware else ""


def runtime_sections(frames) -> list[tuple[str, str]]:
    """[(title, html)] when the runs recorded an estimate, else []."""
    from eitp_bench.analysis.runtime import estimate_vs_actual

    table = estimate_vs_actual(frames)
    if table is None:
        return []
    e = table["estimate"]
    rows = "".join(
        f"<tr><td>{escape(r['phase'])}</td><td>{_s(r['estimated_s'])}</td><td>{_s(r['actual_s'])}</td>"
        f"<td>{_ratio(r['actual_s'], r['estimated_s'])}</td></tr>"
        for r in table["rows"])
    head = (f"<p>Estimated before the run{_on(e.get('hardware'))} (source: "
            f"{escape(str(e.get('source') or 'not recorded'))}, range {_s(e.get('low_s'))} – {_s(e.get('high_s'))}); actual over "
            f"{table['repetitions']} repetitions{_earlier(table['earlier_runs'])}. {escape(table['note'])}.</p>")
    return [(TITLE, head + "<table><tr><th>phase</th><th>estimated</th><th>actual</th><th>actual ÷ estimated</th></tr>"
             + rows + "</table>")]

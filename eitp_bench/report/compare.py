"""Render cross-hardware comparison tables (computed by eitp_bench.analysis.compare): terminal and HTML."""

from __future__ import annotations

from typing import Optional

from eitp_bench.analysis.compare import Cell, CompareTable, hash_note


def print_tables(tables: list[CompareTable], console=None) -> None:
    from rich.console import Console
    from rich.markup import escape  # names come from the store: `[/b]` in a suite name is text, not markup
    from rich.table import Table

    console = console or Console()
    console.print(escape(hash_note(tables)))
    for t in tables:
        state = f"; {t.energy_state}" if t.energy_state else ""
        table = Table(title=escape(f"config {t.config_hash} ({', '.join(t.suites)}); reference: {t.reference or '—'}{state}"))
        table.add_column("workload")
        table.add_column("metric")
        for p in t.profiles:
            table.add_column(escape(p), justify="right")
        for r in t.rows:
            table.add_row(escape(f"{r.task}/{r.arm}"), escape(r.label),
                          *[escape(_cell_text(r.cells.get(p))) for p in t.profiles])
        table.add_row("geometric mean", "× ref", *[_fmt(t.geomean.get(p)) + "×" if t.geomean.get(p) else "—"
                                                  for p in t.profiles])
        console.print(table)
        if t.note:
            console.print(escape(t.note))


def _fmt(x: Optional[float]) -> str:
    return "—" if x is None or x != x else f"{x:.3g}"


def _cell_text(cell: Optional[Cell]) -> str:
    if cell is None:
        return "—"
    ci = f" [{_fmt(cell.ci_low)}, {_fmt(cell.ci_high)}]" if cell.ci_low == cell.ci_low else ""
    norm = f" ({_fmt(cell.normalised)}×)" if cell.normalised else ""
    return f"{_fmt(cell.median)}{ci}{norm} n={cell.n}{board_text(cell)}"


def board_text(cell: Cell) -> str:
    """'; 2 boards 100 / 120 (spread 20 %, between-board sd 13 %, interval widened)' or ''."""
    b = cell.boards
    if b is None:
        return ""
    medians = " / ".join(_fmt(m) for m in b.medians.values())
    return (f"; {len(b.medians)} boards {medians} (spread {b.spread:.0%}, between-board sd {b.tau:.0%}, "
            f"{b.method}; interval widened from [{_fmt(cell.runs_ci[0])}, {_fmt(cell.runs_ci[1])}])")


def compare_html(tables: list[CompareTable]) -> str:
    """A self-contained HTML page with the same tables (every string autoescaped)."""
    from eitp_bench.report.build import _env

    return _env().get_template("compare.html.j2").render(tables=tables, note=hash_note(tables), fmt=_fmt,
                                                         board_text=board_text)

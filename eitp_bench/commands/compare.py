"""`eitp-bench compare`: workloads × hardware profiles, normalised to a reference profile."""

from __future__ import annotations

from typing import Optional

import typer

from eitp_bench.allocator import reads_a_store


def compare(
    store: Optional[str] = typer.Option(None, "--store", help="results store: a SQLite path or postgresql://user@host:port/db (default $EITP_BENCH_STORE or ./eitp-results/results.sqlite)"),
    by: str = typer.Option("hardware", "--by", help="what to compare across (only 'hardware' for now)"),
    reference: Optional[str] = typer.Option(None, "--reference", help="hardware profile id to normalise to"),
    html_out: Optional[str] = typer.Option(None, "--html", help="also write the tables as an HTML file"),
) -> None:
    """Compare s/step, tokens/s, J/token and tokens/J across hardware profiles (same config hash only)."""
    from pathlib import Path

    from eitp_bench.analysis.compare import COMPARED_NAMES, compare_hardware, compare_store
    from eitp_bench.analysis.frames import load_series, sql_store
    from eitp_bench.report.compare import compare_html, print_tables
    from eitp_bench.errors import UserError
    from eitp_bench.store import queries as store_queries

    if by != "hardware":
        raise UserError(f"--by {by!r} is not supported", fix="use --by hardware")
    sql = sql_store(store)  # read-only; a missing store is one line, exit 2
    if sql is not None:  # one configuration's compared metrics at a time
        if store_queries.run_count(sql) == 0:
            raise UserError(f"no runs in {sql.location.shown}: nothing to compare", fix="run a suite first")
        tables = compare_store(sql, reference=reference)
    else:
        frames = load_series(store, names=COMPARED_NAMES)  # only the compared metrics' values
        if frames.runs is not None and len(frames.runs) == 0:
            raise UserError(f"no runs in {frames.source}: nothing to compare", fix="run a suite first")
        tables = compare_hardware(frames.metrics, reference=reference, provenance=frames.provenance)
    print_tables(tables)
    if html_out:
        try:
            Path(html_out).write_text(compare_html(tables), encoding="utf-8")
        except OSError as err:
            raise UserError(f"cannot write {html_out}: {err.strerror}", fix="choose a writable --html path") from None
        print(f"wrote {html_out}")


def register(app) -> None:
    app.command("compare")(reads_a_store(compare))

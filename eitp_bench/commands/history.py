"""`eitp-bench history`: the nightly history as a static site (index, one page per series, run pages)."""

from __future__ import annotations

from typing import Optional

import typer

from eitp_bench.allocator import reads_a_store
from eitp_bench.errors import UserError


def history(
    store: Optional[str] = typer.Option(None, "--store", help="results store: a SQLite path or postgresql://user@host:port/db (default $EITP_BENCH_STORE or ./eitp-results/results.sqlite)"),
    out: str = typer.Option("site", "--out", help="the folder to write the site into (rebuilt incrementally)"),
    window: int = typer.Option(8, "--window", help="points before/after a change point for the Mann–Whitney test (as regress)"),
    threshold: str = typer.Option("5%", "--threshold", help="minimum relative change, e.g. 5% or 0.05 (as regress)"),
) -> int:
    """Write a static history site: confirmed regressions first, then every series over nights."""
    from eitp_bench.analysis.frames import sql_store
    from eitp_bench.analysis.history import store_history
    from eitp_bench.analysis.regress import parse_threshold
    from eitp_bench.report.history_site import built_from, is_current, prepare_out, write_site
    from eitp_bench.store import queries as store_queries

    rel = parse_threshold(threshold)
    prepare_out(out)  # an unwritable --out fails before the store is read
    sql = sql_store(store)  # read-only; a missing store is one line, exit 2
    if store_queries.run_count(sql) == 0:
        raise UserError(f"no runs in {sql.location.shown}: no history to write",
                        fix="run a suite first (eitp-bench run SUITE) or point --store at a results store")
    state = built_from(sql, window=window, threshold=rel)
    if is_current(out, state):  # e.g. a nightly job on a night when no run came in
        print(f"{out} is current: no run was stored or removed since its last build (with these settings); "
              "nothing written")
        return 0
    # one metric name's rows at a time (as regress), then only the pages that changed are drawn
    found = store_history(sql, window=window, threshold=rel, spill_dir=_spill_dir(out))
    result = write_site(found, sql, out, state=state)
    regressions = sum(1 for c, _ in found.confirmed_first() if c.kind == "regression")
    print(f"{len(found.summaries)} series pages: {result.written} written, {result.skipped} unchanged; "
          f"{result.run_pages} run pages written"
          + (f" ({result.runs_removed} run pages of an older site format removed)" if result.runs_removed else "")
          + (f"; {result.stale_removed} pages of series or nights no longer in the store removed"
             if result.stale_removed else "")
          + f"; {regressions} confirmed regression(s)")
    print(f"wrote {result.index}")
    return 0


def _spill_dir(out: str):
    """The scratch folder of the site at `out` (the rows kept between the analysis and the drawing): in
    the temporary folder, not in the site, named after the site so that a killed build's is cleared by
    the next one."""
    import hashlib
    import tempfile
    from pathlib import Path

    site = str(Path(out).resolve())
    return Path(tempfile.gettempdir()) / f"eitp-history-{hashlib.sha1(site.encode()).hexdigest()[:12]}"


def register(app) -> None:
    app.command("history")(reads_a_store(history))

"""`eitp-bench regress`: change points across every stored series; exit 1 on a confirmed regression."""

from __future__ import annotations

from typing import Optional

import typer

from eitp_bench.allocator import reads_a_store


def regress(
    store: Optional[str] = typer.Option(None, "--store", help="results store: a SQLite path or postgresql://user@host:port/db (default $EITP_BENCH_STORE or ./eitp-results/results.sqlite)"),
    window: int = typer.Option(8, "--window", help="points before/after a change point for the Mann–Whitney test"),
    threshold: str = typer.Option("5%", "--threshold", help="minimum relative change, e.g. 5% or 0.05"),
    html_out: Optional[str] = typer.Option(None, "--html", help="also write a report with a regressions section"),
) -> int:
    """Find confirmed regressions and improvements in every series (exit 1 if any regression)."""
    from eitp_bench.analysis.frames import load_series, sql_store
    from eitp_bench.analysis.regress import check_window, confirmed, find_changes, parse_threshold, store_changes, \
        testable_series
    from eitp_bench.report.build import write_report
    from eitp_bench.report.regress import regressions_section

    rel = parse_threshold(threshold)
    sql = sql_store(store)
    if sql is not None:  # one metric name's rows at a time: memory bounded by the largest metric's series
        scanned = store_changes(sql, window=window, threshold=rel)
        tested, total, changes = scanned.tested, scanned.total, scanned.changes
    else:  # frames without SQL: read whole
        frames = load_series(store)
        tested, total = testable_series(frames.metrics, provenance=frames.provenance)
        changes = None
    if tested == 0:  # said aloud: a green nightly job must not hide that nothing was checked
        print(f"nothing testable: none of {total} series has the {2 * 3} or more ok runs a change point needs "
              "(run the suite more nights)")
        return 0
    print(f"tested {tested} of {total} series (the others have fewer than 6 ok runs)")
    check_window(window)
    if changes is None:
        changes = find_changes(frames.metrics, window=window, threshold=rel, provenance=frames.provenance)
    found = confirmed(changes)
    regressions = [c for c in found if c.kind == "regression"]
    for label, group in (("regressions", regressions), ("improvements", [c for c in found if c.kind != "regression"])):
        print(f"{len(group)} {label}")
        for c in group:
            print(f"  {c.kind:<11} {c.series}: {c.before:.4g} → {c.after:.4g} ({100 * c.relative:+.1f} %)"
                  f" at {c.started_at} run {c.run_id[:8]}  p={c.p_value:.2g} q={c.q_value:.2g}")
    if html_out:  # the report reads as `report` does: on a large store, its newest groups only (it says so)
        write_report(sql if sql is not None else frames, html_out,
                     extra_sections=[regressions_section(changes, window=window, threshold=rel)])
        print(f"wrote {html_out}")
    return 1 if regressions else 0


def register(app) -> None:
    app.command("regress")(reads_a_store(regress))

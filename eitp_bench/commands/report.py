"""`eitp-bench report`: one self-contained HTML file with verdicts, plots and warnings."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from eitp_bench.allocator import reads_a_store


def report(
    store: Optional[str] = typer.Option(None, "--store", help="results store: a SQLite path or postgresql://user@host:port/db (default $EITP_BENCH_STORE or ./eitp-results/results.sqlite)"),
    suite: Optional[str] = typer.Option(None, "--suite", help="only this suite's runs"),
    out: str = typer.Option("report.html", "--out", help="the HTML file to write"),
    claims: str = typer.Option("eitp", "--claims", help="claims file: a built-in name or a YAML path"),
    regress: bool = typer.Option(False, "--regress", help="add a nightly-regressions section (default window/threshold)"),
    as_json: bool = typer.Option(False, "--json", help="print the findings (one verdict row per claim) as JSON; no HTML"),
    bundle: Optional[str] = typer.Option(None, "--bundle", help="also write an evidence bundle FILE.tar.gz (records, "
                                         "timelines, suites, claims, findings, report, versions, SHA-256 manifest) "
                                         "that `eitp-bench verify FILE.tar.gz` re-judges"),
    title: Optional[str] = typer.Option(None, "--title", help="the page's title (default: eitp-bench report — <suite>)"),
) -> None:
    """Write the HTML report: claim verdicts, distributions, energy, environment, warnings."""
    from eitp_bench.report.build import write_report

    if as_json:  # the same verdicts the HTML renders; only the judged groups' runs are read, a pair at a time
        import json

        from eitp_bench.report.build import newest_findings

        print(json.dumps(newest_findings(store, claims, suite=suite).to_json(), indent=1))
        if bundle:
            _write_bundle(bundle, store, suite, claims, html=None, to=sys.stderr)
        return
    extra = []
    if regress:  # every series of the store, read as `eitp-bench regress` reads them
        from eitp_bench.analysis.frames import load_series, sql_store
        from eitp_bench.analysis.regress import find_changes, store_changes
        from eitp_bench.report.regress import regressions_section

        sql = sql_store(store)
        if sql is not None:  # one metric name's rows at a time, as `regress` reads a SQL store
            scanned = store_changes(sql, window=8, threshold=0.05)
            if scanned.total:
                extra.append(regressions_section(scanned.changes, window=8, threshold=0.05))
        else:
            series = load_series(store)  # split by board and energy state as regress splits them: provenance
            if len(series.metrics):
                extra.append(regressions_section(find_changes(series.metrics, provenance=series.provenance),
                                                 window=8, threshold=0.05))
    # only the newest groups' runs when the store holds more (frames.load_report); the page says so
    path = write_report(store, out, suite=suite, claims=claims, extra_sections=extra, title=title)
    print(f"wrote {path}")
    if bundle:
        _write_bundle(bundle, store, suite, claims, html=path.read_text(encoding="utf-8"), to=sys.stdout)


def _write_bundle(out: str, store, suite, claims, *, html, to) -> None:
    from eitp_bench.report.bundle import bundle_report

    print(f"wrote {bundle_report(out, store=store, suite=suite, claims=claims, html=html)} "
          f"(check it with: eitp-bench verify {out})", file=to)


def register(app) -> None:
    app.command("report")(reads_a_store(report))

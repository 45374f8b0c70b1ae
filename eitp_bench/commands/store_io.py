"""`eitp-bench export` and `eitp-bench import`: move results between stores and machines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from eitp_bench.allocator import reads_a_store
from eitp_bench.errors import UserError

FORMATS = ("csv", "parquet", "jsonl", "openmetrics", "prometheus", "mlflow")
STORE_HELP = ("results store: a SQLite path or postgresql://user@host:port/db "
              "(default $EITP_BENCH_STORE or ./eitp-results/results.sqlite)")


def export(
    format_name: str = typer.Option(..., "--format", help="csv | parquet (one file per table) | jsonl (lossless) | "
                                    "openmetrics | prometheus (latest figure per series; node_exporter textfile: "
                                    "prometheus) | mlflow (one MLflow run per repetition, with --mlflow URI)"),
    out: Optional[Path] = typer.Option(
        None, "--out", help="directory for csv/parquet (default ./eitp-export); file for jsonl, openmetrics and "
                            "prometheus (default stdout; written atomically)"
    ),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
    mlflow_uri: Optional[str] = typer.Option(None, "--mlflow", help="with --format mlflow: the MLflow tracking URI "
                                             "(file:/path/mlruns or http://host:5000)"),
) -> None:
    """Export the results store as tables, records, Prometheus/OpenMetrics text or MLflow runs."""
    from eitp_bench.store import Store, export_jsonl, export_tables

    fmt = format_name.lower()
    if fmt not in FORMATS:
        raise UserError(
            f"--format {format_name!r} is not one of {', '.join(FORMATS)}", fix=f"use --format {' | '.join(FORMATS)}"
        )
    if (mlflow_uri is not None) != (fmt == "mlflow"):
        raise UserError("--mlflow URI goes with --format mlflow, and --format mlflow needs it",
                        fix="eitp-bench export --format mlflow --mlflow file:./mlruns")
    if fmt in ("openmetrics", "prometheus"):
        _export_metrics_text(fmt, out, store)
        return
    if fmt == "mlflow":
        from eitp_bench.exporters.mlflow_log import export_store

        export_store(store, mlflow_uri)
        return
    if fmt == "jsonl" and out is not None and out.is_dir():
        raise UserError(f"--out {out} is a directory; a jsonl export is one file", fix=f"pass a file path such as {out / 'results.jsonl'}")
    with Store.open(store, read_only=True) as st:
        if fmt == "jsonl":
            if out is None:
                export_jsonl(st, sys.stdout)
                return
            out.parent.mkdir(parents=True, exist_ok=True)
            with open(out, "w", encoding="utf-8") as f:
                n = export_jsonl(st, f)
            print(f"exported {n} runs to {out}")
            return
        out_dir = out if out is not None else Path("eitp-export")
        if out_dir.exists() and not out_dir.is_dir():
            raise UserError(
                f"--out {out_dir} is a file; {fmt} export writes one file per table", fix="pass a directory"
            )
        written = export_tables(st, out_dir, fmt)
        print(f"exported {st.count()} runs to {out_dir}: {', '.join(p.name for p in written)}")


def _export_metrics_text(dialect: str, out: Optional[Path], store: Optional[str]) -> None:
    """The latest figure per series; regress' analysis gives eitp_bench_regression. Read in SQL: the
    latest runs' rows and per-series aggregates (store_families), and regress's changes one metric name
    at a time (store_changes), so memory follows the series, not the records."""
    from eitp_bench.analysis.frames import sql_store
    from eitp_bench.analysis.regress import store_changes
    from eitp_bench.exporters.openmetrics import render, store_families, write_atomic

    if out is not None and out.is_dir():
        raise UserError(f"--out {out} is a directory; a {dialect} export is one file",
                        fix=f"pass a file path such as {out / 'eitp_bench.prom'}")
    with sql_store(store) as st:  # opened read-only
        fams = store_families(st, store_changes(st).changes)
    text = render(fams, dialect)
    if out is None:
        sys.stdout.write(text)
        return
    write_atomic(out, text)
    print(f"exported {sum(len(f.samples) for f in fams)} samples in {len(fams)} families to {out}")


def import_(
    files: List[str] = typer.Argument(
        ..., help="run folders, jsonl exports, per-repetition JSON files, folders of them, or - for stdin"
    ),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP + "; created if missing"),
) -> None:
    """Merge results gathered elsewhere into the store (idempotent: run_ids stored identically are skipped;
    a run_id stored with different content is reported and left as it is; exit 1 then)."""
    from eitp_bench.store.record_files import read_records
    from eitp_bench.store import Store

    # Read and validate every file before writing anything: a bad file aborts the whole import.
    batches, folders = read_records(files)
    for folder in folders:
        print(f"run folder {folder.path}: suite {folder.suite} (configuration {folder.config_hash[:12]})")
    added = identical = 0
    conflicting: list[str] = []
    with Store.open(store) as st:
        for batch in batches:  # one transaction per file: never half a file
            merged = st.merge(batch.records)
            added += merged.added
            identical += merged.identical
            conflicting += merged.conflicting
    print(f"imported {added} new, {identical} already present")
    if conflicting:
        examples = ", ".join(conflicting[:3])
        print(f"eitp-bench: warning: {len(conflicting)} run_ids are already stored with different content and were "
              f"NOT imported (e.g. {examples}); compare them with `eitp-bench export --format jsonl`", file=sys.stderr)
        raise typer.Exit(1)


def register(app) -> None:
    app.command("export")(reads_a_store(export))
    app.command("import")(import_)

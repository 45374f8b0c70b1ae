"""`eitp-bench export` and `eitp-bench import`: move results between stores and machines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from eitp_bench.errors import UserError

FORMATS = ("csv", "parquet", "jsonl")
STORE_HELP = ("results store: a SQLite path or postgresql://user@host:port/db "
              "(default $EITP_BENCH_STORE or ./eitp-results/results.sqlite)")


def export(
    format_name: str = typer.Option(..., "--format", help="csv | parquet (one file per table) | jsonl (lossless)"),
    out: Optional[Path] = typer.Option(
        None, "--out", help="directory for csv/parquet (default ./eitp-export); file for jsonl (default stdout)"
    ),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP),
) -> None:
    """Export the results store as csv/parquet tables or a jsonl file of full records."""
    from eitp_bench.store import Store, export_jsonl, export_tables

    fmt = format_name.lower()
    if fmt not in FORMATS:
        raise UserError(
            f"--format {format_name!r} is not one of {', '.join(FORMATS)}", fix="use --format csv, parquet or jsonl"
        )
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


def import_(
    files: List[str] = typer.Argument(
        ..., help="run folders, jsonl exports, per-repetition JSON files, folders of them, or - for stdin"
    ),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP + "; created if missing"),
) -> None:
    """Merge results gathered elsewhere into the store (idempotent: run_ids stored identically are skipped;
    a run_id stored with different content is reported and left as it is; exit 1 then)."""
    from eitp_bench.record_files import read_records
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
    app.command("export")(export)
    app.command("import")(import_)

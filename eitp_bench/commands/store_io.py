"""`eitp-bench export` and `eitp-bench import`: move results between stores and machines."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from eitp_bench.errors import UserError

FORMATS = ("csv", "parquet", "jsonl")
STORE_HELP = "results store (default $EITP_BENCH_STORE or ./eitp-results/results.sqlite)"


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
    with Store.open(store, create=False) as st:
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
    files: List[Path] = typer.Argument(..., help="jsonl exports, per-repetition JSON files, or directories of them"),
    store: Optional[str] = typer.Option(None, "--store", help=STORE_HELP + "; created if missing"),
) -> None:
    """Merge results gathered elsewhere into the store (idempotent: run_ids already present are skipped)."""
    from eitp_bench.store import Store, find_record_files, read_record_file

    # Read and validate every file before writing anything: a bad file aborts the whole import.
    batches = [read_record_file(path) for path in find_record_files(files)]
    added = total = 0
    with Store.open(store) as st:
        for records in batches:  # one transaction per file: never half a file
            added += st.add_many(records)
            total += len(records)
    print(f"imported {added} new, {total - added} already present")


def register(app) -> None:
    app.command("export")(export)
    app.command("import")(import_)

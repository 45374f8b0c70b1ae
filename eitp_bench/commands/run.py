"""`eitp-bench run SUITE`: run a suite's repetitions, one fresh process each, and save the records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer


def run(
    suite: str = typer.Argument(..., help="a bundled suite (smoke, standard, full) or a path to a suite YAML"),
    out: Optional[Path] = typer.Option(None, "--out", help="results folder (default ./eitp-results/<suite>-<time>/)"),
    set_: List[str] = typer.Option([], "--set", help="override a setting: --set train.steps=50 (repeatable)"),
    store: Optional[str] = typer.Option(None, "--store", help="also add every record to this results store"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress output"),
) -> int:
    """Run a suite: arms interleaved, one process per repetition; exit 1 if any repetition failed."""
    from eitp_bench.errors import UserError
    from eitp_bench.runner import Runner, RunInterrupted
    from eitp_bench.suite import load_suite

    cfg = load_suite(suite, set_)
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"suite {cfg.name!r} asks for device cuda, but torch sees no CUDA GPU here",
                            fix="run it on a GPU machine with a CUDA build of torch, or --set device=cpu")
    on_record = []
    if store is not None:
        on_record.append(_store_callback(store))
    runner = Runner(cfg, out, on_record=on_record, progress=not quiet)
    try:
        summary = runner.run()
    except RunInterrupted as stop:
        s = stop.summary
        print(f"eitp-bench: interrupted; {s.finished} of {s.planned} repetitions finished, kept in {s.out_dir}", file=sys.stderr)
        return 130
    failed = summary.failed
    print(f"{len(summary.records)} records from {summary.finished} repetitions in {summary.out_dir}")
    if failed:
        names = sorted({f"{r.arm}/{r.task}" for r in failed})
        print(f"{len(failed)} failed: {', '.join(names)} (errors in the records and {summary.out_dir / 'logs'})", file=sys.stderr)
        return 1
    return 0


def _store_callback(path: str):
    """Store.add for every record, when the store module exists (the lead wires it)."""
    try:
        from eitp_bench.store import Store
    except ImportError:
        from eitp_bench.errors import UserError

        raise UserError("--store needs eitp_bench.store, which this build does not have", fix="run without --store") from None
    return Store.open(path).add


def register(app) -> None:
    app.command("run")(run)

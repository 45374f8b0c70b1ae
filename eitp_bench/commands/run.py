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
    store: Optional[str] = typer.Option(
        None, "--store", help="results store for every record (default $EITP_BENCH_STORE or ./eitp-results/results.sqlite)"
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="write <out>/report.html at the end"),
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
    from eitp_bench.store import Store

    results = Store.open(store)  # opened (and checked) before anything runs
    try:
        runner = Runner(cfg, out, on_record=[results.add], progress=not quiet)
        try:
            summary = runner.run()
        except RunInterrupted as stop:
            s = stop.summary
            print(f"eitp-bench: interrupted; {s.finished} of {s.planned} repetitions finished, kept in {s.out_dir} "
                  f"and {results.path}", file=sys.stderr)
            return 130
    finally:
        results.close()
    failed = summary.failed
    print(f"{len(summary.records)} records from {summary.finished} repetitions in {summary.out_dir}")
    print(f"stored in {results.path}")
    if report:
        _write_report(results.path, summary)
    if failed:
        names = sorted({f"{r.arm}/{r.task}" for r in failed})
        print(f"{len(failed)} failed: {', '.join(names)} (errors in the records and {summary.out_dir / 'logs'})", file=sys.stderr)
        return 1
    return 0


def _write_report(store_path, summary) -> None:
    """The report over this run's records only (the store may hold earlier runs of other configs)."""
    from eitp_bench.report.build import load_frames, only_runs, write_report

    run_ids = {r.run_id for r in summary.records}
    if not run_ids:
        return
    frames = only_runs(load_frames(store_path), run_ids)
    path = write_report(frames, summary.out_dir / "report.html")
    print(f"report: {path}")


def register(app) -> None:
    app.command("run")(run)

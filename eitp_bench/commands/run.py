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
        None, "--store", help="results store for every record: a SQLite path or postgresql://user@host:port/db (default $EITP_BENCH_STORE or ./eitp-results/results.sqlite)"
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="write <out>/report.html at the end"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar: the plan line and one line per finished repetition"),
    resume: bool = typer.Option(False, "--resume", help="run only the repetitions of this suite not yet stored (needs the --out of the earlier run)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate the suite, print the plan and what is missing; run nothing"),
    as_json: bool = typer.Option(False, "--json", help="with --dry-run: print the plan as one JSON object"),
    profile: Optional[str] = typer.Option(None, "--profile", help="with --dry-run: estimate the time on a named hardware profile "
                                          "(a file stem such as nvidia-h100-sxm, or its name) instead of this machine"),
    # multi-rank repetitions (torchrun): the suite's `launcher:` section, overridden here
    nproc_per_node: Optional[int] = typer.Option(None, "--nproc-per-node", help="ranks per machine in every repetition (torchrun)"),
    nnodes: Optional[int] = typer.Option(None, "--nnodes", help="machines in every repetition"),
    node_rank: Optional[int] = typer.Option(None, "--node-rank", help="this machine's place, 0 … nnodes-1 (0 writes the records)"),
    rdzv_endpoint: Optional[str] = typer.Option(None, "--rdzv-endpoint", help="HOST:PORT on node 0 where the machines meet"),
    mlflow_uri: Optional[str] = typer.Option(None, "--mlflow", help="also log each repetition as an MLflow run at this "
                                             "tracking URI (file:/path/mlruns, http://host:5000); needs eitp-bench[mlflow]"),
) -> int:
    """Run a suite: arms interleaved, one process per repetition; exit 1 if any repetition failed."""
    from eitp_bench.errors import UserError
    from eitp_bench.runner.preflight import check_suite_before_work
    from eitp_bench.runner import Runner, RunInterrupted
    from eitp_bench.suite import suite_config_hash

    if as_json and not dry_run:
        raise UserError("--json prints the plan of a dry run", fix="add --dry-run, or drop --json")
    if profile is not None and not dry_run:
        raise UserError("--profile prices the plan on other hardware; a run runs here",
                        fix="add --dry-run, or drop --profile")
    if resume and out is None:
        raise UserError("--resume needs the results folder of the run to resume",
                        fix="pass --out DIR, the folder the earlier run wrote")

    def say_checking(cfg) -> None:
        # said at once on a terminal: the checks that follow import torch (seconds on a small machine); in logs
        # and pipes a bad suite's error stays the only line
        if not dry_run and sys.stderr.isatty():
            print(f"eitp-bench: suite {cfg.name}: checking this machine before running …", file=sys.stderr, flush=True)

    if out is not None and not dry_run:
        _check_out_folder(out, store)
    if mlflow_uri is not None and not dry_run:
        from eitp_bench.exporters.mlflow_log import require_mlflow

        require_mlflow()  # a missing extra is said before any work
    # Everything checked before any work: every problem at once, exit 2, nothing started or written.
    launcher = _launcher_overrides(nproc_per_node, nnodes, node_rank, rdzv_endpoint)
    cfg, missing = check_suite_before_work(suite, [*set_, *launcher], dry_run=dry_run, on_loaded=say_checking)
    if dry_run:
        _print_plan(cfg, missing, as_json, _estimate(cfg, profile, store, dry_run=True))
        return 0
    for m in missing:  # what does not stop the run, said before it starts
        print(f"eitp-bench: warning: {m.what}: {m.why} (fix: {m.fix})", file=sys.stderr)
    from eitp_bench.store import Store
    from eitp_bench.store.retry import StoreUnavailable

    results = Store.open(store)  # opened (and checked) before anything runs
    try:
        try:  # the price is information: a fault in pricing never stops the run
            estimate = _estimate(cfg, None, results, dry_run=False)
        except Exception as err:
            estimate = {"unavailable": f"the cost model failed: {err!r}"}
            print(f"eitp-bench: warning: no time estimate ({err!r})", file=sys.stderr)
        if "total_s" in estimate:
            print(f"eitp-bench: estimated {_duration(estimate['total_s'])} ({_duration(estimate['low_s'])}–"
                  f"{_duration(estimate['high_s'])}, {estimate['source']})", file=sys.stderr)
        mlflow = _mlflow_callback(mlflow_uri, cfg.name, out)
        runner = Runner(cfg, out, store=results, progress="quiet" if quiet else "auto", resume=resume,
                        estimate=_recorded(estimate), on_record=[mlflow] if mlflow else None)
        try:
            summary = runner.run()
        except StoreUnavailable as lost:  # a lasting outage: the folder keeps every finished repetition
            if mlflow:
                mlflow.finish(None)
            raise UserError(f"{lost.message}; the records of every finished repetition are kept in {runner.out_dir}",
                            fix=f"when the store is back: {_resume_command(suite, runner.out_dir, results, set_, launcher)}"
                            ) from None
        except RunInterrupted as stop:
            if mlflow:
                mlflow.finish(None)
            s = stop.summary
            print(f"eitp-bench: interrupted; {s.finished + s.skipped} of {s.planned} repetitions finished, kept in "
                  f"{s.out_dir} and {results.path} (add --resume to run the rest)", file=sys.stderr)
            return stop.exit_code
    finally:
        results.close()
    failed = summary.failed
    print(f"{len(summary.records)} records from {summary.finished} repetitions in {summary.out_dir}"
          + (f" ({summary.skipped} already stored, skipped)" if summary.skipped else ""))
    if cfg.launcher.node_rank > 0:
        print(f"this is node {cfg.launcher.node_rank} of {cfg.launcher.nnodes}: node 0 stores every record")
    print(f"stored in {results.path}")
    report_path = None
    if report:
        # the location as given: results.path masks a PostgreSQL password
        report_path = _write_report(store, summary, suite_config_hash(cfg))
    if mlflow:
        mlflow.finish(report_path)
    if failed:
        names = sorted({f"{r.arm}/{r.task}" for r in failed})
        print(f"{len(failed)} failed: {', '.join(names)} (errors in the records and {summary.out_dir / 'logs'})", file=sys.stderr)
        return 1
    return 0


def _check_out_folder(out: Path, store: Optional[str]) -> None:
    """--out must be a folder this user may create or write, and not the store itself."""
    import os

    from eitp_bench.errors import UserError
    from eitp_bench.file_kinds import not_a_file
    from eitp_bench.store.url import locate

    fix = "pass --out a folder (it is created if missing), e.g. --out eitp-results/my-run"
    why = not_a_file(out)
    if store is not None and "://" not in store or store is None:
        try:
            same = locate(store).path.resolve() == out.resolve()
        except (OSError, RuntimeError):
            same = False
        if same:
            raise UserError(f"--out {out} is the results store's path too", fix=fix + ", other than --store")
    if why is None:
        raise UserError(f"--out {out} is a file, not a folder", fix=fix)
    if why == "is a directory":
        return
    if why != "does not exist":
        raise UserError(f"--out {out} {why}", fix=fix)
    if any(len(os.fsencode(part)) > 255 for part in out.parts):
        raise UserError(f"--out has a name over 255 bytes, more than file systems allow", fix=fix)
    ancestor = out.absolute().parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"--out {out} is under {ancestor}, which {not_a_file(ancestor) or 'is a file'}, not a folder",
                        fix=fix)
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} cannot be created: {ancestor} is not writable", fix=fix)


def _resume_command(suite: str, out_dir, results, sets: list[str], launcher: list[str]) -> str:
    """The command that finishes this run (a PostgreSQL password shown as ***: give yours there)."""
    import shlex

    words = ["eitp-bench", "run", suite, "--out", str(out_dir), "--store", str(results.path)]
    for value in [*sets, *launcher]:
        words += ["--set", value]
    return shlex.join([*words, "--resume"])


def _launcher_overrides(nproc_per_node, nnodes, node_rank, rdzv_endpoint) -> list[str]:
    """The launcher options as --set assignments: validated with the suite, and they win over it."""
    import json

    given = {"nproc_per_node": nproc_per_node, "nnodes": nnodes, "node_rank": node_rank, "rdzv_endpoint": rdzv_endpoint}
    return [f"launcher.{k}={json.dumps(v)}" for k, v in given.items() if v is not None]


def _pretrained_config(cfg) -> Optional[dict]:
    """The pretrained checkpoint's config.json from a local directory or the local hub cache, or None."""
    import json

    if not cfg.pretrained:
        return None
    try:
        folder = Path(cfg.pretrained)
        if not folder.is_dir():
            from eitp_bench.workloads.assets import snapshot_dir

            folder = snapshot_dir(cfg.pretrained, "model")
        return json.loads((folder / "config.json").read_text(encoding="utf-8")) if folder else None
    except (OSError, ValueError, TypeError):
        return None


def _estimate(cfg, profile: Optional[str], store, *, dry_run: bool) -> dict:
    """The cost model's estimate (analysis/cost_model.py) for this machine or a named profile: from measured rates of
    this suite on that hardware when the store holds runs of it (analysis/runtime.py), else from the profile.
    {"unavailable": why} when it cannot be priced (no GPU here for a GPU suite, an unknown model shape)."""
    from eitp_bench.analysis import cost_model

    if profile is not None:
        hardware = cost_model.hardware_from_profile(profile)
        match = {"profile_name": _profile_name(profile)}
    else:
        hardware = cost_model.hardware_here()
        if cfg.device == "cuda" and hardware.gpu is None:
            return {"unavailable": "this machine has no GPU with a known profile for the suite's device cuda",
                    "fix": "price it on the GPU you mean: --profile nvidia-h100-sxm (or another hardware profile)"}
        from eitp_bench.hardware import describe

        match = {"profile_id": describe()["profile_id"]}
    measured = _measured(cfg, store, match, dry_run)
    try:
        result = cost_model.estimate(cfg, hardware, pretrained_config=_pretrained_config(cfg), measured=measured)
    except ValueError as err:
        return {"unavailable": str(err), "fix": "run `eitp-bench prepare` for the suite so its model config is cached"}
    return result.as_dict()


def _profile_name(profile: str) -> str:
    from eitp_bench.hardware.profiles import find_profile

    return find_profile(profile)[1].name


def _measured(cfg, store, match: dict, dry_run: bool):
    """Measured rates from the store (analysis/runtime.py reads it), or None when it holds none."""
    from eitp_bench.analysis.runtime import measured_rates, rate_frames

    frames = rate_frames(store, open_read_only=dry_run)
    return measured_rates(frames, cfg, **match) if frames is not None else None


def _recorded(estimate: dict) -> Optional[dict]:
    """What every record keeps of the estimate (provenance.hardware.cost_estimate): the figures, not the text."""
    if "total_s" not in estimate:
        return None
    keep = ("total_s", "low_s", "high_s", "phases", "source", "hardware", "repetitions", "idle_measurements")
    return {k: estimate[k] for k in keep}


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min" if seconds >= 3600 else f"{seconds // 60} min {seconds % 60:02d} s"


def _print_plan(cfg, missing, as_json: bool, estimate: Optional[dict] = None) -> None:
    """The dry run: every repetition with its arm's effective settings, the estimate, the claims it can judge
    and what this machine lacks."""
    import json

    from eitp_bench.analysis.claim_plan import claim_plan
    from eitp_bench.analysis.claims import load_claims
    from eitp_bench.runner import plan
    from eitp_bench.suite import effective_settings, suite_config_hash, unequal_settings

    entries = [spec.plan_entry(cfg) for spec in plan(cfg)]
    differ = unequal_settings({arm: effective_settings(cfg, arm) for arm in cfg.arms})
    claims = claim_plan(cfg, load_claims("eitp"))
    if as_json:
        print(json.dumps({
            "suite": cfg.name, "config_hash": suite_config_hash(cfg), "repetitions": entries,
            "launcher": {**cfg.launcher.model_dump(mode="json"), "world_size": cfg.launcher.world_size},
            "unequal_settings": differ, "missing": [m.as_dict() for m in missing],
            "estimate": estimate or {}, "claims": claims,
        }, indent=1, default=str))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from eitp_bench.display import cell

    console = Console()
    console.print(f"suite [bold]{escape(cfg.name)}[/] ({suite_config_hash(cfg)[:12]}): {len(entries)} repetitions, "
                  f"{len(cfg.arms)} arms × {cfg.repetitions} rounds × {len(cfg.sizes)} sizes; nothing will run (--dry-run)")
    if cfg.launcher.world_size > 1:
        la = cfg.launcher
        console.print(f"each repetition: {la.world_size} ranks ({la.nproc_per_node} per machine × {la.nnodes} machines), "
                      f"this is node {la.node_rank}; global batch {cfg.train.batch_size} = "
                      f"{cfg.train.batch_size // la.world_size} per rank")
    table = Table("setting", *cfg.arms, title="effective settings per arm (a difference other than the objective is highlighted)")
    settings = {arm: effective_settings(cfg, arm) for arm in cfg.arms}
    for key in dict.fromkeys(k for s in settings.values() for k in s):
        style = "bold red" if key in differ else None
        table.add_row(escape(key), *(escape(cell(settings[a].get(key), "off")) for a in cfg.arms), style=style)
    console.print(table)
    rounds = {}
    for e in entries:
        rounds.setdefault((e["size"], e["repetition"], e["seed"]), []).append(e["arm"])
    for (size, rep, seed), arms in rounds.items():
        console.print(f"  {escape(size)} round {rep} (seed {seed}): {escape(' → '.join(arms))}")
    if differ:
        console.print(f"[bold red]arms differ in {', '.join(differ)}: verdicts over them will be NOT COMPARABLE[/]")
    _print_estimate(console, estimate or {}, escape)
    for name, group in claims["groups"].items():
        if group["judged"] or name == "headline":
            ok = "enough" if group["enough"] else "[bold red]too few[/]"
            console.print(f"{name} claims judged ({len(group['judged'])}): {escape(', '.join(group['judged']) or 'none')}; "
                          f"Holm needs ≥ {group['rounds_needed']} rounds, the plan has {group['rounds']} ({ok})")
    for line in claims["unjudged_named"]:
        console.print(f"[bold red]named in the suite's claims but not judged by this plan:[/] {escape(line)}")
    if missing:
        console.print("[bold]missing on this machine:[/]")
        for m in missing:
            kind = "stops the run" if m.blocking else "run goes on"
            console.print(f"  - {escape(m.what)} ({kind}): {escape(m.why)}; fix: {escape(m.fix)}")
    else:
        console.print("nothing missing: this machine can run the suite as planned")


def _print_estimate(console, e: dict, escape) -> None:
    if "total_s" not in e:
        if e:
            console.print(f"estimate: none ({escape(e.get('unavailable', ''))}; {escape(e.get('fix', ''))})")
        return
    console.print(f"[bold]estimated time[/] on {escape(e['hardware'])}: {_duration(e['total_s'])} "
                  f"(range {_duration(e['low_s'])} – {_duration(e['high_s'])}; source: {e['source']}, "
                  f"{escape(e['uncertainty']['why'])})")
    console.print("  " + ", ".join(f"{p} {_duration(s)}" for p, s in e["phases"].items() if s)
                  + f"; {e['repetitions']} processes, {e['idle_measurements']} idle baselines")
    for w in e.get("warnings", []):
        console.print(f"  [bold red]warning:[/] {escape(w)}")


def _write_report(store, summary, config_hash: str):
    """The report over this folder's records only (the store may hold earlier runs of other configs)."""
    from eitp_bench.report.build import load_frames, only_runs, write_report

    run_ids = summary.run_ids(config_hash)
    if not run_ids:
        return None
    frames = only_runs(load_frames(store), run_ids)
    path = write_report(frames, summary.out_dir / "report.html")
    print(f"report: {path}")
    return path


def _mlflow_callback(uri: Optional[str], suite_name: str, out: Optional[Path]):
    """run --mlflow: the on_record callback (exporters/mlflow_log.py); it never fails the run."""
    if uri is None:
        return None
    from datetime import datetime, timezone

    from eitp_bench.exporters.mlflow_log import MlflowLogger, RunCallback

    batch = out.name if out is not None else f"{suite_name} {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    try:
        return RunCallback(MlflowLogger(uri, batch_name=batch, bounded_retries=True))
    except Exception as err:  # noqa: BLE001 - a bad URI must not stop the benchmark
        print(f"eitp-bench: warning: MLflow at {uri} unusable ({err}); running without it", file=sys.stderr)
        return None


def register(app) -> None:
    app.command("run")(run)

"""Coming back to a results folder: one run at a time, staged repetitions recovered, `--resume`.

- `lock_out_dir`: an exclusive lock on `<out>/.lock` for as long as a run uses the folder (the kernel
  drops it when the process dies, even by SIGKILL), so recovery never takes a live run's staging.
- `recover_staged`: a repetition whose worker finished every task but whose parent died before
  publishing it is published now; an incomplete one is discarded (its log kept) and said so.
- `check_out_dir`: a folder that already holds a run is refused without `--resume` (no silent
  duplicates), and `--resume` with a changed suite is refused with the differing fields named.
- `stored_repetitions`: what the store already holds of a configuration, by (arm, size, repetition).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

from eitp_bench.errors import UserError
from eitp_bench.records import RunRecord
from eitp_bench.runner.plan import RepetitionSpec
from eitp_bench.runner.staging import read_spec, remove_staging_root_if_empty, staged_records, staging_folders
from eitp_bench.suite import Suite, suite_config_hash

SUITE_FILE = "suite.json"
MAX_NAMED_DIFFERENCES = 8


def lock_out_dir(out_dir: Path):
    """Hold `<out>/.lock` for this run; a second run into the same folder is refused."""
    out_dir.mkdir(parents=True, exist_ok=True)
    handle = open(out_dir / ".lock", "a+")
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # not POSIX: no lock, as before
        pass
    except OSError:
        handle.close()
        raise UserError(f"another eitp-bench run is using {out_dir}",
                        fix="wait for it to finish, or pass a different --out") from None
    return handle


def recover_staged(out_dir: Path, publish: Callable[[RepetitionSpec, list[RunRecord], Path], None],
                   note: Callable[[str], None]) -> int:
    """Publish the complete repetitions an earlier run left staged; discard incomplete ones, visibly."""
    recovered = records = 0
    for staging in staging_folders(out_dir):
        spec = read_spec(staging)
        found = staged_records(staging, spec.tasks) if spec else {}
        if spec is not None and len(found) == len(spec.tasks):
            spec.staging = str(staging)  # where it is now (the folder may have moved since)
            publish(spec, [found[t] for t in spec.tasks], staging / "worker.log")
            recovered, records = recovered + 1, records + len(found)
        else:
            label = spec.label if spec else staging.name
            missing = [t for t in spec.tasks if t not in found] if spec else ["spec.json unreadable"]
            kept = _keep_log(out_dir, staging, label)
            note(f"discarded incomplete repetition {label} left by an earlier run (no record for: "
                 f"{', '.join(missing)}){f'; its log: {kept}' if kept else ''}; `--resume` runs it again")
        shutil.rmtree(staging, ignore_errors=True)
    remove_staging_root_if_empty(out_dir)
    if recovered:
        note(f"recovered {recovered} finished repetitions ({records} records) that an earlier run left staged "
             f"in {out_dir}: now in the store and the results folder")
    return recovered


def _keep_log(out_dir: Path, staging: Path, label: str):
    log = staging / "worker.log"
    if not log.exists() or not log.stat().st_size:
        return None
    (out_dir / "logs").mkdir(exist_ok=True)
    target = out_dir / "logs" / f"{label}.discarded.log"
    os.replace(log, target)
    return target


def record_files(out_dir: Path) -> list[Path]:
    """The published records of a results folder (<label>-<task>.json; not suite.json, not hidden files)."""
    return sorted(p for p in out_dir.glob("*.json") if p.name != SUITE_FILE and not p.name.startswith("."))


def check_out_dir(out_dir: Path, suite: Suite, resume: bool) -> None:
    """Refuse a folder that holds another run (without --resume) or another configuration (with it)."""
    path = out_dir / SUITE_FILE
    if not path.exists():
        if resume:  # no suite.json: the records themselves carry the configuration they ran
            _check_records_config(out_dir, suite_config_hash(suite))
        return
    if not resume:
        raise UserError(f"{out_dir} already holds a run of a suite ({SUITE_FILE}); running again would add "
                        "its repetitions a second time",
                        fix=f"add --resume to run only the repetitions not yet stored, or pass a new --out")
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))
        earlier_hash, earlier_suite = earlier["config_hash"], earlier["suite"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"cannot read {path} to resume: {err}", fix="pass a new --out") from None
    if earlier_hash == suite_config_hash(suite):
        return
    diffs = config_differences(earlier_suite, suite.model_dump(mode="json"))
    shown = "; ".join(diffs[:MAX_NAMED_DIFFERENCES]) + (f"; and {len(diffs) - MAX_NAMED_DIFFERENCES} more"
                                                         if len(diffs) > MAX_NAMED_DIFFERENCES else "")
    raise UserError(f"cannot resume {out_dir}: the suite differs from the one it ran ({shown or 'config hash differs'})",
                    fix="resume with the same suite and --set values, or pass a new --out for the changed suite")


def _check_records_config(out_dir: Path, config_hash: str) -> None:
    """Refuse to resume a folder without suite.json whose records ran another configuration (or cannot be read)."""
    from eitp_bench.store.record_files import read_record_file

    for file in record_files(out_dir):
        try:
            others = [r for r in read_record_file(file) if r.suite_config_hash != config_hash]
        except UserError as err:
            raise UserError(f"cannot resume {out_dir}: it has no {SUITE_FILE} and {err.message}",
                            fix=f"restore {out_dir / SUITE_FILE}, or pass a new --out") from None
        if others:
            raise UserError(f"cannot resume {out_dir}: it has no {SUITE_FILE}, and {file.name} holds a record of "
                            f"configuration {others[0].suite_config_hash[:12]}, not this suite's {config_hash[:12]}",
                            fix=f"resume with the suite and --set values that run used (or restore {out_dir / SUITE_FILE}), "
                                "or pass a new --out")


def config_differences(old, new, prefix: str = "") -> list[str]:
    """`field: old → new` for every dotted field that differs between two suite dumps."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{name}: (absent) → {json.dumps(new[key])}")
            elif key not in new:
                out.append(f"{name}: {json.dumps(old[key])} → (absent)")
            else:
                out += config_differences(old[key], new[key], name)
        return out
    return [] if old == new else [f"{prefix}: {json.dumps(old)} → {json.dumps(new)}"]


def stored_repetitions(store, config_hash: str) -> dict[tuple[str, str, int], dict[str, str]]:
    """(arm, size, repetition) → {task: run_id} of what the store holds for this configuration."""
    runs = store.runs_frame()
    runs = runs[runs["suite_config_hash"] == config_hash]
    held: dict[tuple[str, str, int], dict[str, str]] = {}
    for arm, size, rep, task, run_id in zip(runs["arm"], runs["size"], runs["repetition"], runs["task"], runs["run_id"]):
        held.setdefault((arm, size, int(rep)), {})[task] = run_id
    return held


def import_unstored(out_dir: Path, store, config_hash: str, note: Callable[[str], None]) -> int:
    """--resume: records in the folder that the store lacks (a store deleted or replaced since) are put
    into the store, so they are skipped, never run again over their files. Returns how many."""
    from eitp_bench.store.record_files import read_record_file

    held = {run_id for tasks in stored_repetitions(store, config_hash).values() for run_id in tasks.values()}
    missing = []
    for path in record_files(out_dir):
        for record in read_record_file(path):  # validated; a bad file refuses the resume, naming it
            if record.suite_config_hash == config_hash and record.run_id not in held:
                missing.append(record)
    if missing:
        store.add_many(missing)
        note(f"imported {len(missing)} records from {out_dir} that the store lacked (the store was replaced or "
             "emptied since they were run); they are not run again")
    return len(missing)

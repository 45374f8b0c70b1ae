"""The staging folder of one repetition: what the worker writes there, and what the parent reads back.

Layout: `<out>/.staging/<label>-XXXX/` holds `spec.json` (the RepetitionSpec, written by the parent),
`worker.log` (the worker's stdout and stderr), `phase` (the task running now) and one `<task>.json`
RunRecord per finished task, each written atomically. A repetition is *complete* once every task of
its spec has a record there; the parent then publishes them and removes the folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from eitp_bench.records import RunRecord
from eitp_bench.runner.plan import RepetitionSpec

ERROR_TAIL_LINES = 20
STAGING_DIR = ".staging"


def write_json_atomic(path: Path, data: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes it 0600: give it the mode any new file gets (the report's)
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """This process's umask, read without changing it (Linux: /proc), else by setting it back at once."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_staging(out_dir: Path, spec: RepetitionSpec) -> Path:
    """A fresh staging folder for `spec`, with the spec written into it (recovery reads it back)."""
    root = out_dir / STAGING_DIR
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{spec.label}-", dir=root)).resolve()
    spec.staging = str(staging)
    write_json_atomic(staging / "spec.json", json.dumps(asdict(spec)))
    return staging


def staging_folders(out_dir: Path) -> list[Path]:
    root = out_dir / STAGING_DIR
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def remove_staging_root_if_empty(out_dir: Path) -> None:
    try:
        (out_dir / STAGING_DIR).rmdir()
    except OSError:
        pass  # absent, or still holds a folder


def read_spec(staging: Path) -> Optional[RepetitionSpec]:
    try:
        return RepetitionSpec(**json.loads((staging / "spec.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def staged_records(staging: Path, tasks: list[str]) -> dict[str, RunRecord]:
    """The task records the worker finished (a half-written or unreadable file counts as missing)."""
    out = {}
    for task in tasks:
        path = staging / f"{task}.json"
        try:
            out[task] = RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return out


def read_phase(staging: Path) -> str:
    try:
        return (staging / "phase").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def tail(path: Path, lines: int = ERROR_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])

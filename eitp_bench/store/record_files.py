"""Reading RunRecords from files for `eitp-bench import`: jsonl exports, per-repetition JSON, run folders, stdin.

Everything is read and validated before anything is written (a bad file aborts the whole import).
A run folder (`eitp-bench run --out DIR`) holds `suite.json`, the suite it ran: it is read as the
suite, not as a record, and every record under the folder must carry its configuration hash.
Hidden entries (`.staging/`, temporary files) are the runner's own business and are skipped.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from eitp_bench.errors import UserError
from eitp_bench.file_kinds import not_a_file
from eitp_bench.records import SCHEMA_VERSION as RECORD_SCHEMA_VERSION
from eitp_bench.records import RunRecord

RECORD_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
SUITE_FILE = "suite.json"
STDIN = "-"


@dataclass
class Batch:
    """The records of one source (a file, or stdin): imported in one transaction."""

    source: str
    records: list[RunRecord]


@dataclass
class RunFolder:
    path: Path
    suite: str
    config_hash: str
    files: list[Path] = field(default_factory=list)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def read_suite_file(path: Path) -> RunFolder:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return RunFolder(path.parent, str(data["suite"]["name"]), str(data["config_hash"]))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise UserError(f"{path} is not the suite.json of an eitp-bench run folder ({type(err).__name__}: {err})",
                        fix="import the run folder eitp-bench wrote, or only its record files") from None


def find_record_files(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[RunFolder]]:
    """Expand folders (recursively, hidden entries skipped) into their record files; run folders found."""
    files: list[Path] = []
    folders: list[RunFolder] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.name.endswith(RECORD_SUFFIXES) and not _hidden(p, path))
            suites = [p for p in found if p.name == SUITE_FILE]
            for suite_file in suites:
                folder = read_suite_file(suite_file)
                folder.files = [p for p in found if p.parent == suite_file.parent and p != suite_file]
                folders.append(folder)
            found = [p for p in found if p.name != SUITE_FILE]
            if not found:
                raise UserError(
                    f"{path} holds no result files ({', '.join(RECORD_SUFFIXES)})",
                    fix="pass a run folder, a jsonl export, per-repetition JSON files, or a folder of them",
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path} {not_a_file(path)}", fix="pass a record file or a folder of them to import")
    return files, folders


def read_records(paths: Iterable[str | os.PathLike], stdin=None) -> tuple[list[Batch], list[RunFolder]]:
    """Every record of every path ("-" = stdin), validated; UserError naming the first bad one."""
    paths = [os.fspath(p) for p in paths]
    batches: list[Batch] = []
    if STDIN in paths:
        stream = stdin if stdin is not None else sys.stdin
        batches.append(Batch("stdin", parse_records(stream.read(), "stdin", jsonl=None)))
    files, folders = find_record_files(p for p in paths if p != STDIN)
    batches.extend(Batch(str(path), read_record_file(path)) for path in files)
    by_file = {b.source: b for b in batches}
    for folder in folders:
        for path in folder.files:
            for r in by_file[str(path)].records:
                if r.suite_config_hash != folder.config_hash:
                    raise UserError(
                        f"{path} holds run {r.run_id} of configuration {r.suite_config_hash[:12]}, but its run "
                        f"folder's suite.json is configuration {folder.config_hash[:12]} ({folder.suite})",
                        fix="import the files separately; a run folder holds the records of its own suite only",
                    )
    return batches, folders


def read_record_file(path: Path) -> list[RunRecord]:
    """All records of one file (jsonl export, or one RunRecord JSON, or a JSON list); UserError if any is bad."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise UserError(f"cannot read {path}: {err}", fix="check the file is an eitp-bench JSON/JSONL result") from None
    return parse_records(text, str(path), jsonl=True if path.name.endswith((".jsonl", ".jsonl.gz")) else None)


def parse_records(text: str, where: str, jsonl: Optional[bool]) -> list[RunRecord]:
    from pydantic import ValidationError

    stripped = text.lstrip()
    if jsonl or (stripped.startswith("{") and "\n{" in stripped):
        chunks = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    else:
        chunks = [(None, text)] if stripped else []
    records: list[RunRecord] = []
    for line_no, chunk in chunks:
        at = where + (f" line {line_no}" if line_no else "")
        try:
            data = json.loads(chunk)
            items = data if isinstance(data, list) else [data]
            for item in items:
                version = item.get("schema_version") if isinstance(item, dict) else None
                if isinstance(version, int) and version > RECORD_SCHEMA_VERSION:
                    raise UserError(
                        f"{at} holds a record of schema v{version}, written by a newer eitp-bench "
                        f"(this one reads up to v{RECORD_SCHEMA_VERSION})",
                        fix="upgrade eitp-bench (pip install -U eitp-bench) to import it; nothing from it was imported",
                    )
                records.append(RunRecord.model_validate(item))  # validation upgrades older schema versions
        except RecursionError:
            raise UserError(f"{at} nests JSON deeper than Python can read (thousands of levels); eitp-bench never "
                            "writes that", fix="import only files written by eitp-bench; nothing from it was imported") from None
        except json.JSONDecodeError as err:
            raise UserError(
                f"{at} is not valid JSON ({err.msg} at column {err.colno})",
                fix="re-export it (`eitp-bench export --format jsonl`) or remove it; nothing from it was imported",
            ) from None
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "record"
            raise UserError(
                f"{at} is not an eitp-bench RunRecord: field {loc!r}: {first['msg']}",
                fix="import only files written by eitp-bench (run outputs or jsonl exports); nothing from it was imported",
            ) from None
    return records

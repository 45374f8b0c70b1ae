"""Re-judge an evidence bundle (report/bundle.py) from its own files and say where it disagrees.

1. Every file's SHA-256 against MANIFEST.json: a file whose bytes changed, a listed file that is
   missing and a file the manifest does not list are each named.
2. The bundled records are imported into a temporary store, the analysis runs on them with the
   bundled claims and the bundled settings (the bootstrap is seeded), and its findings JSON is
   compared with the bundled findings.json (and figures.json: the data of the page's other figures)
   field by field, whatever fields the analysis produces:
   strings, verdicts and counts exactly, numbers to a relative 1e-9 (the same arithmetic on another
   machine or library build may differ in the last bits). Each difference is named by claim id,
   field, bundled value and recomputed value.

Nothing outside the bundle is read: no store, no network, no suite file.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eitp_bench.errors import UserError
from eitp_bench.report.bundle import (CLAIMS, ENVIRONMENT, FIGURES, FINDINGS, MANIFEST, PACKAGES, RECORDS, figures_json,
                                     read_tar, sha256)

REL_TOL = 1e-9
IGNORED_KEYS = {"source"}  # top level: where the analysis read its records (a store path), not a finding
_BAD = "give the .tar.gz written by `eitp-bench report --bundle` (or re-create it)"


@dataclass
class Check:
    hash_problems: list[str]
    differences: list[str]
    notes: list[str]
    compared: int  # values compared in the findings

    @property
    def ok(self) -> bool:
        return not self.hash_problems and not self.differences


def check_hashes(files: dict[str, bytes]) -> list[str]:
    if MANIFEST not in files:
        raise UserError(f"the bundle has no {MANIFEST}", fix=_BAD)
    try:
        listed = json.loads(files[MANIFEST])["sha256"]
        assert isinstance(listed, dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise UserError(f"the bundle's {MANIFEST} is not a manifest of SHA-256 hashes", fix=_BAD) from None
    problems = []
    for name, expected in sorted(listed.items()):
        if name not in files:
            problems.append(f"{name}: listed in the manifest but missing from the bundle")
        elif sha256(files[name]) != expected:
            problems.append(f"{name}: SHA-256 {sha256(files[name])[:16]}… differs from the manifest's {str(expected)[:16]}…")
    problems += [f"{name}: not listed in the manifest" for name in sorted(set(files) - set(listed) - {MANIFEST})]
    return problems


def _json(files: dict[str, bytes], name: str) -> Any:
    if name not in files:
        raise UserError(f"the bundle has no {name}", fix=_BAD)
    try:
        return json.loads(files[name])
    except ValueError as err:
        raise UserError(f"the bundle's {name} is not JSON ({err})", fix=_BAD) from None


def recompute(files: dict[str, bytes]) -> dict[str, dict]:
    """{findings.json, figures.json} of the bundled records, judged again with the bundled claims and settings."""
    from eitp_bench.store.record_files import parse_records
    from eitp_bench.report.build import findings_of, for_suite, load_frames
    from eitp_bench.store import Store

    settings = _json(files, ENVIRONMENT).get("report_settings") or {}
    for name in (RECORDS, CLAIMS):
        if name not in files:
            raise UserError(f"the bundle has no {name}", fix=_BAD)
    try:
        records = parse_records(files[RECORDS].decode("utf-8"), RECORDS, jsonl=True)
    except UnicodeDecodeError:
        raise UserError(f"the bundle's {RECORDS} is not UTF-8 text", fix=_BAD) from None
    with tempfile.TemporaryDirectory(prefix="eitp-verify-") as tmp:
        claims = Path(tmp) / "claims.yaml"
        claims.write_bytes(files[CLAIMS])
        store_path = Path(tmp) / "bundle.sqlite"
        with Store.open(str(store_path)) as store:
            store.add_many(records)
        with Store.open(str(store_path), read_only=True) as store:
            frames = for_suite(load_frames(store), settings.get("suite"))
            kwargs = {k: settings[k] for k in ("n_resamples", "max_groups") if k in settings}
            findings = with_scope(findings_of(frames, str(claims), **kwargs), settings.get("scope"), len(records))
            return {FINDINGS: findings.to_json(), FIGURES: figures_json(findings)}


def with_scope(findings, scope, runs_read: int):
    """The findings of a report that read only the newest groups of a larger store (bundle.bundle_report):
    the bundle holds those groups' runs, re-judged here; what the report said of the runs it did not read
    (the groups it did not judge, how many runs it left) is the bundle's own statement, taken as written
    and named by `scope_note`. Everything else is recomputed."""
    from dataclasses import replace

    if not scope:
        return findings
    return replace(findings, omitted_groups=list(scope["omitted_groups"]),
                   coverage={"groups": len(findings.groups), "runs_read": runs_read,
                             "runs_not_read": scope["runs_not_read"]})


def scope_note(files: dict[str, bytes]) -> list[str]:
    scope = (_json(files, ENVIRONMENT).get("report_settings") or {}).get("scope")
    if not scope:
        return []
    return [f"the report judged the newest groups of a larger store: the bundle holds their runs, re-judged here; "
            f"its {len(scope['omitted_groups'])} other groups and {scope['runs_not_read']} runs not read are "
            f"as the report stated them (their records are not in the bundle)"]


def compare(bundled: Any, recomputed: Any, *, rel_tol: float = REL_TOL) -> tuple[list[str], int]:
    """Every difference between two findings JSONs (named), and how many values were compared."""
    differences: list[str] = []
    count = 0

    def where(path: list[str]) -> str:
        return "".join(p if p.startswith("[") or i == 0 else f".{p}" for i, p in enumerate(path)) or "(top level)"

    def walk(a: Any, b: Any, path: list[str], claim: str | None) -> None:
        nonlocal count
        prefix = f"claim {claim}: " if claim else ""
        if isinstance(a, dict) and isinstance(b, dict):
            claim = a.get("claim") if isinstance(a.get("claim"), str) else claim
            for key in sorted(set(a) | set(b)):
                if not path and key in IGNORED_KEYS:
                    continue
                if key not in b:
                    differences.append(f"{prefix}{where(path + [key])}: in the bundle, not recomputed")
                elif key not in a:
                    differences.append(f"{prefix}{where(path + [key])}: recomputed, not in the bundle")
                else:
                    walk(a[key], b[key], path + [key], claim)
            return
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                differences.append(f"{prefix}{where(path)}: {len(a)} items bundled, {len(b)} recomputed")
            for i, (x, y) in enumerate(zip(a, b)):
                label = x.get("claim") if isinstance(x, dict) and isinstance(x.get("claim"), str) else None
                walk(x, y, path + [f"[{label}]" if label else f"[{i}]"], claim)
            return
        count += 1
        if not _same(a, b, rel_tol):
            differences.append(f"{prefix}{where(path)}: bundled {a!r}, recomputed {b!r}")

    walk(bundled, recomputed, [], None)
    differences.sort(key=lambda d: ".verdict:" not in d)  # a changed verdict first (a stable sort)
    return differences, count


def _same(a: Any, b: Any, rel_tol: float) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b or math.isclose(a, b, rel_tol=rel_tol, abs_tol=0.0)
    return a == b and type(a) is type(b)


def verify_bundle(path: str | Path, *, rel_tol: float = REL_TOL) -> Check:
    """Check the hashes and re-judge; UserError (exit 2) for a bundle that cannot be read at all."""
    files = read_tar(path)
    hash_problems = check_hashes(files)
    bundled = {name: _json(files, name) for name in (FINDINGS, FIGURES)}
    try:
        recomputed = recompute(files)
    except UserError as err:
        if not hash_problems:
            raise
        # A file that changed and no longer reads: both are the answer, not a crash.
        return Check(hash_problems, [f"cannot re-judge: {err.message}"], [], 0)
    differences, compared = [], 0
    for name in (FINDINGS, FIGURES):
        found, n = compare(bundled[name], recomputed[name], rel_tol=rel_tol)
        differences += [f"{name}: {d}" for d in found]
        compared += n
    return Check(hash_problems, differences, scope_note(files) + _version_notes(files), compared)


def _version_notes(files: dict[str, bytes]) -> list[str]:
    """Packages whose version here differs from the bundle's: a reason a figure may differ."""
    from eitp_bench.report.bundle import environment

    bundled = (_json(files, ENVIRONMENT).get("packages") or {})
    here = environment({})["packages"]
    return [f"package version differs: {name} {bundled.get(name)} in the bundle, {here.get(name)} here"
            for name in PACKAGES if name in bundled and bundled.get(name) != here.get(name)]

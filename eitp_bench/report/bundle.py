"""The evidence bundle: everything a reviewer needs to re-judge a report, in one .tar.gz.

    records.jsonl       every record the report judged (the lossless export: energy entries, flags, timelines)
    timelines.csv       the raw power timelines of those records, one row per point (also inside the records)
    suites/<hash>.json  the resolved configuration of each suite configuration judged
    claims.yaml         the claims registry the verdicts were judged against
    findings.json       `report --json`: every verdict, effect, interval and figure
    figures.json        the data behind the page's other figures (summary, energy table and breakdown,
                        distributions, timelines, Pareto points, environment, warnings)
    report.html         the rendered report
    environment.json    the versions of eitp-bench, Python and the packages the analysis uses, and the
                        report's own settings (suite, claims, resamples, groups) that `verify` re-applies
    MANIFEST.json       the SHA-256 of every file above

`eitp-bench verify` (report/verify.py) re-runs the analysis from these files alone and compares.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import tarfile
import time
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Optional

from eitp_bench.errors import UserError

FORMAT = 1
MANIFEST = "MANIFEST.json"
RECORDS, TIMELINES, CLAIMS, FINDINGS, FIGURES, REPORT, ENVIRONMENT = (
    "records.jsonl", "timelines.csv", "claims.yaml", "findings.json", "figures.json", "report.html", "environment.json")
SUITES_DIR = "suites/"
# The analysis's dependencies: a different version of one of these may change a figure.
PACKAGES = ("eitp-bench", "numpy", "scipy", "pandas", "pydantic", "sqlalchemy", "pyyaml", "jinja2", "ruptures",
            "matplotlib", "torch", "transformers")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def claims_text(claims: str) -> str:
    """The claims registry's YAML text, from a path or a built-in name (as analysis.claims.load_claims finds it)."""
    path = Path(claims)
    if path.is_file():
        return path.read_text(encoding="utf-8")
    resource = resources.files("eitp_bench") / "claims" / f"{claims}.yaml"
    if not resource.is_file():
        raise UserError(f"claims file {claims!r} not found (neither a file nor a built-in name)",
                        fix="give a path to a claims YAML or a built-in name such as eitp")
    return resource.read_text(encoding="utf-8")


def environment(settings: dict) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"format": FORMAT, "python": platform.python_version(), "platform": platform.platform(),
            "packages": versions, "report_settings": settings}


def write_bundle(out: str | Path, *, records: BundledRecords, findings_json: dict, figures_json: dict, html: str,
                 claims_yaml: str, settings: dict) -> Path:
    """Write the bundle (records: the judged runs' records.jsonl and timelines.csv, already written to
    files by write_records); UserError if it cannot be written."""
    files: dict[str, bytes | Path] = {
        RECORDS: records.records,
        TIMELINES: records.timelines,
        CLAIMS: claims_yaml.encode(),
        FINDINGS: (json.dumps(findings_json, indent=1, sort_keys=True) + "\n").encode(),
        FIGURES: (json.dumps(figures_json, indent=1, sort_keys=True) + "\n").encode(),
        REPORT: html.encode(),
        ENVIRONMENT: (json.dumps(environment(settings), indent=1, sort_keys=True) + "\n").encode(),
    }
    for config_hash, config in records.configs.items():
        files[f"{SUITES_DIR}{config_hash}.json"] = (json.dumps(config, indent=1, sort_keys=True) + "\n").encode()
    files[MANIFEST] = manifest(files)
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tar(path, files)
    except OSError as err:
        raise UserError(f"cannot write the bundle {path}: {err.strerror or err}",
                        fix="choose a writable --bundle path") from None
    return path


def manifest(files: dict[str, bytes | Path]) -> bytes:
    """MANIFEST.json's bytes: the SHA-256 of every file but itself (a Path: the file's bytes, read in blocks)."""
    hashes = {name: _sha256_of(data) for name, data in sorted(files.items()) if name != MANIFEST}
    return (json.dumps({"format": FORMAT, "sha256": hashes}, indent=1, sort_keys=True) + "\n").encode()


def _sha256_of(data: bytes | Path) -> str:
    if isinstance(data, bytes):
        return sha256(data)
    digest = hashlib.sha256()
    with open(data, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def write_tar(path: Path, files: dict[str, bytes | Path]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = int(time.time()), 0o644
            if isinstance(data, bytes):
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:  # a large member, copied from its file
                info.size = data.stat().st_size
                with open(data, "rb") as f:
                    tar.addfile(info, f)


def read_tar(path: str | Path, *, max_bytes: int = 4 << 30) -> dict[str, bytes]:
    """Every regular file of the bundle by name, read in memory (nothing extracted: no path can escape).
    UserError (exit 2) for a file that is not a readable .tar.gz."""
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                total += member.size
                if total > max_bytes:
                    raise UserError(f"{path}: over {max_bytes >> 30} GiB unpacked: not an evidence bundle",
                                    fix="give the .tar.gz written by `eitp-bench report --bundle`")
                handle = tar.extractfile(member)
                files[member.name] = handle.read() if handle is not None else b""
    except (OSError, tarfile.TarError, EOFError) as err:
        raise UserError(f"cannot read the bundle {path}: {getattr(err, 'strerror', None) or err}",
                        fix="give the .tar.gz written by `eitp-bench report --bundle`") from None
    return files


def timelines_csv(frames) -> str:
    from eitp_bench.analysis.frames import timeline_points

    return timeline_points(frames).to_csv(index=False)


@dataclass
class BundledRecords:
    """records.jsonl and timelines.csv of the judged runs, written to files, and their suites' configs."""

    records: Path
    timelines: Path
    configs: dict  # suite_config_hash → the resolved suite config, in the records' order


RECORDS_CHUNK = 2_000  # runs read from the store at a time


def write_records(store: Optional[str], run_ids: list[str], folder: Path) -> BundledRecords:
    """The stored records of these runs (in the order given: the store's), written to records.jsonl and
    their timeline points to timelines.csv (as timelines_csv writes them) in `folder`, RECORDS_CHUNK
    runs at a time: what is held at once is one chunk, however many runs a report judged."""
    import pandas as pd

    from eitp_bench.store import TIMELINE_COLUMNS, Store

    columns = ["run_id", "arm", "task", *TIMELINE_COLUMNS]
    out = BundledRecords(Path(folder) / RECORDS, Path(folder) / TIMELINES, {})
    with Store.open(store, read_only=True) as st, open(out.records, "w", encoding="utf-8") as jsonl, \
            open(out.timelines, "w", encoding="utf-8", newline="") as csv:
        csv.write(",".join(columns) + "\n")
        for i in range(0, len(run_ids), RECORDS_CHUNK):
            records = st.records(run_ids=run_ids[i:i + RECORDS_CHUNK])
            points = []
            for r in records:
                jsonl.write(r.model_dump_json() + "\n")
                out.configs.setdefault(r.suite_config_hash, r.config)
                points += [(r.run_id, r.arm, r.task, *(getattr(p, c) for c in TIMELINE_COLUMNS)) for p in r.timeline]
            if points:
                pd.DataFrame(points, columns=columns).to_csv(csv, header=False, index=False)
    return out


# The analysis settings of a bundled report: the analysis defaults, written into the bundle so that
# `verify` re-applies exactly these (the bootstrap is seeded: analysis.claims uses seed 0).
N_RESAMPLES, MAX_GROUPS = 10_000, 5


def bundle_report(out: str | Path, *, store: Optional[str], suite: Optional[str], claims: str,
                  html: Optional[str] = None) -> Path:
    """Judge the store's runs (of `suite`) with `claims` and write the evidence bundle to `out`.
    `html`: the report page already rendered from the same store (else rendered here).
    The runs are read as the HTML report reads them (frames.load_report): from a store of more than
    MAX_GROUPS groups, only the newest groups' runs, and only their records go into the bundle; the
    report's statements about the rest (the groups it did not judge, the runs it did not read) are
    written to its settings (`scope`), which `verify` states and does not re-judge."""
    import tempfile

    from eitp_bench.report.build import build_report, findings_of, load_report

    frames = load_report(store, suite=suite, max_groups=MAX_GROUPS)
    # sections: the page's figures of the runs read, as the HTML page shows them (frames.load_report)
    findings = findings_of(frames, claims, n_resamples=N_RESAMPLES, max_groups=MAX_GROUPS, sections=True)
    if html is None:
        html = build_report(frames, suite=suite, claims=claims, n_resamples=N_RESAMPLES, max_groups=MAX_GROUPS)
    settings = {"suite": suite, "claims": claims, "n_resamples": N_RESAMPLES, "max_groups": MAX_GROUPS}
    if frames.scope is not None:
        settings["scope"] = {"omitted_groups": findings.omitted_groups,
                             "runs_not_read": findings.coverage["runs_not_read"]}
    with tempfile.TemporaryDirectory(prefix="eitp-bundle-") as tmp:
        records = write_records(store, frames.runs["run_id"].tolist(), Path(tmp))
        return write_bundle(out, records=records, findings_json=findings.to_json(),
                            figures_json=figures_json(findings), html=html, claims_yaml=claims_text(claims),
                            settings=settings)


# Findings fields that are not figures: the store's path, the verdict groups (in findings.json), and the
# frames the page's metric sections were computed from (their figures are in the other fields).
NOT_FIGURES = ("source", "groups", "page_frames")


def figures_json(findings) -> dict:
    """Every other field of the Findings (whatever the analysis adds later) as plain JSON."""
    import dataclasses

    return {f.name: plain(getattr(findings, f.name)) for f in dataclasses.fields(findings) if f.name not in NOT_FIGURES}


def plain(value):
    """JSON-able form of analysis output: frames as row lists, arrays as lists, NaN as None."""
    import dataclasses
    import math

    import numpy as np
    import pandas as pd

    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, pd.DataFrame):
        return {"columns": [str(c) for c in value.columns], "rows": [plain(list(r)) for r in value.itertuples(index=False)]}
    if isinstance(value, pd.Series):
        return plain(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):  # a pydantic model
        return plain(value.model_dump(mode="json"))
    return str(value)

"""The latest figure of every series as Prometheus text: OpenMetrics 1.0 or the classic 0.0.4 format.

Two dialects of the same families (docs/integrations.md):
- `openmetrics`: OpenMetrics 1.0 (`# UNIT`, a counter family without `_total`, `# EOF`), for scrapers;
- `prometheus`: the classic text format 0.0.4, which node_exporter's textfile collector reads (it
  parses only that format): the counter family is named with its `_total`, no `# EOF`.

Families (names follow Prometheus conventions: `eitp_bench_` prefix, base units, unit suffix):
- `eitp_bench_energy_joules_total{suite,arm,task,window,host,device,domain,hardware_profile,method}`: the
  latest ok run's measured joules (method counter or sampled) per energy window; estimates and entries
  without a valid figure (a sensor fault is a flag, never a number) are left out. A counter: each run's
  window energy counts up from 0, so the next run is a counter reset.
- one gauge per metric: `eitp_bench_tokens_per_second`, `eitp_bench_latency_p50_seconds`,
  `eitp_bench_train_joules`, … (labels suite, arm, task, device, hardware_profile, setting = the
  metric's `@` tag); estimated joules metrics, design facts and curve points are left out.
- `eitp_bench_regression{suite,task,arm,metric,hardware_profile}`: 1 where `regress` confirms a
  regression in the series, 0 for the other series it could test (analysis/regress.py).
- `eitp_bench_last_run_timestamp_seconds{suite,arm,task,hardware_profile}`: when the latest ok run
  finished, for staleness alerts.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional

from eitp_bench import names
from eitp_bench.analysis.regress import SERIES_KEYS, missing
from eitp_bench.flags import FAULT_CODES

PREFIX = "eitp_bench_"
MEASURED_METHODS = ("counter", "sampled")
DIALECTS = ("openmetrics", "prometheus")
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")


@dataclass
class Family:
    name: str  # without `_total` for a counter
    kind: str  # gauge | counter
    help: str
    unit: str = ""  # OpenMetrics UNIT (a suffix of name), "" for none
    samples: list = field(default_factory=list)  # (labels: dict, value: float)


def metric_family_name(metric: str) -> tuple[str, str]:
    """(Prometheus name, OpenMetrics unit) of a metric's base name, in base units: `tokens_per_s` →
    `eitp_bench_tokens_per_second`, `latency_p50_s` → `eitp_bench_latency_p50_seconds`."""
    base = names.split_at(metric)[0]
    declared = names.spec(base)
    unit = declared.unit if declared else ""
    stem = _NOT_NAME.sub("_", base)
    if stem.endswith("_per_s"):
        return PREFIX + stem.removesuffix("_per_s") + "_per_second", ""
    if unit == "s" or (not declared and stem.endswith("_s")):
        return PREFIX + stem.removesuffix("_s") + "_seconds", "seconds"
    if unit == "J" and stem.endswith("_joules"):
        return PREFIX + stem, "joules"
    if unit == "B" and stem.endswith("_bytes"):
        return PREFIX + stem, "bytes"
    return PREFIX + stem, ""


def families(frames, changes=None, *, min_size: int = 3) -> list[Family]:
    """Every family from the frames (analysis.frames.Frames: every stored row in pandas) and regress'
    candidate changes. A store is read by store_families instead, which gives the same families."""
    runs = _ok(frames.runs)
    return _assembled(_energy(frames.energy, runs), _metrics(frames.metrics, runs),
                      _regressions(_series_sizes(frames.metrics), changes or [], min_size), _last_runs(runs))


def store_families(store, changes=None, *, min_size: int = 3) -> list[Family]:
    """families() of a SQL store (store.Store), reading only what they show: the rows of the runs that
    are some series' latest, one count per metric series, and a few finish times per (suite, arm, task,
    profile), all found by aggregates in SQL (store/queries.py). The same family code then picks the
    latest rows among those runs, so the families are those of the whole store read into frames."""
    import pandas as pd

    from eitp_bench.store import queries

    series = pd.DataFrame(queries.metric_series(store), columns=queries.METRIC_SERIES_COLUMNS)
    # the runs that are the latest of some exported series: every run started at one of those times
    newest = set(series.loc[series["name"].map(_exported_metric), "newest"]) if len(series) else set()
    newest |= queries.energy_series_newest(store, MEASURED_METHODS)
    runs, energy, metrics = [], [], []
    for where in queries.ok_runs_started_at(newest):
        runs.append(store.runs_frame(where=where))
        energy.append(store.energy_frame(where=where, runs=runs[-1]))
        metrics.append(store.metrics_frame(where=where, runs=runs[-1]))
    runs, energy, metrics = (pd.concat(frames, ignore_index=True) if frames else None for frames in (runs, energy, metrics))
    if metrics is not None:
        metrics = metrics[metrics["value"].notna()]  # a null value was NaN/inf: never a figure (frames.load_frames)
    sizes = series.groupby(SERIES_KEYS, dropna=False, sort=True)["n"].sum() if len(series) else None
    finished = pd.DataFrame(queries.finished_candidates(store),
                            columns=["suite", "arm", "task", "hardware_profile_id", "finished_at"])
    return _assembled(_energy(energy, runs), _metrics(metrics, runs), _regressions(sizes, changes or [], min_size),
                      _last_runs(finished))


def _assembled(energy: Family, metrics: list[Family], regressions: Family, last_runs: Family) -> list[Family]:
    return [f for f in [energy, *metrics, regressions, last_runs] if f.samples]


def render(fams: list[Family], dialect: str = "openmetrics") -> str:
    """The exposition text; label values escaped as both formats require (\\, ", newline)."""
    lines = []
    for f in fams:
        shown = f.name + "_total" if f.kind == "counter" and dialect == "prometheus" else f.name
        lines.append(f"# HELP {shown} {_escape_help(f.help)}")
        lines.append(f"# TYPE {shown} {f.kind}")
        if f.unit and dialect == "openmetrics":
            lines.append(f"# UNIT {shown} {f.unit}")
        sample = f.name + "_total" if f.kind == "counter" else f.name
        for labels, value in f.samples:
            text = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in labels.items())
            lines.append(f"{sample}{{{text}}} {_number(value)}")
    if dialect == "openmetrics":
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Temp file in the same folder, then rename: the textfile collector never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # node_exporter often runs as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---- the families -------------------------------------------------------------------------------

def _ok(runs):
    if runs is None or len(runs) == 0:
        return runs
    return runs[runs["status"] == "ok"] if "status" in runs.columns else runs


def _latest(df, keys: list[str]):
    """The rows of each series' latest run (latest started_at; ties: the last stored)."""
    df = df.assign(_order=range(len(df))).sort_values(["started_at", "_order"], kind="stable")
    latest_run = df.groupby(keys, dropna=False, sort=True)["run_id"].transform("last")
    return df[df["run_id"] == latest_run].drop(columns="_order")


def _energy(energy, runs) -> Family:
    fam = Family(PREFIX + "energy_joules", "counter", "measured joules of each energy window of the latest ok run "
                 "(method counter or sampled; estimates are not exported)", unit="joules")
    if energy is None or len(energy) == 0 or runs is None or len(runs) == 0:
        return fam
    ok_ids = set(runs["run_id"])
    df = energy[energy["run_id"].isin(ok_ids)]
    df = df[df["method"].isin(MEASURED_METHODS)]
    df = df.assign(host=df["host"].fillna("") if "host" in df.columns else "")
    keys = ["suite", "arm", "task", "window", "host", "device", "domain", "hardware_profile_id", "method"]
    df = _latest(df, keys)
    for _, row in df.sort_values(keys, kind="stable").iterrows():
        # a faulted or unreadable entry stays out: never an older run's figure in its place
        if row["joules"] is None or not math.isfinite(row["joules"]) or set(row["flags"] or []) & set(FAULT_CODES):
            continue
        fam.samples.append(({"suite": row["suite"], "arm": row["arm"], "task": row["task"], "window": row["window"],
                             "host": row["host"], "device": row["device"], "domain": row["domain"],
                             "hardware_profile": _label(row["hardware_profile_id"]), "method": row["method"]},
                            float(row["joules"])))
    return fam


def _exported_metric(name: str) -> bool:
    return not (names.is_estimated(name) or names.is_design(name))


def _metrics(metrics, runs) -> list[Family]:
    if metrics is None or len(metrics) == 0 or runs is None or len(runs) == 0:
        return []
    df = metrics[metrics["run_id"].isin(set(runs["run_id"])) & metrics["name"].map(_exported_metric)]
    keys = ["suite", "arm", "task", "device", "hardware_profile_id", "name"]
    df = _latest(df, keys)
    by_name: dict[str, Family] = {}
    for _, row in df.sort_values(keys, kind="stable").iterrows():
        fam_name, unit = metric_family_name(row["name"])
        base, tag = names.split_at(row["name"])
        fam = by_name.get(fam_name)
        if fam is None:
            declared = names.spec(base)
            meaning = declared.meaning if declared else f"the metric {base}"
            fam = by_name[fam_name] = Family(fam_name, "gauge", f"{meaning} (latest ok run)", unit=unit)
        fam.samples.append(({"suite": row["suite"], "arm": row["arm"], "task": row["task"], "device": row["device"],
                             "hardware_profile": _label(row["hardware_profile_id"]), "setting": tag or "",
                             "metric": row["name"]}, float(row["value"])))
    return [by_name[k] for k in sorted(by_name)]


def _series_sizes(metrics):
    """Values per regress series (SERIES_KEYS) of the ok runs, in key order; None for no metrics."""

    if metrics is None or len(metrics) == 0:
        return None
    df = metrics[metrics["status"] == "ok"] if "status" in metrics.columns else metrics
    return df.groupby(SERIES_KEYS, dropna=False, sort=True).size()


def _regressions(sizes, changes, min_size: int) -> Family:
    fam = Family(PREFIX + "regression", "gauge", "1 if eitp-bench regress confirms a regression in the series, "
                 "0 if it tested the series and found none")
    if sizes is None:
        return fam
    regressed = {(c.suite, c.task, c.arm, c.metric, c.hardware_profile_id)
                 for c in changes if c.confirmed and c.kind == "regression"}
    for key, n in sizes.items():
        if n < 2 * min_size:  # not testable: no 0 that would read as "checked, fine"
            continue
        suite, task, arm, metric, profile = (None if missing(v) else v for v in key)
        fam.samples.append(({"suite": suite, "task": task, "arm": arm, "metric": metric,
                             "hardware_profile": profile or ""},
                            1.0 if (suite, task, arm, metric, profile) in regressed else 0.0))
    return fam


def _last_runs(runs) -> Family:
    fam = Family(PREFIX + "last_run_timestamp_seconds", "gauge", "when the latest ok run finished (Unix time)",
                 unit="seconds")
    if runs is None or len(runs) == 0:
        return fam
    keys = ["suite", "arm", "task", "hardware_profile_id"]
    for key, group in runs.groupby(keys, dropna=False, sort=True):
        stamps = [_epoch(v) for v in group["finished_at"]]
        stamps = [s for s in stamps if s is not None]
        if stamps:
            suite, arm, task, profile = (None if missing(v) else v for v in key)
            fam.samples.append(({"suite": suite, "arm": arm, "task": task, "hardware_profile": profile or ""},
                                max(stamps)))
    return fam


# ---- text ---------------------------------------------------------------------------------------

def _label(v) -> str:
    """A label value; "" for none (a run without a hardware profile: None, or NaN once in a frame)."""
    return "" if missing(v) else v


def _epoch(value) -> Optional[float]:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else ("NaN" if value != value else ("+Inf" if value > 0 else "-Inf"))

"""Stored records as MLflow runs: one MLflow run per repetition, under a parent run with the report.

Layout (docs/integrations.md):
- experiment: the suite's name;
- parent run (`eitp.kind=batch`): one per `run --mlflow` invocation, or per suite configuration for
  `export --format mlflow`; the HTML report is its artifact `report.html`;
- child run per repetition (`eitp.kind=repetition`, `mlflow.parentRunId`), named `<arm> r<repetition> <size>`:
  params = the repetition's resolved settings (its record's `config`, flattened with dots) plus arm, size,
  seed, repetition, device, world_size; metrics = `<task>/<metric>` (an `@tag` becomes `/tag`; a curve
  point `curve_val_loss@200` is `<task>/curve_val_loss` at step 200), and joules per energy window and method:
  `<window>_joules.<method>` (the sum over the window's valid gpu/package/dram entries of that method: a
  counter figure never mixes with an estimate) and `<window>_joules.<method>.<device>.<domain>` per channel;
  tags = provenance (`eitp.provenance.*`), suite, config hash, status and each task's `eitp.run_id.<task>`.
A figure that is None (a sensor fault, a non-finite metric) is never logged as a number.

MLflow is an optional extra: `require_mlflow()` imports it lazily and says which extra to install.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Callable, Iterable, Optional

from eitp_bench import names
from eitp_bench.errors import UserError
from eitp_bench.flags import FAULT_CODES

ADDITIVE_DOMAINS = ("gpu", "package", "dram")  # what measured_joules sums; `node` is not additive
_NOT_KEY = re.compile(r"[^/\w.\- ]")
_MAX_KEY = 250  # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
_MAX_PARAM = 6000  # MAX_PARAM_VAL_LENGTH
_BATCH_PARAMS_TAGS = 100
_BATCH_METRICS = 1000


def require_mlflow():
    """The MlflowClient class, or one clear error naming the extra."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError("--mlflow needs MLflow, which is not installed (the optional extra eitp-bench[mlflow])",
                        fix="pip install 'eitp-bench[mlflow]'") from None
    return MlflowClient


def key(text: str) -> str:
    """An MLflow metric/param/tag key: `@` becomes `/`, other characters MLflow refuses become `_`."""
    return _NOT_KEY.sub("_", text.replace("@", "/"))[:_MAX_KEY]


def repetition_key(record) -> tuple:
    return (record.suite, record.suite_config_hash, record.provenance.hardware_profile_id, record.arm, record.size,
            record.repetition, record.seed)


def params_of(record) -> dict[str, str]:
    out = {"arm": record.arm, "size": record.size, "seed": record.seed, "repetition": record.repetition,
           "device": record.device, "world_size": record.world_size, "nnodes": record.nnodes}
    out.update(_flatten(record.config))
    return {key(k): _text(v, _MAX_PARAM) for k, v in out.items()}


def metrics_of(record) -> list[tuple[str, float, int]]:
    """(key, value, step) of a record's metrics and joules; None figures left out."""
    out = []
    for m in record.metrics:
        if m.value is None or not math.isfinite(m.value):
            continue
        base, tag = names.split_at(m.name)
        if base.removesuffix(names.ESTIMATED_SUFFIX) in (names.CURVE_VAL_LOSS, names.CURVE_TRAIN_S, names.CURVE_JOULES) \
                and tag is not None and tag.isdigit():
            out.append((key(f"{record.task}/{base}"), float(m.value), int(tag)))
        else:
            out.append((key(f"{record.task}/{m.name}"), float(m.value), 0))
    sums: dict[tuple[str, str], float] = {}
    for e in record.energy:
        if e.joules is None or set(f.code for f in e.flags) & set(FAULT_CODES):
            continue
        window = e.window or "run"
        device = e.device if not e.host else f"{e.host}.{e.device}"
        out.append((key(f"{window}_joules.{e.method}.{device}.{e.domain}"), float(e.joules), 0))
        if e.domain in ADDITIVE_DOMAINS:
            sums[(window, e.method)] = sums.get((window, e.method), 0.0) + float(e.joules)
    out += [(key(f"{window}_joules.{method}"), joules, 0) for (window, method), joules in sorted(sums.items())]
    return out


def tags_of(record) -> dict[str, str]:
    p = record.provenance
    tags = {"eitp.kind": "repetition", "eitp.suite": record.suite, "eitp.suite_config_hash": record.suite_config_hash,
            f"eitp.run_id.{record.task}": record.run_id, f"eitp.status.{record.task}": record.status,
            "eitp.started_at": record.started_at}
    for field in ("eitp_bench_version", "git_commit", "python", "torch", "transformers", "cuda", "driver", "platform",
                  "hardware_profile_id"):
        value = getattr(p, field)
        if value is not None:
            tags[f"eitp.provenance.{field}"] = value
    for name, value in p.hardware.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            tags[f"eitp.provenance.hardware.{name}"] = value
    if record.status != "ok":
        tags["eitp.status"] = "failed"
        if record.error:
            tags[f"eitp.error.{record.task}"] = record.error
    return {key(k): _text(v, 8000) for k, v in tags.items()}


class MlflowLogger:
    """Logs records as they come (consecutive records of one repetition share one MLflow run)."""

    def __init__(self, uri: str, *, batch_name: str, client=None, bounded_retries: bool = False):
        MlflowClient = require_mlflow()
        if uri.startswith("file:"):
            # MLflow 3 refuses its file store unless asked; a file: URI given to us is that request (the
            # database store needs full mlflow: alembic). A user's own MLFLOW_ALLOW_FILE_STORE wins.
            import os

            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        if bounded_retries:  # MLflow's defaults retry an unreachable server for minutes; the user's settings win
            import os

            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        self.client = client or MlflowClient(tracking_uri=uri)
        self.uri = uri
        self.batch_name = batch_name
        self._experiments: dict[str, str] = {}
        self._parents: dict[tuple, str] = {}  # (suite, config hash) → parent run id
        self._current: Optional[tuple] = None  # (repetition key, mlflow run id, failed)
        self.logged_runs: list[str] = []

    def log(self, record) -> None:
        rkey = repetition_key(record)
        if self._current is None or self._current[0] != rkey:
            self._finish_current()
            run = self.client.create_run(self._experiment(record.suite), run_name=f"{record.arm} r{record.repetition} "
                                         f"{record.size}", tags={"mlflow.parentRunId": self.parent(record)})
            self._current = (rkey, run.info.run_id, False)
            self.logged_runs.append(run.info.run_id)
            self._batch(run.info.run_id, params=params_of(record))
        rkey, run_id, failed = self._current
        self._current = (rkey, run_id, failed or record.status != "ok")
        self._batch(run_id, metrics=metrics_of(record), tags=tags_of(record))

    def parent(self, record) -> str:
        pkey = (record.suite, record.suite_config_hash)
        if pkey not in self._parents:
            run = self.client.create_run(self._experiment(record.suite), run_name=self.batch_name,
                                         tags={"eitp.kind": "batch", "eitp.suite_config_hash": record.suite_config_hash})
            self._parents[pkey] = run.info.run_id
        return self._parents[pkey]

    def log_report(self, path, suite: Optional[str] = None) -> None:
        """The report as an artifact of the parent run(s) (those of `suite`, or all)."""
        for (s, _), run_id in self._parents.items():
            if suite is None or s == suite:
                self.client.log_artifact(run_id, str(path))

    def close(self) -> None:
        self._finish_current()
        for run_id in self._parents.values():
            self.client.set_terminated(run_id, "FINISHED")

    def _finish_current(self) -> None:
        if self._current is not None:
            _, run_id, failed = self._current
            self.client.set_terminated(run_id, "FAILED" if failed else "FINISHED")
            self._current = None

    def _experiment(self, suite: str) -> str:
        if suite not in self._experiments:
            found = self.client.get_experiment_by_name(suite)
            self._experiments[suite] = found.experiment_id if found else self.client.create_experiment(suite)
        return self._experiments[suite]

    def _batch(self, run_id: str, *, params=None, metrics=(), tags=None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        p = [Param(k, v) for k, v in (params or {}).items()]
        t = [RunTag(k, v) for k, v in (tags or {}).items()]
        m = [Metric(k, v, 0, step) for k, v, step in metrics]
        for i in range(0, len(p), _BATCH_PARAMS_TAGS):
            self.client.log_batch(run_id, params=p[i:i + _BATCH_PARAMS_TAGS])
        for i in range(0, len(t), _BATCH_PARAMS_TAGS):
            self.client.log_batch(run_id, tags=t[i:i + _BATCH_PARAMS_TAGS])
        for i in range(0, len(m), _BATCH_METRICS):
            self.client.log_batch(run_id, metrics=m[i:i + _BATCH_METRICS])


class RunCallback:
    """`run --mlflow`: the runner's on_record callback. A logging failure never fails or loses the run
    (the records are in the folder and the store first): one warning, then no more MLflow calls in this run
    (an unreachable server would cost each record minutes of retries); `export --format mlflow` catches up."""

    def __init__(self, logger: MlflowLogger, warn: Callable[[str], None] = None):
        self.logger = logger
        self.warn = warn or (lambda text: print(text, file=sys.stderr))
        self.failed = False

    def __call__(self, record) -> None:
        self._guarded(lambda: self.logger.log(record))

    def finish(self, report_path=None) -> None:
        if report_path is not None:
            self._guarded(lambda: self.logger.log_report(report_path))
        self._guarded(self.logger.close)

    def _guarded(self, action) -> None:
        if self.failed:
            return
        try:
            action()
        except Exception as err:  # noqa: BLE001 - any MLflow/network fault; the run goes on
            self.failed = True
            self.warn(f"eitp-bench: warning: MLflow logging to {self.logger.uri} failed ({type(err).__name__}: "
                      f"{str(err).splitlines()[0][:200] if str(err) else ''}); the run continues without it; "
                      f"log it later with `eitp-bench export --format mlflow --mlflow {self.logger.uri}`")


def export_records(logger: MlflowLogger, records: Iterable) -> int:
    """Log stored records (in the order stored: a repetition's records are consecutive); how many repetitions."""
    for record in records:
        logger.log(record)
    logger.close()
    return len(logger.logged_runs)


RECORDS_PER_READ = 1_000  # records read from the store at a time by export_store


def export_store(store: Optional[str], uri: str) -> None:
    """`export --format mlflow`: every stored repetition, under one parent run per suite configuration with
    its suite's report (`eitp-bench report --suite`). Skips repetitions this tracking server already holds
    (by run_id tag). The store is read RECORDS_PER_READ records at a time, in store order (a repetition's
    records are consecutive), so memory follows one page of records, not the store."""
    import tempfile
    from pathlib import Path

    from eitp_bench.store import Store
    from eitp_bench.store import queries as store_queries

    require_mlflow()
    logger = MlflowLogger(uri, batch_name="eitp-bench export", bounded_retries=True)
    from mlflow.exceptions import MlflowException

    skipped = 0
    with Store.open(store, read_only=True) as st:
        try:
            known = _logged_run_ids(logger, set(store_queries.suites(st)))
            for records in st.record_pages(RECORDS_PER_READ):
                fresh = [r for r in records if r.run_id not in known]
                skipped += len(records) - len(fresh)
                for record in fresh:
                    logger.log(record)
            logger.close()
            n = len(logger.logged_runs)
            with tempfile.TemporaryDirectory() as tmp:
                reports: dict[str, Path] = {}  # suite → its report, written once for all its configurations
                for (suite, _), run_id in list(logger._parents.items()):
                    if suite not in reports:
                        reports[suite] = _report(st, suite, Path(tmp) / f"suite-{len(reports)}" / "report.html")
                    logger.client.log_artifact(run_id, str(reports[suite]))
        except (MlflowException, OSError) as err:
            raise UserError(f"MLflow at {uri} refused the export: {str(err).splitlines()[0][:300]}",
                            fix="check the tracking URI (file:/path/mlruns or http://host:port) and that the server "
                                "is up; run the export again (repetitions already logged are skipped)") from None
    print(f"logged {n} repetitions to MLflow at {uri}"
          + (f" ({skipped} records already there, skipped)" if skipped else ""))


def _report(store, suite: str, path):
    """The suite's report as `eitp-bench report --suite` writes it (frames.load_report: from a suite of
    many groups, the newest groups' runs only, and the page says so)."""
    from eitp_bench.report.build import write_report

    path.parent.mkdir(parents=True, exist_ok=True)
    return write_report(store, path, suite=suite)


def _logged_run_ids(logger: MlflowLogger, suites: set) -> set:
    """eitp run_ids already logged in these suites' experiments (export twice: nothing twice)."""
    seen = set()
    for suite in suites:
        found = logger.client.get_experiment_by_name(suite)
        if found is None:
            continue
        token = None
        while True:
            page = logger.client.search_runs([found.experiment_id], filter_string="tags.`eitp.kind` = 'repetition'",
                                             max_results=1000, page_token=token)
            for run in page:
                seen.update(v for k, v in run.data.tags.items() if k.startswith("eitp.run_id."))
            token = page.token
            if not token:
                break
    return seen


# ---- helpers ------------------------------------------------------------------------------------

def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value} if prefix else {}


def _text(value, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"

"""`--mlflow URI`: one MLflow run per repetition (params, metrics with the joules' method, provenance tags),
under a parent run holding the report; checked against a local file store (and a server where one runs)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from synthetic_store import record

from eitp_bench.cli import main
from eitp_bench.records import EnergyEntry, RunRecord
from eitp_bench.store import Store

mlflow = pytest.importorskip("mlflow", reason="the optional extra eitp-bench[mlflow] is not installed")
from mlflow.tracking import MlflowClient  # noqa: E402

from eitp_bench.exporters.mlflow_log import MlflowLogger, RunCallback, export_records  # noqa: E402

CONFIG = {"train": {"steps": 40, "lr": 0.0003}, "arms": ["baseline", "eitp-paper"], "precision": "fp32"}


def repetition_records():
    """2 arms × 2 repetitions × 2 tasks; every figure derived from (arm, repetition) so it can be checked."""
    out = []
    for rep in range(2):
        for a, arm in enumerate(("baseline", "eitp-paper")):
            t = record(arm, "train", rep, {"train_joules": 100.0 + 10 * a + rep, "curve_val_loss@10": 5.0 - rep,
                                           "curve_val_loss@20": 4.0 - rep}, started=10 * rep + a)
            t.energy = [EnergyEntry(window="train", device="gpu:0", domain="gpu", joules=100.0 + 10 * a + rep,
                                    method="counter", meter="nvml", duration_s=9.0, samples=90),
                        EnergyEntry(window="train", device="cpu:0", domain="package", joules=20.0, method="counter",
                                    meter="rapl", duration_s=9.0, samples=90),
                        EnergyEntry(window="train", device="cpu:0", domain="package", joules=33.0, method="estimated",
                                    meter="estimate", duration_s=9.0)]
            g = record(arm, "generate", rep, {"tokens_per_s@sample-b1": 50.0 + a + 0.5 * rep}, started=10 * rep + a)
            for r in (t, g):
                r.config = CONFIG
            out += [t, g]
    return out


def _children(client, suite="synthetic"):
    exp = client.get_experiment_by_name(suite)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`eitp.kind` = 'repetition'")
    return {(r.data.params["arm"], int(r.data.params["repetition"])): r for r in runs}


def _check_repetitions(client, suite="synthetic"):
    kids = _children(client, suite)
    assert set(kids) == {(arm, rep) for arm in ("baseline", "eitp-paper") for rep in (0, 1)}
    for (arm, rep), run in kids.items():
        a = ("baseline", "eitp-paper").index(arm)
        m, p, t = run.data.metrics, run.data.params, run.data.tags
        assert p["train.steps"] == "40" and p["train.lr"] == "0.0003" and p["precision"] == "fp32"
        assert json.loads(p["arms"]) == ["baseline", "eitp-paper"]
        assert m["train/train_joules"] == 100.0 + 10 * a + rep
        assert m["generate/tokens_per_s/sample-b1"] == 50.0 + a + 0.5 * rep
        # joules by method: the counter sum of gpu + package, never mixed with the estimate
        assert m["train_joules.counter"] == 100.0 + 10 * a + rep + 20.0
        assert m["train_joules.estimated"] == 33.0
        assert m["train_joules.counter.gpu_0.gpu"] == 100.0 + 10 * a + rep
        curve = client.get_metric_history(run.info.run_id, "train/curve_val_loss")
        assert [(h.step, h.value) for h in sorted(curve, key=lambda h: h.step)] == [(10, 5.0 - rep), (20, 4.0 - rep)]
        assert t["eitp.provenance.git_commit"] == "abc1234"
        assert t["eitp.provenance.hardware_profile_id"] == "hp-test-cpu"
        assert len(t["eitp.run_id.train"]) == 32 and len(t["eitp.run_id.generate"]) == 32
        assert run.info.status == "FINISHED"
        assert t["mlflow.parentRunId"]
    return kids


def test_logger_makes_one_run_per_repetition_with_params_metrics_and_tags(tmp_path):
    uri = f"file:{tmp_path / 'mlruns'}"
    logger = MlflowLogger(uri, batch_name="night 1")
    assert export_records(logger, repetition_records()) == 4
    report = tmp_path / "report.html"
    report.write_text("<html>the report</html>")
    logger.log_report(report)
    client = MlflowClient(tracking_uri=uri)
    kids = _check_repetitions(client)
    [parent] = {r.data.tags["mlflow.parentRunId"] for r in kids.values()}
    assert [a.path for a in client.list_artifacts(parent)] == ["report.html"]
    assert client.get_run(parent).data.tags["eitp.kind"] == "batch"


def test_export_format_mlflow_from_a_store_then_again_adds_nothing(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    with Store.open(str(store)) as st:
        st.add_many(repetition_records())
    uri = f"file:{tmp_path / 'mlruns'}"
    assert main(["export", "--format", "mlflow", "--mlflow", uri, "--store", str(store)]) == 0
    assert "logged 4 repetitions" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=uri)
    kids = _check_repetitions(client)
    [parent] = {r.data.tags["mlflow.parentRunId"] for r in kids.values()}
    [artifact] = client.list_artifacts(parent)
    assert artifact.path == "report.html"
    assert main(["export", "--format", "mlflow", "--mlflow", uri, "--store", str(store)]) == 0
    assert "logged 0 repetitions" in capsys.readouterr().out
    assert len(_children(client)) == 4


def test_failing_mlflow_never_fails_the_run_and_warns_once():
    calls = []

    class Broken:  # every call of the client fails, as with a server that went away
        def __getattr__(self, name):
            def fail(*args, **kwargs):
                calls.append(name)
                raise ConnectionError("tracking server down")
            return fail

    warnings = []
    callback = RunCallback(MlflowLogger("http://127.0.0.1:9", batch_name="b", client=Broken()), warn=warnings.append)
    for r in repetition_records():
        callback(r)  # must not raise
    callback.finish(None)
    assert len(warnings) == 1  # once, with the command that catches up; no more calls after the first failure
    assert "tracking server down" in warnings[0] and "the run continues" in warnings[0]
    assert "export --format mlflow --mlflow http://127.0.0.1:9" in warnings[0]
    assert len(calls) == 1  # no further calls: an unreachable server would cost each record its retries


def test_missing_extra_is_one_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # as if mlflow-skinny were not installed
    store = tmp_path / "r.sqlite"
    with Store.open(str(store)) as st:
        st.add_many(repetition_records()[:1])
    assert main(["export", "--format", "mlflow", "--mlflow", "file:x", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "eitp-bench[mlflow]" in err and "Traceback" not in err
    assert main(["run", "smoke", "--out", str(tmp_path / "o"), "--mlflow", "file:x"]) == 2
    assert "pip install 'eitp-bench[mlflow]'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_export_to_an_unreachable_server_is_one_clear_error(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    with Store.open(str(store)) as st:
        st.add_many(repetition_records())
    assert main(["export", "--format", "mlflow", "--mlflow", f"http://127.0.0.1:{_free_port()}", "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert "refused the export" in err and "fix:" in err and "Traceback" not in err


def test_mlflow_option_goes_with_the_mlflow_format(tmp_path, capsys):
    assert main(["export", "--format", "mlflow", "--store", str(tmp_path / "r.sqlite")]) == 2
    assert "--format mlflow" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_logs_to_an_mlflow_server_on_localhost(tmp_path):
    try:
        import mlflow.server  # noqa: F401  (full mlflow: mlflow-skinny has no server)
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    except ImportError as err:
        pytest.skip(f"no MLflow server here: mlflow-skinny lacks it ({err}); the file store is tested above")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                               "--default-artifact-root", str(tmp_path / "artifacts"), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):  # bounded wait: 60 s at most for the server to answer
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"mlflow server exited with {server.returncode}")
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer within 60 s")
        assert export_records(MlflowLogger(uri, batch_name="server"), repetition_records()) == 4
        _check_repetitions(MlflowClient(tracking_uri=uri))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow
def test_a_real_short_run_logs_each_repetition(tmp_path, capsys):
    from test_runner import FAST

    out, uri = tmp_path / "out", f"file:{tmp_path / 'mlruns'}"
    sets = sum((["--set", s] for s in FAST[:5] + ["arms=[baseline]", "tasks=[train]", "repetitions=2"]), [])
    assert main(["run", "smoke", "--out", str(out), "--store", str(tmp_path / "r.sqlite"), "--mlflow", uri, *sets]) == 0
    records = [RunRecord.model_validate_json(p.read_text()) for p in sorted(out.glob("*-train.json"))]
    assert len(records) == 2
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(records[0].suite)
    kids = client.search_runs([exp.experiment_id], filter_string="tags.`eitp.kind` = 'repetition'")
    assert sorted(r.data.tags["eitp.run_id.train"] for r in kids) == sorted(r.run_id for r in records)
    for run in kids:
        rec = next(r for r in records if r.run_id == run.data.tags["eitp.run_id.train"])
        assert run.data.params["train.steps"] == "2"
        assert run.data.metrics["train/step_s"] == pytest.approx(next(m.value for m in rec.metrics if m.name == "step_s"))
        methods = {e.method for e in rec.energy if e.window == "train" and e.joules is not None}
        assert methods and all(f"train_joules.{m}" in run.data.metrics for m in methods)
    [parent] = {r.data.tags["mlflow.parentRunId"] for r in kids}
    assert [a.path for a in client.list_artifacts(parent)] == ["report.html"]
    assert Path(out / "report.html").exists()


def test_export_reads_the_store_a_page_at_a_time_and_keeps_repetitions_whole(tmp_path, capsys, monkeypatch):
    """Pages of 3 records: a repetition's two records straddle pages and still make one MLflow run; no
    read asks for more than a page; a second export after more runs were stored logs only those."""
    from eitp_bench.exporters import mlflow_log

    monkeypatch.setattr(mlflow_log, "RECORDS_PER_READ", 3)
    asked = []
    records = Store.records

    def counting(self, **kwargs):
        asked.append(len(kwargs["run_ids"]))
        return records(self, **kwargs)

    monkeypatch.setattr(Store, "records", counting)
    store, recs = tmp_path / "r.sqlite", repetition_records()
    with Store.open(str(store)) as st:
        st.add_many(recs[:4])  # repetition 0 of both arms
    uri = f"file:{tmp_path / 'mlruns'}"
    assert main(["export", "--format", "mlflow", "--mlflow", uri, "--store", str(store)]) == 0
    assert "logged 2 repetitions" in capsys.readouterr().out
    with Store.open(str(store)) as st:
        st.add_many(recs[4:])
    assert main(["export", "--format", "mlflow", "--mlflow", uri, "--store", str(store)]) == 0
    second = capsys.readouterr().out
    assert "logged 2 repetitions" in second and "4 records already there, skipped" in second
    _check_repetitions(MlflowClient(tracking_uri=uri))
    assert asked and max(asked) <= 3

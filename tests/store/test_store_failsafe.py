"""Stores that fail safe: read-only stores still read, corrupt ones are refused by writers, NaN/inf never
aborts a run or counts as 0, conflicting imports are reported, and import reads run folders and stdin."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from eitp_bench.cli import main
from eitp_bench.records import Metric
from eitp_bench.store import Store

sys.path.insert(0, str(Path(__file__).parents[1]))
from store_backends import pg_url, store_url  # noqa: E402,F401  (fixtures)
from synthetic_store import eitp_records  # noqa: E402
from test_store import make_record  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


# --- NaN and infinities ----------------------------------------------------------------------


def _with_odd_numbers(i: int):
    r = make_record(i)
    metrics = [Metric(name="val_ppl", value=float("nan"), unit="1"), Metric(name="tokens_per_s", value=float("inf"), unit="tok/s"),
               Metric(name="loss", value=-math.inf, unit="1"), Metric(name="big", value=1e30, unit="1")]
    energy = [r.energy[0].model_copy(update={"joules": None}), r.energy[1]]
    energy[0] = type(r.energy[0]).model_validate({**r.energy[0].model_dump(), "joules": float("nan")})
    return r.model_copy(update={"metrics": metrics, "energy": energy})


def test_non_finite_numbers_become_null_with_a_flag_and_the_record_is_stored(store_url):
    r = _with_odd_numbers(0)
    assert [m.value for m in r.metrics] == [None, None, None, 1e30]  # 1e30 is a number: kept
    assert [(f.code, f.message) for f in r.metrics[1].flags] == [("not_finite", "value was inf: stored as null")]
    assert r.metrics[2].flags[0].message == "value was -inf: stored as null"
    assert r.energy[0].joules is None and r.energy[0].flags[0].code == "not_finite"
    with Store.open(store_url) as store:
        assert store.add(r) is True
        assert store.add(make_record(1)) is True  # and the store goes on
        assert store.records()[0] == r
        m = store.metrics_frame()
        odd = m[m.run_id == r.run_id]
        assert odd["value"].dtype == float
        assert odd["value"].isna().tolist() == [True, True, True, False]
        assert odd["flags"].tolist() == [["not_finite"]] * 3 + [[]]
        assert math.isnan(store.energy_frame().joules.iloc[0])
    # The JSON form (per-repetition files, jsonl exports) reads back to the same record.
    assert type(r).model_validate_json(r.model_dump_json()) == r


def test_analysis_leaves_null_metrics_out_and_counts_them(tmp_path):
    # val_ppl of one baseline repetition is NaN: the median must be that of the other values, never
    # pulled towards 0, and the warnings say how many values were left out.
    from eitp_bench.report.build import findings_of, load_frames

    records = eitp_records(n_reps=6, failed=0, timeline=False)
    lm = [r for r in records if r.task == "lm" and r.arm == "baseline"]
    finite = sorted(r.metric("val_ppl") for r in lm[1:])
    lm[0].metrics[1] = Metric(name="val_ppl", value=float("nan"), unit="")
    path = tmp_path / "s.sqlite"
    with Store.open(path) as store:
        store.add_many(records)
    frames = load_frames(path)
    assert frames.metrics["value"].notna().all() and len(frames.not_finite) == 1
    doc = findings_of(frames).to_json()
    assert doc["metrics_not_finite"] == [{"suite": "synthetic", "task": "lm", "arm": "baseline", "name": "val_ppl", "n": 1}]
    base = frames.metrics[(frames.metrics.arm == "baseline") & (frames.metrics.name == "val_ppl")]["value"]
    assert sorted(base) == finite  # 5 values, no 0 and no NaN among them


# --- read-only stores --------------------------------------------------------------------------


def test_reading_commands_work_on_a_read_only_store():
    folder = Path(tempfile.mkdtemp(prefix="eitp-ro-"))
    try:
        os.chmod(folder, 0o755)
        path = folder / "results.sqlite"
        with Store.open(path) as store:
            store.add_many(eitp_records(n_reps=3, failed=0, timeline=False))
        before = path.read_bytes()
        os.chmod(path, 0o444)
        os.chmod(folder, 0o555)  # no -wal or -shm can be created beside it (eitp-bench honours a-w even as root)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(folder), "MPLCONFIGDIR": tempfile.gettempdir()}
        env.pop("EITP_BENCH_STORE", None)
        commands = [["report", "--json"], ["export", "--format", "jsonl"], ["compare"], ["regress"]]
        for args in commands:
            proc = subprocess.run([sys.executable, "-m", "eitp_bench.cli", *args, "--store", str(path)], env=env,
                                  cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=300)
            assert proc.returncode in (0, 1), (args, proc.stderr)  # regress: 1 = a confirmed regression
            assert "Traceback" not in proc.stderr and "error" not in proc.stderr.lower(), (args, proc.stderr)
        assert path.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["results.sqlite"]
        # A writer on the same read-only store fails with one clear message, and writes nothing.
        proc = subprocess.run([sys.executable, "-m", "eitp_bench.cli", "import", "-", "--store", str(path)], env=env,
                              input=make_record(99).model_dump_json(), cwd=tempfile.gettempdir(), capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr and "fix:" in proc.stderr, proc.stderr
        assert path.read_bytes() == before
    finally:
        os.chmod(folder, 0o755)
        shutil.rmtree(folder)


def test_a_read_only_open_never_writes(tmp_path):
    path = tmp_path / "r.sqlite"
    with Store.open(path) as store:
        store.add(make_record())
    before = path.read_bytes()
    with Store.open(path, read_only=True) as store:
        assert store.count() == 1 and len(store.energy_frame()) == 2
        with pytest.raises(Exception, match="read-only"):
            store.add(make_record(2))
    assert path.read_bytes() == before


# --- corrupt stores ----------------------------------------------------------------------------


def _corrupt_a_data_page(path: Path) -> bytes:
    """Smash a page in the middle of the file: the schema (page 1) still reads, the b-trees do not."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    middle = (len(data) // page // 2) * page
    data[middle:middle + page] = b"\xa5" * page
    path.write_bytes(bytes(data))
    return bytes(data)


def test_writers_refuse_a_corrupt_store_with_the_fix(tmp_path, capsys):
    path = tmp_path / "results.sqlite"
    with Store.open(path) as store:
        store.add_many([make_record(i) for i in range(300)])
    damaged = _corrupt_a_data_page(path)
    src = tmp_path / "one.json"
    src.write_text(make_record(1000).model_dump_json())
    assert main(["import", str(src), "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and "quick_check" in err and "eitp-bench export" in err and "new store" in err
    assert "Traceback" not in err
    assert path.read_bytes() == damaged  # not one byte written
    # `run` opens the store before anything runs: refused the same way, nothing run or written
    assert main(["run", "smoke", "--store", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() and path.read_bytes() == damaged


# --- import: conflicts, run folders, stdin -----------------------------------------------------


def test_import_reports_run_ids_stored_with_different_content(tmp_path, capsys):
    dst = tmp_path / "dst.sqlite"
    records = [make_record(i) for i in range(4)]
    with Store.open(dst) as store:
        store.add_many(records)
    changed = [r.model_copy(update={"seed": r.seed + 1}) for r in records[:2]]
    src = tmp_path / "other.jsonl"
    src.write_text("".join(r.model_dump_json() + "\n" for r in [*changed, *records[2:], make_record(7)]))
    assert main(["import", str(src), "--store", str(dst)]) == 1
    out, err = capsys.readouterr()
    assert "imported 1 new, 2 already present" in out
    assert "2 run_ids are already stored with different content" in err and records[0].run_id in err
    with Store.open(dst) as store:
        kept = {r.run_id: r for r in store.records()}
    assert kept[records[0].run_id] == records[0] and kept[records[1].run_id] == records[1]  # left as stored


def _run_folder(tmp_path) -> tuple[Path, list]:
    """A folder as `eitp-bench run --out` leaves it: suite.json, one JSON per task, logs, staging."""
    out = tmp_path / "run"
    (out / "logs").mkdir(parents=True)
    (out / ".staging" / "rep-x").mkdir(parents=True)
    records = [make_record(i) for i in range(3)]
    (out / "suite.json").write_text(json.dumps({"config_hash": "cfg123", "suite": {"name": "smoke", "repetitions": 1}}))
    for r in records:
        (out / f"baseline-r{r.repetition}-{r.task}.json").write_text(r.model_dump_json(indent=1))
    (out / ".staging" / "rep-x" / "spec.json").write_text('{"arm": "baseline"}')  # the runner's, not a record
    (out / "logs" / "w.log").write_text("log")
    return out, records


def test_import_accepts_a_run_folder(tmp_path, capsys):
    out, records = _run_folder(tmp_path)
    dst = tmp_path / "dst.sqlite"
    assert main(["import", str(out), "--store", str(dst)]) == 0
    printed = capsys.readouterr().out
    assert "suite smoke (configuration cfg123)" in printed and "imported 3 new, 0 already present" in printed
    with Store.open(dst) as store:
        assert store.records() == records


def test_a_run_folder_with_another_configurations_record_is_refused(tmp_path, capsys):
    out, _ = _run_folder(tmp_path)
    stray = make_record(9).model_copy(update={"suite_config_hash": "other"})
    (out / "stray.json").write_text(stray.model_dump_json())
    assert main(["import", str(out), "--store", str(tmp_path / "dst.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "stray.json" in err and "suite.json" in err and "Traceback" not in err


def test_import_reads_stdin(tmp_path, capsys, monkeypatch):
    records = [make_record(i) for i in range(2)]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(r.model_dump_json() + "\n" for r in records)))
    dst = tmp_path / "dst.sqlite"
    assert main(["import", "-", "--store", str(dst)]) == 0
    assert "imported 2 new" in capsys.readouterr().out
    with Store.open(dst) as store:
        assert store.records() == records


def test_import_then_export_through_either_backend_round_trips(store_url, tmp_path, capsys):
    records = [_with_odd_numbers(0), make_record(1)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(r.model_dump_json() + "\n" for r in records))
    assert main(["import", str(src), "--store", store_url]) == 0
    out = tmp_path / "out.jsonl"
    assert main(["export", "--format", "jsonl", "--store", store_url, "--out", str(out)]) == 0
    assert out.read_text() == src.read_text()
    assert not stat.S_ISDIR(out.stat().st_mode)


def test_an_integer_too_large_for_a_store_column_is_refused_per_record(tmp_path, capsys):
    # A 64-bit column cannot hold seed 10**30: the record is refused with the field named, before the store.
    data = json.loads(make_record().model_dump_json())
    data["seed"] = 10**30
    src = tmp_path / "big.json"
    src.write_text(json.dumps(data))
    assert main(["import", str(src), "--store", str(tmp_path / "dst.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "'seed'" in err and "less than or equal" in err and "Traceback" not in err

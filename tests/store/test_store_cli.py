"""`eitp-bench export`, `import` and `profile` through cli.main."""

from __future__ import annotations

import gzip
import json
import sys

import pandas as pd
import pytest

from eitp_bench.records import SCHEMA_VERSION as RECORD_SCHEMA_VERSION
from eitp_bench.cli import main
from eitp_bench.records import SCHEMA_VERSION as RECORD_SCHEMA_VERSION
from eitp_bench.store import Store

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
from test_store import FLAGS, NVML_MESSAGE, V1_FLAGS, make_record  # noqa: E402


@pytest.fixture
def filled(tmp_path):
    path = tmp_path / "src.sqlite"
    records = [make_record(i, arm=("baseline", "eitp-paper")[i % 2]) for i in range(4)]
    with Store.open(path) as store:
        for r in records:
            store.add(r)
    return path, records


def test_jsonl_export_then_import_into_empty_store_is_identical(filled, tmp_path, capsys):
    src, records = filled
    out = tmp_path / "all.jsonl"
    assert main(["export", "--store", str(src), "--format", "jsonl", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 4
    dst = tmp_path / "dst.sqlite"
    capsys.readouterr()
    assert main(["import", str(out), "--store", str(dst)]) == 0
    assert "imported 4 new, 0 already present" in capsys.readouterr().out
    with Store.open(dst) as store:
        assert store.records() == records
        assert store.records()[0].energy[1].flags == FLAGS  # the ';' inside an NVML message survives
        assert store.energy_frame()["flag_messages"].iloc[1] == ["wrapped past repair", NVML_MESSAGE]
    # Importing the same file again adds nothing.
    assert main(["import", str(out), "--store", str(dst)]) == 0
    assert "imported 0 new, 4 already present" in capsys.readouterr().out
    with Store.open(dst) as store:
        assert store.count() == 4


def test_jsonl_export_to_stdout(filled, capsys):
    src, records = filled
    assert main(["export", "--store", str(src), "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["run_id"] for line in lines] == [r.run_id for r in records]


def test_csv_export_writes_one_file_per_table(filled, tmp_path):
    src, records = filled
    out = tmp_path / "csv"
    assert main(["export", "--store", str(src), "--format", "csv", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["energy.csv", "metrics.csv", "runs.csv", "timeline.csv"]
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs.run_id) == [r.run_id for r in records]
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 8
    assert sorted(metrics[metrics.name == "tokens_per_s"].value) == [1234.5, 1235.5, 1236.5, 1237.5]
    energy = pd.read_csv(out / "energy.csv", keep_default_na=False)
    assert [json.loads(f) for f in energy["flags"]][:2] == [[], ["wrap_unrepairable", "nvml_error"]]
    assert json.loads(energy["flag_messages"][1]) == ["wrapped past repair", NVML_MESSAGE]


def test_parquet_export_round_trips_the_frames(filled, tmp_path):
    src, _ = filled
    out = tmp_path / "pq"
    assert main(["export", "--store", str(src), "--format", "parquet", "--out", str(out)]) == 0
    with Store.open(src) as store:
        expected = store.energy_frame()
    pd.testing.assert_frame_equal(pd.read_parquet(out / "energy.parquet"), expected)


def test_parquet_without_pyarrow_is_a_clear_error(filled, tmp_path, capsys, monkeypatch):
    src, _ = filled
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` raise ImportError
    assert main(["export", "--store", str(src), "--format", "parquet", "--out", str(tmp_path / "pq")]) == 2
    err = capsys.readouterr().err
    assert "pyarrow" in err and "fix:" in err and "Traceback" not in err


def test_unknown_format_and_missing_store(tmp_path, capsys):
    assert main(["export", "--store", str(tmp_path / "none.sqlite"), "--format", "csv"]) == 2
    assert "no results store" in capsys.readouterr().err
    assert main(["export", "--store", str(tmp_path / "none.sqlite"), "--format", "xlsx"]) == 2
    assert "xlsx" in capsys.readouterr().err


def test_import_per_repetition_files_and_directories(tmp_path, capsys):
    # The runner writes one RunRecord JSON per repetition; results from other machines come as folders.
    machine_a = tmp_path / "results" / "machine-a"
    machine_a.mkdir(parents=True)
    records = [make_record(i) for i in range(3)]
    (machine_a / "r0.json").write_text(records[0].model_dump_json(indent=2))
    (machine_a / "r1.json").write_text(records[1].model_dump_json())
    with gzip.open(machine_a / "r2.json.gz", "wt") as f:
        f.write(records[2].model_dump_json())
    (machine_a / "README.txt").write_text("not a result")
    dst = tmp_path / "dst.sqlite"
    assert main(["import", str(tmp_path / "results"), "--store", str(dst)]) == 0
    assert "imported 3 new, 0 already present" in capsys.readouterr().out
    with Store.open(dst) as store:
        assert sorted(r.run_id for r in store.records()) == sorted(r.run_id for r in records)
        assert {r.run_id: r for r in store.records()} == {r.run_id: r for r in records}


def test_schema_1_jsonl_export_still_imports_with_flags_coded(tmp_path, capsys):
    # An export written by eitp-bench under record schema 1: flags were plain strings.
    lines = []
    for i in range(2):
        data = json.loads(make_record(i).model_dump_json())
        data["schema_version"] = 1
        data["energy"][1]["flags"] = V1_FLAGS
        lines.append(json.dumps(data))
    old = tmp_path / "old.jsonl"
    old.write_text("\n".join(lines) + "\n")
    dst = tmp_path / "dst.sqlite"
    assert main(["import", str(old), "--store", str(dst)]) == 0
    assert "imported 2 new" in capsys.readouterr().out
    with Store.open(dst) as store:
        back = store.records()
    assert [r.schema_version for r in back] == [RECORD_SCHEMA_VERSION] * 2
    assert [(f.code, f.message) for f in back[0].energy[1].flags] == [
        ("wrap_unrepairable", V1_FLAGS[0]), ("permission_denied", V1_FLAGS[1]), ("legacy", V1_FLAGS[2])]


def test_a_record_from_a_newer_eitp_bench_is_refused(tmp_path, capsys):
    data = json.loads(make_record().model_dump_json())
    data["schema_version"] = 99
    path = tmp_path / "new.json"
    path.write_text(json.dumps(data))
    assert main(["import", str(path), "--store", str(tmp_path / "dst.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "newer eitp-bench" in err and "upgrade eitp-bench" in err and "Traceback" not in err


def test_corrupt_file_aborts_the_import_and_adds_nothing(tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(make_record(i).model_dump_json() + "\n" for i in range(2)))
    bad = tmp_path / "bad.jsonl"
    lines = [make_record(10 + i).model_dump_json() for i in range(3)]
    lines[2] = lines[2][:40]  # truncated third line: a partly copied file
    bad.write_text("\n".join(lines) + "\n")
    dst = tmp_path / "dst.sqlite"
    assert main(["import", str(good), str(bad), "--store", str(dst)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "line 3" in err and "Traceback" not in err
    with Store.open(dst) as store:
        assert store.count() == 0  # not the first two lines of bad.jsonl, and not good.jsonl either


def test_invalid_record_names_the_field(tmp_path, capsys):
    data = json.loads(make_record().model_dump_json())
    data["energy"][0]["method"] = "guessed"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert main(["import", str(path), "--store", str(tmp_path / "dst.sqlite")]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "energy.0.method" in err


def test_import_of_missing_path_and_empty_directory(tmp_path, capsys):
    assert main(["import", str(tmp_path / "missing.jsonl"), "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["import", str(tmp_path / "empty"), "--store", str(tmp_path / "s.sqlite")]) == 2
    assert "no result files" in capsys.readouterr().err


def test_profile_command_json(capsys):
    from eitp_bench.hardware import detect
    from eitp_bench.hardware.profiles import profile_id

    assert main(["profile", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["profile_id"] == profile_id(detect())
    assert info["machine"]["cpu"]["threads"] >= 1
    assert info["cpu_profile"] == info["profiles"]["cpu"]["name"]


def test_profile_command_table(capsys):
    assert main(["profile"]) == 0
    out = capsys.readouterr().out
    assert "hardware profile id:" in out and "cpu" in out

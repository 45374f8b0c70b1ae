"""The fault campaign's traceback cases: each is exit 2 and one error line (plus its fix), never a
traceback; lines are capped with the middle left out, and control and bidi characters are escaped."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from eitp_bench.cli import main
from eitp_bench.errors import MAX_LINE_CHARS, terminal_line
from eitp_bench.store import Store
from test_store import make_record

ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0
GARBAGE = [("metrics", "value"), ("metrics", "flags_json"), ("energy", "joules"), ("energy", "flags_json"),
           ("runs", "config_json"), ("runs", "provenance_json"), ("runs", "started_at")]


@pytest.fixture(scope="module")
def good_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good") / "results.sqlite"
    with Store.open(path) as store:
        for i in range(3):
            store.add(make_record(i))
    return path


def altered(good: Path, tmp_path: Path, sql: str) -> str:
    path = tmp_path / "altered.sqlite"
    shutil.copyfile(good, path)
    with sqlite3.connect(path) as conn:
        conn.executescript(sql)
    return str(path)


def one_line(capsys, code: int) -> str:
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("eitp-bench: error:")]
    assert len(errors) == 1, err
    assert all(len(line) <= MAX_LINE_CHARS + 40 for line in err.splitlines())
    assert not any(ch in err for ch in "\x1b\u202e")
    return errors[0]


@pytest.mark.parametrize("command", ["report", "export"])
@pytest.mark.parametrize("table, column", GARBAGE)
def test_garbage_in_a_store_column(good_store, tmp_path, capsys, command, table, column):
    store = altered(good_store, tmp_path, f"UPDATE {table} SET {column} = 'garbage{{['")
    args = (["report", "--json", "--store", store] if command == "report" else
            ["export", "--format", "jsonl", "--out", str(tmp_path / "x.jsonl"), "--store", store])
    line = one_line(capsys, main(args))
    assert "changed outside eitp-bench" in line


@pytest.mark.parametrize("command", ["regress", "compare", "history"])
@pytest.mark.parametrize("table, column", [("metrics", "value"), ("runs", "started_at")])
def test_garbage_in_what_the_series_readers_read(good_store, tmp_path, capsys, command, table, column):
    """regress, compare and history read a page of series at a time (store/queries.py: series_pages):
    a value there that eitp-bench never writes is the same one line, not a traceback from the analysis.
    compare never reads a run's start time: it is not asked to notice one."""
    if command == "compare" and column == "started_at":
        pytest.skip("compare reads no start time")
    store = altered(good_store, tmp_path, f"UPDATE {table} SET {column} = 'garbage{{['")
    args = [command, "--store", store, *(["--out", str(tmp_path / "site")] if command == "history" else [])]
    assert "changed outside eitp-bench" in one_line(capsys, main(args))


def test_garbage_schema_version(good_store, tmp_path, capsys):
    store = altered(good_store, tmp_path, "UPDATE meta SET value = 'abc' WHERE key = 'schema_version'")
    assert "schema_version 'abc'" in one_line(capsys, main(["report", "--json", "--store", store]))


def run_out(tmp_path, out) -> list[str]:
    return ["run", "smoke", "--out", str(out), "--store", str(tmp_path / "s.sqlite"), "--no-report"]


@pytest.mark.parametrize("case, said", [
    ("a file", "is a file, not a folder"), ("under a file", "not a folder"), ("/dev/null", "is a character device"),
    ("over-long", "too long"), ("the store", "the results store's path too"),
    pytest.param("unwritable", "is not writable", marks=pytest.mark.skipif(ROOT_USER, reason="root writes anywhere")),
])
def test_run_out_that_cannot_be_the_results_folder(tmp_path, capsys, case, said):
    (tmp_path / "afile").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    out = {"a file": tmp_path / "afile", "under a file": tmp_path / "afile" / "sub", "/dev/null": Path("/dev/null"),
           "over-long": tmp_path / ("x" * 300), "the store": tmp_path / "s.sqlite", "unwritable": locked / "out"}[case]
    args = run_out(tmp_path, out)
    if case == "the store":
        args[args.index("--store") + 1] = str(out)
    assert said in one_line(capsys, main(args))
    assert not (tmp_path / "s.sqlite").exists() or case == "the store"  # refused before any work


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_out_that_cannot_be_written(good_store, tmp_path, capsys, fmt):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    out = tmp_path / ("dir" if fmt == "jsonl" else "file")
    line = one_line(capsys, main(["export", "--format", fmt, "--out", str(out), "--store", str(good_store)]))
    assert ("is a directory" if fmt == "jsonl" else "is a file") in line


@pytest.mark.skipif(ROOT_USER, reason="root writes anywhere")
def test_export_out_unwritable(good_store, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    one_line(capsys, main(["export", "--format", "jsonl", "--out", str(locked / "x.jsonl"), "--store", str(good_store)]))


@pytest.mark.parametrize("command", ["report", "import"])
def test_a_300_character_store_name(tmp_path, capsys, command):
    store = str(tmp_path / ("s" * 300 + ".sqlite"))
    (tmp_path / "r.json").write_text(make_record(0).model_dump_json())
    args = ["report", "--json", "--store", store] if command == "report" else ["import", str(tmp_path / "r.json"), "--store", store]
    one_line(capsys, main(args))


def test_a_50k_deep_jsonl_import(tmp_path, capsys):
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 50_000 + "]" * 50_000 + "\n")
    assert "deeper than" in one_line(capsys, main(["import", str(deep), "--store", str(tmp_path / "s.sqlite")]))


@pytest.mark.parametrize("case", ["a file of bytes", "a folder without weights", "a text file"])
def test_bounds_with_bad_weight_files(tmp_path, capsys, case):
    target = tmp_path / "weights"
    if case == "a file of bytes":
        target.write_bytes(b"\x00\x01garbage")
    elif case == "a folder without weights":
        target.mkdir()
        (target / "config.json").write_text("{}")
    else:
        target.write_text("not weights\n")
    one_line(capsys, main(["bounds", "--model", str(target)]))


def test_a_100_kb_set_value_is_elided_in_the_middle(capsys):
    line = one_line(capsys, main(["run", "smoke", "--dry-run", "--set", "train.steps=" + "9" * 100_000]))
    assert "characters left out" in line


def test_control_and_bidi_characters_in_a_set_are_escaped(capsys):
    line = one_line(capsys, main(["run", "smoke", "--dry-run", "--set", "train.st\u202eeps=\x1b[31mred"]))
    assert "\\u202e" in line


def test_terminal_line_rules():
    assert terminal_line("a\u202eb\x1b[0m") == "a\\u202eb\\u001b[0m"
    long = "k" * 300 + "M" * 1000 + "z" * 300
    cut = terminal_line(long)
    assert cut.startswith("k" * 200) and cut.endswith("z" * 200) and "characters left out" in cut
    assert len(cut) <= MAX_LINE_CHARS + 40
    assert terminal_line("two\nlines") == "two\nlines"  # a message's own line breaks stay


# --- records validated on import ---------------------------------------------------------------

def _edited(**changes) -> str:
    import json

    data = json.loads(make_record(0).model_dump_json())
    for key, value in changes.items():
        if key.startswith("energy."):
            data["energy"][0][key.split(".", 1)[1]] = value
        else:
            data[key] = value
    return json.dumps(data)


@pytest.mark.parametrize("change, field", [
    ({"energy.duration_s": -5}, "duration_s"), ({"seed": "0"}, "seed"), ({"started_at": "yesterday"}, "started_at"),
    ({"run_id": ""}, "run_id"), ({"run_id": "../../../x"}, "run_id"), ({"repetition": "1"}, "repetition"),
])
def test_import_refuses_a_record_eitp_bench_never_writes(tmp_path, capsys, change, field):
    path = tmp_path / "r.json"
    path.write_text(_edited(**change))
    line = one_line(capsys, main(["import", str(path), "--store", str(tmp_path / "s.sqlite")]))
    assert field in line
    assert not (tmp_path / "s.sqlite").exists() or Store.open(tmp_path / "s.sqlite", read_only=True).count() == 0


def test_negative_joules_are_imported_as_null_with_a_flag(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(_edited(**{"energy.joules": -5.0}))
    assert main(["import", str(path), "--store", str(tmp_path / "s.sqlite")]) == 0
    with Store.open(tmp_path / "s.sqlite", read_only=True) as store:
        (record,) = store.records()
    entry = record.energy[0]
    assert entry.joules is None and [f.code for f in entry.flags][-1] == "negative" and "-5.0" in entry.flags[-1].message


def test_the_fix_for_a_store_export_cannot_read_is_not_an_export(good_store, tmp_path, capsys):
    damaged = tmp_path / "damaged.sqlite"
    data = bytearray(good_store.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the header's tail and the schema page: unreadable
    damaged.write_bytes(bytes(data))
    assert main(["export", "--format", "jsonl", "--out", str(tmp_path / "x.jsonl"), "--store", str(damaged)]) == 2
    err = capsys.readouterr().err
    fix = next(line for line in err.splitlines() if line.strip().startswith("fix:"))
    assert ".recover" in fix and "eitp-bench export" not in fix

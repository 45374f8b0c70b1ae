"""Reads see everything or say why; a resume never overwrites what the folder holds.

- a read-only SQLite store whose commits are still in its -wal is read whole (from a private copy);
- read commands never create a store: a missing or 0-byte file is "no results store";
- a FIFO, a device, a symlink loop as --store are refused at once, with what they are;
- `--resume` puts the folder's records that the store lacks into the store instead of running them
  again over their files; a folder with records but no suite.json is refused.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from eitp_bench.cli import main
from eitp_bench.errors import UserError
from eitp_bench.store import Store
from test_runner import fake_python  # noqa: F401  (fixture: plain subprocess fake workers)
from test_store import make_record

N = 50


def store_with_pending_wal(tmp_path: Path) -> Path:
    """A copy of a store taken while its last N commits are only in the -wal (a writer still had it open)."""
    live = tmp_path / "live" / "results.sqlite"
    with Store.open(live):
        pass
    keeper = sqlite3.connect(live)  # a second connection: closing the writer neither checkpoints nor removes the -wal
    keeper.execute("PRAGMA wal_autocheckpoint=0")
    with Store.open(live) as store:
        for i in range(N):
            store.add(make_record(i))
        snapshot = tmp_path / "snapshot"
        snapshot.mkdir()
        for suffix in ("", "-wal"):
            shutil.copyfile(str(live) + suffix, snapshot / ("results.sqlite" + suffix))
    keeper.close()
    copy = snapshot / "results.sqlite"
    assert (snapshot / "results.sqlite-wal").stat().st_size > 0
    with sqlite3.connect(f"{copy.as_uri()}?immutable=1", uri=True) as conn:  # the file alone lacks them
        assert conn.execute("select count(*) from runs").fetchone()[0] < N
    return copy


def read_only(path: Path) -> None:
    for p in (path, Path(str(path) + "-wal"), path.parent):
        if p.exists():
            p.chmod(p.stat().st_mode & ~0o222)


def test_a_read_only_store_with_commits_in_its_wal_is_read_whole(tmp_path, capsys):
    path = store_with_pending_wal(tmp_path)
    read_only(path)
    try:
        with Store.open(path, read_only=True) as store:
            assert len(store.runs_frame()) == N
            copy = store._private_copy
            assert copy is not None and copy.exists()
        assert not copy.exists()  # the private copy goes with the store
        out = tmp_path / "export.jsonl"
        assert main(["export", "--store", str(path), "--format", "jsonl", "--out", str(out)]) == 0
        assert len(out.read_text().splitlines()) == N
        assert sorted(p.name for p in path.parent.iterdir()) == ["results.sqlite", "results.sqlite-wal"]  # untouched
    finally:
        path.parent.chmod(0o755)


@pytest.mark.parametrize("command", [["report", "--json"], ["export", "--format", "jsonl", "--out", "x.jsonl"]])
@pytest.mark.parametrize("state", ["missing", "empty"])
def test_read_commands_never_create_a_store(tmp_path, capsys, monkeypatch, command, state):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "results.sqlite"
    if state == "empty":
        path.touch()
    assert main([*command, "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"no results store at {path}" in err and "Traceback" not in err
    assert (path.stat().st_size == 0) if state == "empty" else not path.exists()
    assert not Path(str(path) + "-wal").exists()


@pytest.mark.parametrize("kind", ["fifo", "dev-null", "dev-zero", "symlink-loop", "directory"])
def test_a_store_that_is_not_a_file_is_refused_at_once_saying_what_it_is(tmp_path, kind):
    target = {"fifo": tmp_path / "pipe", "dev-null": Path("/dev/null"), "dev-zero": Path("/dev/zero"),
              "symlink-loop": tmp_path / "loop", "directory": tmp_path / "dir"}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "symlink-loop":
        target.symlink_to(target)
    elif kind == "directory":
        target.mkdir()
    # a subprocess: a FIFO that were opened would block it, and the timeout would say so
    proc = subprocess.run([sys.executable, "-m", "eitp_bench.cli", "report", "--json", "--store", str(target)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    said = {"fifo": "is a FIFO", "dev-null": "is a character device", "dev-zero": "is a character device",
            "symlink-loop": "is a symlink loop", "directory": "is a directory"}[kind]
    assert said in proc.stderr and "does not exist" not in proc.stderr
    with pytest.raises(UserError, match=said):
        Store.open(target)  # a writer too


def suite_yaml(tmp_path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text("name: s\narms: [baseline, eitp-paper]\ntasks: [train, lm]\nrepetitions: 2\n")
    return path


def test_resume_after_the_store_was_deleted_imports_the_folder_and_overwrites_nothing(fake_python, tmp_path, capsys):
    suite, out, store = suite_yaml(tmp_path), tmp_path / "out", tmp_path / "results.sqlite"
    args = ["run", str(suite), "--out", str(out), "--store", str(store), "--no-report", "--quiet"]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.glob("*.json")}
    for p in tmp_path.glob("results.sqlite*"):
        p.unlink()  # the store is gone; the folder keeps the run
    capsys.readouterr()
    assert main(args + ["--resume"]) == 0
    err = capsys.readouterr().err
    assert "imported 8 records from" in err and "0 to run" in err
    assert {p.name: p.read_bytes() for p in out.glob("*.json")} == before  # not one file rewritten
    with Store.open(store, read_only=True) as s:
        runs = s.runs_frame()
    assert len(runs) == 8 and runs.run_id.is_unique


def test_resume_of_a_folder_without_its_suite_json_checks_the_records_configuration(fake_python, tmp_path, capsys):
    suite, out, store = suite_yaml(tmp_path), tmp_path / "out", tmp_path / "results.sqlite"
    args = ["run", str(suite), "--out", str(out), "--store", str(store), "--no-report", "--quiet"]
    assert main(args) == 0
    (out / "suite.json").unlink()
    capsys.readouterr()
    assert main(args + ["--resume", "--set", "train.lr=0.5"]) == 2  # another configuration: refused
    err = capsys.readouterr().err
    assert "has no suite.json" in err and "not this suite's" in err and "Traceback" not in err
    assert main(args + ["--resume"]) == 0  # the records ran this very suite: checked through them, resumed
    assert "0 to run" in capsys.readouterr().err

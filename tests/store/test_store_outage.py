"""A fleet store survives a blip: transient PostgreSQL errors are retried; a lasting outage is one line,
exit 2 and the `--resume` command, with nothing lost; a store this user may not write is refused first.

The retry rules are checked with a scripted store and an injected sleep and clock; the outages are real
(`.ci/postgres.sh server-stop` / `server-start` on the test server) and skip without one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from eitp_bench.cli import main
from eitp_bench.errors import UserError
from eitp_bench.store.retry import RETRY_BUDGET_S, RETRY_DELAYS_S, TRIES, StoreUnavailable, is_transient, publish

sys.path.insert(0, str(Path(__file__).parents[1]))
from store_backends import pg_url, require_pg  # noqa: E402,F401  (fixtures)

REPO = Path(__file__).resolve().parents[2]


class FlakyStore:
    """add_many fails `failures` times with StoreUnavailable, then stores."""

    def __init__(self, failures: int):
        self.failures, self.calls, self.stored = failures, 0, []

    def add_many(self, records):
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreUnavailable("cannot reach the PostgreSQL server of postgresql://u@h/db: connection refused")
        self.stored += records
        return len(records)


class Clock:
    def __init__(self):
        self.t, self.slept = 0.0, []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s


def test_a_blip_is_retried_with_doubling_waits_and_stored_once():
    store, clock, said = FlakyStore(failures=3), Clock(), []
    assert publish(store, ["r1", "r2"], sleep=clock.sleep, clock=clock, note=said.append) == 2
    assert clock.slept == list(RETRY_DELAYS_S[:3]) and store.stored == ["r1", "r2"] and store.calls == 4
    assert "try 2 of 5 in 1 s" in said[0] and len(said) == 3


def test_a_lasting_outage_gives_up_after_5_tries_within_60_s():
    store, clock = FlakyStore(failures=99), Clock()
    with pytest.raises(StoreUnavailable, match=f"gave up after {TRIES} tries"):
        publish(store, ["r"], sleep=clock.sleep, clock=clock, note=lambda _: None)
    assert store.calls == TRIES == 5 and sum(clock.slept) <= RETRY_BUDGET_S


def test_slow_attempts_stop_at_the_budget():
    store, clock = FlakyStore(failures=99), Clock()

    def slow_add(records):  # each attempt waits out a 20 s connect timeout
        clock.t += 20
        return FlakyStore.add_many(store, records)

    store.add_many = slow_add
    with pytest.raises(StoreUnavailable):
        publish(store, ["r"], sleep=clock.sleep, clock=clock, note=lambda _: None)
    assert clock.t - 20 <= RETRY_BUDGET_S  # no attempt started after the budget


def test_which_errors_are_transient():
    class Err(Exception):
        def __init__(self, text, sqlstate=None):
            super().__init__(text)
            self.sqlstate = sqlstate

    assert is_transient(Err("connection failed: Connection refused"))
    assert is_transient(Err("terminating connection due to administrator command", "57P01"))
    assert is_transient(Err("could not serialize access", "40001"))
    assert is_transient(Err("server closed the connection unexpectedly", "08006"))
    assert not is_transient(Err('relation "runs" does not exist', "42P01"))
    assert not is_transient(Err("permission denied for table runs", "42501"))
    assert not is_transient(Err("duplicate key value violates unique constraint", "23505"))


# ----------------------------------------------------------------------------- real outages

GATED_WORKER = '''
import json, os, sys, time
from pathlib import Path
from eitp_bench.records import Provenance, RunRecord
spec = json.loads(Path(sys.argv[sys.argv.index("--worker") + 1]).read_text())
gate = Path(os.environ["OUTAGE_GATE"])
if spec["position"] + spec["repetition"] > 0:  # every repetition but the first waits for the outage to begin
    while not gate.exists():
        time.sleep(0.02)
for task in spec["tasks"]:
    rec = RunRecord(suite=spec["suite_name"], suite_config_hash=spec["config_hash"], arm=spec["arm"], task=task,
                    size=spec["size"], seed=spec["seed"], repetition=spec["repetition"],
                    provenance=Provenance(eitp_bench_version="0", python="3", platform="fake"))
    (Path(spec["staging"]) / f"{task}.json").write_text(rec.model_dump_json())
'''


def server(action: str) -> None:
    """Stop or start the test server (the cluster and its data stay)."""
    subprocess.run([str(REPO / ".ci" / "postgres.sh"), f"server-{action}"], check=True, timeout=120)


@pytest.fixture
def gated_run(tmp_path, monkeypatch, pg_url):
    script = tmp_path / "worker.py"
    script.write_text(GATED_WORKER)
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("EITP_BENCH_WORKER_PYTHON", str(wrapper))
    monkeypatch.setenv("OUTAGE_GATE", str(tmp_path / "gate"))
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\narms: [baseline, eitp-paper]\ntasks: [train, lm]\nrepetitions: 2\n")
    out = tmp_path / "out"
    try:
        yield pg_url, suite, out, tmp_path / "gate"
    finally:
        if not _server_up(pg_url):
            server("start")  # the next test (and the database's removal) need it


def _server_up(url: str) -> bool:
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


def stored_run_ids(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT run_id FROM runs")]


def test_five_seconds_of_outage_mid_run_every_record_stored_once(gated_run, capsys):
    url, suite, out, gate = gated_run

    def outage():
        deadline = time.monotonic() + 120
        while not list(out.glob("*-train.json")) and time.monotonic() < deadline:
            time.sleep(0.02)  # the first repetition is published
        try:
            server("stop")
        finally:  # a server that cannot be stopped fails the test below, never hangs it: the workers go on
            gate.touch()  # the next repetitions finish while the server is down
        time.sleep(5)  # the outage (not an assertion: its length only has to fit in the retries)
        server("start")

    blip = threading.Thread(target=outage)
    blip.start()
    code = main(["run", str(suite), "--store", url, "--out", str(out), "--no-report", "--quiet"])
    blip.join()
    err = capsys.readouterr().err
    assert code == 0, err
    assert "try 2 of 5" in err  # the outage was met, and retried
    ids = stored_run_ids(url)
    assert len(ids) == len(set(ids)) == 8  # 4 repetitions × 2 tasks, each once


def test_a_lasting_outage_is_one_line_exit_2_and_resume_completes(gated_run, capsys, monkeypatch):
    from eitp_bench.runner import Runner

    url, suite, out, gate = gated_run
    monkeypatch.setitem(Runner.__init__.__kwdefaults__, "sleep", lambda s: None)  # the retries, without waiting

    def outage():
        deadline = time.monotonic() + 120
        while not list(out.glob("*-train.json")) and time.monotonic() < deadline:
            time.sleep(0.02)
        try:
            server("stop")
        finally:  # as above: never a hang
            gate.touch()

    down = threading.Thread(target=outage)
    down.start()
    code = main(["run", str(suite), "--store", url, "--out", str(out), "--no-report", "--quiet"])
    down.join()
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("eitp-bench: error:")]
    assert len(error_lines) == 1 and "gave up after 5 tries" in error_lines[0] and str(out) in error_lines[0]
    fix = next(line for line in err.splitlines() if line.strip().startswith("fix:"))
    assert "--resume" in fix and f"--out {out}" in fix
    assert (out / ".staging").exists() or len(list(out.glob("*.json"))) > 2  # the unstored records are kept
    server("start")
    assert main(["run", str(suite), "--store", url, "--out", str(out), "--no-report", "--quiet", "--resume"]) == 0
    ids = stored_run_ids(url)
    assert len(ids) == len(set(ids)) == 8


def test_a_read_only_role_is_refused_before_any_work(pg_url, tmp_path, capsys):
    import psycopg
    from sqlalchemy.engine import make_url

    from eitp_bench.store import Store

    Store.open(pg_url).close()  # the tables exist
    role = f"reader_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {role}")
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'r3ader'")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    try:
        reader = make_url(pg_url).set(username=role, password="r3ader").render_as_string(hide_password=False)
        with pytest.raises(UserError, match="may not write"):
            Store.open(reader)
        out = tmp_path / "out"
        assert main(["run", "smoke", "--store", reader, "--out", str(out), "--no-report"]) == 2
        err = capsys.readouterr().err
        assert "may not write" in err and "r3ader" not in err
        assert not (out / "suite.json").exists()  # refused before any work
        Store.open(reader, read_only=True).close()  # reading stays allowed
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")

"""The fleet store on PostgreSQL: concurrent writers lose nothing, reports equal SQLite's, clear
connection errors, and a password never shows. Skipped, with the reason, without a server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eitp_bench.cli import main
from eitp_bench.errors import UserError
from eitp_bench.store import Store
from eitp_bench.store.url import locate, masked

sys.path.insert(0, str(Path(__file__).parents[1]))
from store_backends import admin_url, pg_url, require_pg  # noqa: E402,F401  (fixtures)
from synthetic_store import eitp_records  # noqa: E402
from test_newest_reads import _back_to_v11  # noqa: E402
from test_store import make_record  # noqa: E402

TESTS = os.pathsep.join([str(Path(__file__).parent), str(Path(__file__).parents[1])])

WRITER = textwrap.dedent(
    """
    import os, sys
    sys.path[:0] = sys.argv[3].split(os.pathsep)  # tests/store (test_store) and tests/ (its helpers)
    from eitp_bench.store import Store
    from test_store import make_record
    with Store.open(sys.argv[1]) as store:  # every writer migrates the empty database at once: they must agree
        for i in range(int(sys.argv[4])):
            assert store.add(make_record(i, arm=sys.argv[2]))  # one transaction per repetition
    """
)


def test_four_writers_500_records_each_lose_nothing(pg_url):
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, pg_url, f"arm{k}", TESTS, "500"], stderr=subprocess.PIPE)
             for k in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
    with Store.open(pg_url, read_only=True) as store:
        runs = store.runs_frame()
        assert len(runs) == 2000 and runs.run_id.is_unique
        assert runs.arm.value_counts().to_dict() == {f"arm{k}": 500 for k in range(4)}
        assert len(store.metrics_frame()) == 4000 and len(store.energy_frame()) == 4000
        assert len(store.timeline_frame()) == 4000
        assert sorted(runs.drop_duplicates("arm").arm) == [f"arm{k}" for k in range(4)]
    # integrity: every child row belongs to a stored run, every run has its children, seq is unique
    import psycopg

    with psycopg.connect(pg_url) as conn:
        orphans = conn.execute("SELECT count(*) FROM metrics m LEFT JOIN runs r USING (run_id) WHERE r.run_id IS NULL").fetchone()[0]
        childless = conn.execute("SELECT count(*) FROM runs r WHERE (SELECT count(*) FROM energy e WHERE e.run_id = r.run_id) != 2").fetchone()[0]
        seqs = conn.execute("SELECT count(DISTINCT seq), count(*) FROM runs").fetchone()
    assert orphans == 0 and childless == 0 and seqs == (2000, 2000)


RACER = textwrap.dedent(
    """
    import sys
    from eitp_bench.store.record_files import read_record_file
    from eitp_bench.store import Store
    from pathlib import Path
    records = read_record_file(Path(sys.argv[2]))
    added = 0
    with Store.open(sys.argv[1]) as store:
        for r in records:  # one transaction each, interleaving with the other process
            added += store.add(r)
    print(added)
    """
)


def test_racing_writers_of_the_same_run_ids_store_each_once(pg_url, tmp_path):
    # Two machines importing the same export at once: ON CONFLICT DO NOTHING, never an error or a double.
    records = [make_record(i) for i in range(300)]
    src = tmp_path / "same.jsonl"
    src.write_text("".join(r.model_dump_json() + "\n" for r in records))
    procs = [subprocess.Popen([sys.executable, "-c", RACER, pg_url, str(src)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    added = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        added.append(int(out))
    assert sum(added) == 300  # each run_id added by exactly one of them
    with Store.open(pg_url, read_only=True) as store:
        assert store.count() == 300 and {r.run_id: r for r in store.records()} == {r.run_id: r for r in records}
        assert len(store.metrics_frame()) == 600


def test_report_from_postgresql_equals_report_from_sqlite(pg_url, tmp_path, capsys):
    records = eitp_records(n_reps=5, failed=1, timeline=True)
    sqlite_path = tmp_path / "s.sqlite"
    for store in (sqlite_path, pg_url):
        with Store.open(store) as st:
            st.add_many(records)
    docs = []
    for store in (sqlite_path, pg_url):
        assert main(["report", "--json", "--store", str(store)]) == 0
        doc = json.loads(capsys.readouterr().out)
        doc.pop("source")
        docs.append(doc)
    assert docs[0]["groups"] and docs[0]["groups"][0]["verdicts"]
    assert docs[0] == docs[1]
    # and the frames themselves, column for column
    import pandas as pd

    with Store.open(sqlite_path, read_only=True) as a, Store.open(pg_url, read_only=True) as b:
        for name in ("runs_frame", "metrics_frame", "energy_frame", "timeline_frame", "provenance_frame"):
            pd.testing.assert_frame_equal(getattr(a, name)(), getattr(b, name)(), check_dtype=False, obj=name)
        assert a.configs() == b.configs() and a.records() == b.records()


def test_compare_and_regress_read_the_fleet_store(pg_url, capsys):
    with Store.open(pg_url) as st:
        st.add_many(eitp_records(n_reps=4, failed=0, timeline=False, profile="hp-a")
                    + eitp_records(n_reps=4, failed=0, timeline=False, profile="hp-b", seed=1, started0=100))
    assert main(["compare", "--store", pg_url]) == 0
    out = capsys.readouterr().out
    assert "hp-a" in out and "hp-b" in out
    assert main(["regress", "--store", pg_url]) in (0, 1)
    assert "Traceback" not in capsys.readouterr().err


# --- connection errors and passwords -------------------------------------------------------------


def _url_with(user=None, password=None, host=None, port=None, database=None) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(admin_url().replace("postgresql://", "postgresql+psycopg://", 1))
    url = url.set(**{k: v for k, v in dict(username=user, password=password, host=host, port=port,
                                           database=database).items() if v is not None})
    return url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://", 1)


def _error_of(argv, capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.out + captured.err


@pytest.fixture
def server():
    require_pg()


SECRET = "s3cr3t-Wrong-Pa55"


def test_a_wrong_password_is_one_clear_message_without_the_password(server, tmp_path, capsys):
    url = _url_with(password=SECRET)
    src = tmp_path / "r.jsonl"
    src.write_text(eitp_records(n_reps=1, failed=0, timeline=False)[0].model_dump_json() + "\n")
    for argv in (["report", "--store", url], ["export", "--format", "jsonl", "--store", url],
                 ["import", str(src), "--store", url]):
        err = _error_of(argv, capsys)
        assert "refused the login" in err and "fix:" in err and "pgpass" in err
        assert SECRET not in err and "postgresql://postgres:***@" in err


def test_an_unreachable_server_is_one_clear_message(server, capsys):
    err = _error_of(["report", "--store", _url_with(password=SECRET, host="127.0.0.1", port=1)], capsys)
    assert "cannot reach the PostgreSQL server" in err and "pg_isready" in err and SECRET not in err


def test_a_missing_database_is_one_clear_message(server, capsys):
    err = _error_of(["report", "--store", _url_with(database="eitp_no_such_db")], capsys)
    assert "does not exist" in err and "createdb" in err
    password = locate(admin_url()).password
    assert not password or password not in err


def test_an_empty_database_is_no_store_for_readers(pg_url, capsys):
    err = _error_of(["report", "--store", pg_url], capsys)
    assert "no results store" in err


def test_a_foreign_database_is_refused(pg_url):
    import psycopg

    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE users (id int)")
    with pytest.raises(UserError, match="not an eitp-bench store"):
        Store.open(pg_url)


def test_the_password_never_shows_in_paths_reports_or_records(pg_url, tmp_path, capsys, monkeypatch):
    password = locate(pg_url).password
    assert password, "the test server must use a password (.ci/postgres.sh does)"
    monkeypatch.setenv("EITP_BENCH_STORE", pg_url)
    with Store.open() as store:
        store.add_many(eitp_records(n_reps=3, failed=0, timeline=False))
        assert password not in str(store.path) and "***" in str(store.path)
        assert password not in repr(store.location)
        exported = "".join(r.model_dump_json() for r in store.records())
    assert password not in exported
    assert main(["report", "--out", str(tmp_path / "r.html")]) == 0
    assert main(["report", "--json"]) == 0
    printed = capsys.readouterr()
    assert password not in printed.out + printed.err
    assert password not in (tmp_path / "r.html").read_text()


def test_masking():
    assert masked("postgresql://bob:pw@h:5432/db failed") == "postgresql://bob:***@h:5432/db failed"
    assert masked("x postgresql+psycopg://bob:p%40w@h/db y", "p@w") == "x postgresql+psycopg://bob:***@h/db y"
    assert masked("password p@w was wrong", "p@w") == "password *** was wrong"
    assert locate("postgresql://bob@h:5432/db").shown == "postgresql://bob@h:5432/db"
    assert locate("postgresql://bob:pw@h/db").shown == "postgresql://bob:***@h/db"
    with pytest.raises(UserError, match="names no database"):
        locate("postgresql://bob@h:5432")
    with pytest.raises(UserError, match="mysql") as info:
        locate("mysql://bob:hunter2@h/db")
    assert "hunter2" not in str(info.value)


def test_without_a_server_the_postgresql_cases_skip_with_the_reason(monkeypatch):
    import store_backends

    monkeypatch.delenv("EITP_BENCH_TEST_PG_URL", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL: set EITP_BENCH_TEST_PG_URL"):
        store_backends.require_pg()
    monkeypatch.setenv("EITP_BENCH_TEST_PG_URL", "postgresql://u@h/db")
    store_backends.require_pg()  # configured: no skip


def test_a_v4_store_on_postgresql_is_migrated_to_the_models_layout(pg_url):
    # No PostgreSQL store predates v5, but every step from v5 on must run on both dialects: take a store
    # back to the v4 layout by hand, with a run in it, and let opening it migrate.
    import psycopg

    from eitp_bench.store.layout import METADATA

    old = make_record(1)
    with Store.open(pg_url) as store:
        store.add(old)
    with Store.open(pg_url) as store, store._tx(write=True) as conn:
        _back_to_v11(conn)  # (v12)
    with psycopg.connect(pg_url) as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN timeline_devices")  # (v11; its index gone since then)
        conn.execute("DROP INDEX runs_grouped")  # (v10)
        conn.execute("DROP INDEX metrics_not_finite")
        conn.execute("ALTER TABLE runs DROP COLUMN has_finite_metric")
        conn.execute("ALTER TABLE runs DROP COLUMN seq")
        conn.execute("ALTER TABLE metrics DROP COLUMN flags_json")
        conn.execute("ALTER TABLE metrics ALTER COLUMN value SET NOT NULL")
        conn.execute("ALTER TABLE energy DROP COLUMN sampled_joules")  # (v6)
        conn.execute("ALTER TABLE energy DROP COLUMN crosscheck_tolerance_j")
        conn.execute("ALTER TABLE energy DROP COLUMN hw_state_json")  # (v7)
        conn.execute("DROP INDEX runs_by_group")  # (v9)
        conn.execute("ALTER TABLE runs DROP COLUMN energy_state_json")
        conn.execute("UPDATE runs SET record_schema_version = 3")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    with Store.open(pg_url) as store:
        assert store.records() == [old]
        assert store.add(make_record(2)) is True
        assert [r.repetition for r in store.records()] == [1, 2]  # the old run first: seq filled in order
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT table_name, column_name, is_nullable FROM information_schema.columns "
                            "WHERE table_schema = 'public'").fetchall()
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        indexes = {(t, i) for t, i in conn.execute("SELECT tablename, indexname FROM pg_indexes "
                                                   "WHERE schemaname = 'public' AND indexname NOT LIKE '%pkey'")}
    layout = {(t, c): n == "YES" for t, c, n in rows}
    expected = {(t.name, c.name): c.nullable for t in METADATA.sorted_tables for c in t.columns}
    assert layout == expected and version == str(len(__import__("eitp_bench.store.migrations").store.migrations.MIGRATIONS))
    assert indexes == {(t.name, i.name) for t in METADATA.sorted_tables for i in t.indexes}

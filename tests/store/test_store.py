"""The results store: exact round trip, idempotence, concurrency, refusal of foreign files, migrations."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from eitp_bench.errors import UserError
from eitp_bench.flags import Flag
from eitp_bench.records import EnergyEntry, Metric, Provenance, RunRecord, TimelinePoint
from eitp_bench.records import SCHEMA_VERSION as SCHEMA_VERSION_RECORDS
from eitp_bench.store import MIGRATIONS, SCHEMA_VERSION, Store, resolve_path
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)

# An NVML error text really contains ';' (and quotes): it must come back unchanged, never split.
NVML_MESSAGE = "NVML error on gpu:0: NVMLError_Unknown: Unknown Error; retry \"later\" (during or at the edge of this window)"
FLAGS = [Flag(code="wrap_unrepairable", message="wrapped past repair"), Flag(code="nvml_error", message=NVML_MESSAGE)]


def make_record(i: int = 0, *, suite: str = "smoke", arm: str = "baseline", status: str = "ok") -> RunRecord:
    return RunRecord(
        suite=suite,
        suite_config_hash="cfg123",
        arm=arm,
        task="lm",
        size="tiny",
        seed=1000 + i,
        repetition=i,
        device="cuda:0",
        finished_at="2026-01-01T00:00:10.000+00:00",
        status=status,
        error="boom" if status == "failed" else None,
        config={"steps": 10, "lr": 3e-4, "nested": {"a": [1, 2.5, None]}},
        provenance=Provenance(
            eitp_bench_version="0.1.0",
            git_commit="abc",
            python="3.11.7",
            torch="2.13.0",
            platform="Linux-x86_64",
            hardware_profile_id="fcf2358a6de5",
            hardware={"gpu": "NVIDIA H100 80GB HBM3", "power_limit_w": 700.0},
        ),
        metrics=[
            Metric(name="tokens_per_s", value=1234.5 + i, unit="tok/s", window="generate"),
            Metric(name="val_ppl", value=0.1 + 0.2, unit="1"),  # a float that must survive exactly
        ],
        energy=[
            EnergyEntry(window="train", device="gpu:0", domain="gpu", joules=100.0 + i, method="counter",
                        meter="nvml", duration_s=2.5, samples=250, max_gap_s=0.011, wraps=0,
                        idle_watts=60.0, net_joules=100.0 + i - 150.0),
            EnergyEntry(window="train", device="cpu:0", domain="package", joules=None, method="counter",
                        meter="rapl", duration_s=2.5, wraps=3, flags=FLAGS),
        ],  # fmt: skip
        timeline=[
            TimelinePoint(window="train", device="gpu:0", domain="gpu", t=0.0, watts=250.0),
            TimelinePoint(window="train", device="gpu:0", domain="gpu", t=0.1, watts=260.5),
        ],
    )


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "results.sqlite"


def run_history(path, steps) -> None:
    """Apply old migration steps to a SQLite file, as the eitp-bench of that time did."""
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for step in steps:
            step(conn)
    engine.dispose()


def test_round_trip_is_exact(store_url):
    records = [make_record(i) for i in range(3)] + [make_record(9, status="failed"), make_record(5, suite="other")]
    with Store.open(store_url) as store:
        for r in records:
            assert store.add(r) is True
    with Store.open(store_url, create=False) as store:
        back = store.records()
        assert back == records  # every field: flags, None joules, timeline, nested config
        assert back[0].energy[1].joules is None and back[0].energy[1].flags == FLAGS
        assert back[0].energy[1].flags[1].message == NVML_MESSAGE
        assert back[0].metrics[1].value == 0.1 + 0.2
        assert store.records(suite="other") == [records[4]]
        assert store.records(status="failed") == [records[3]]
        assert store.records(suite="smoke", status="ok") == records[:3]


def test_add_is_idempotent_per_run_id(store_url):
    r = make_record()
    with Store.open(store_url) as store:
        assert store.add(r) is True
        assert store.add(r) is False
        r1 = make_record(1)
        assert store.add_many([r, r1, r1]) == 1  # duplicates inside one batch count once
        assert store.count() == 2
        metrics = store.metrics_frame()
        assert len(metrics) == 4  # children of a duplicate are never added twice


def test_add_many_is_all_or_nothing(store_url):
    good = make_record(0)
    with Store.open(store_url) as store:

        def records():
            yield good
            raise RuntimeError("reader died mid-file")

        with pytest.raises(RuntimeError):
            store.add_many(records())
        assert store.count() == 0 and store.records() == []


def test_frames_have_the_contract_columns_and_values(store_url):
    with Store.open(store_url) as store:
        store.add(make_record(0))
        store.add(make_record(1, arm="eitp-paper"))
        runs = store.runs_frame()
        assert list(runs.columns) == [
            "run_id", "suite", "suite_config_hash", "arm", "task", "size", "seed", "repetition",
            "device", "world_size", "nnodes", "status", "error", "started_at", "finished_at",
            "hardware_profile_id",
        ]  # fmt: skip
        assert list(runs.arm) == ["baseline", "eitp-paper"]
        metrics = store.metrics_frame()
        assert set(runs.columns) <= set(metrics.columns)
        row = metrics[(metrics.arm == "eitp-paper") & (metrics.name == "tokens_per_s")].iloc[0]
        assert row.value == 1235.5 and row.unit == "tok/s" and row.window == "generate"
        energy = store.energy_frame()
        for column in ("window", "device", "domain", "joules", "method", "meter", "duration_s", "samples",
                       "max_gap_s", "wraps", "flags", "flag_messages", "idle_watts", "net_joules",
                       "run_device"):  # fmt: skip
            assert column in energy.columns
        assert list(energy.columns[-19:]) == [
            "window", "device", "domain", "joules", "method", "meter", "duration_s", "samples", "max_gap_s", "wraps",
            "flags", "flag_messages", "idle_watts", "rank", "host", "sampled_joules", "crosscheck_tolerance_j",
            "hw_state", "net_joules",
        ]  # fmt: skip
        gpu = energy[(energy.domain == "gpu") & (energy.arm == "baseline")].iloc[0]
        assert gpu.device == "gpu:0" and gpu.run_device == "cuda:0"
        assert gpu.joules == 100.0 and gpu.net_joules == -50.0
        package = energy[energy.domain == "package"].iloc[0]
        assert math.isnan(package.joules) and package["flags"] == ["wrap_unrepairable", "nvml_error"]
        assert package["flag_messages"] == ["wrapped past repair", NVML_MESSAGE]
        assert gpu["flags"] == [] and gpu["flag_messages"] == []
        assert energy.joules.dtype == float
        timeline = store.timeline_frame()
        assert list(timeline.columns) == ["run_id", "arm", "task", "window", "device", "domain", "t", "watts"]
        assert list(timeline.watts) == [250.0, 260.5, 250.0, 260.5]


def test_provenance_frame(store_url):
    with Store.open(store_url) as store:
        assert list(store.provenance_frame().columns)[:2] == ["run_id", "eitp_bench_version"]
        r = make_record()
        store.add(r)
        prov = store.provenance_frame()
        assert len(prov) == 1 and prov.run_id[0] == r.run_id
        assert prov["hardware.gpu"][0] == "NVIDIA H100 80GB HBM3" and prov["hardware.power_limit_w"][0] == 700.0
        assert prov.hardware_profile_id[0] == "fcf2358a6de5" and prov.torch[0] == "2.13.0"


def test_provenance_frame_parses_each_distinct_text_once_and_keeps_every_runs_row(store_url):
    """Runs sharing a provenance text share its parse; runs with another text (another commit, another
    hardware key) keep their own values, and columns missing from a text are NaN, as a per-run parse gives."""
    import pandas as pd

    with Store.open(store_url) as store:
        records = [make_record(i) for i in range(5)]
        records[2].provenance.git_commit = "def"
        records[3].provenance.hardware["board_serial"] = "B-7"
        store.add_many(records)
        prov = store.provenance_frame()
        expected = pd.DataFrame([{**r.provenance.model_dump(exclude={"hardware"}), **{f"hardware.{k}": v for k, v in
                                  r.provenance.hardware.items()}} for r in records])
        assert list(prov["run_id"]) == [r.run_id for r in records]
        assert list(prov.columns[1:]) == list(expected.columns)
        assert list(prov["git_commit"]) == ["abc", "abc", "def", "abc", "abc"]
        assert prov["hardware.board_serial"].isna().tolist() == [True, True, True, False, True]
        assert prov["hardware.board_serial"][3] == "B-7"


def test_configs_of_some_hashes_are_those_of_every_hash(store_url):
    """configs(hashes=…) walks the runs in store order until each hash is seen: the same first run's config
    as the grouped minimum over every run, also for a hash first stored long after the others."""
    with Store.open(store_url) as store:
        records = []
        for i in range(700):  # past the first keyset pages (256, then 1024 rows)
            r = make_record(i)
            r.suite_config_hash = "late" if i >= 650 else f"cfg{i % 3}"
            r.config = {"steps": i}
            records.append(r)
        store.add_many(records)
        every = store.configs()
        assert set(every) == {"cfg0", "cfg1", "cfg2", "late"} and every["late"] == {"steps": 650}
        assert store.configs(hashes=["late", "cfg1"]) == {"late": every["late"], "cfg1": every["cfg1"]}
        assert store.configs(hashes=["cfg2", "nowhere"]) == {"cfg2": every["cfg2"]}


def test_frames_of_an_empty_store(store_url):
    with Store.open(store_url) as store:
        assert len(store.runs_frame()) == 0 and "hardware_profile_id" in store.runs_frame().columns
        energy = store.energy_frame()
        assert len(energy) == 0 and {"flags", "joules", "run_device"} <= set(energy.columns)
        assert len(store.metrics_frame()) == 0 and len(store.timeline_frame()) == 0


WRITER = textwrap.dedent(
    """
    import os, sys
    from eitp_bench.store import Store
    sys.path[:0] = sys.argv[3].split(os.pathsep)  # tests/store (this file) and tests/ (its helpers)
    from test_store import make_record
    with Store.open(sys.argv[1]) as store:
        for i in range(50):
            assert store.add(make_record(i, arm=sys.argv[2]))
    """
)


def test_two_processes_writing_at_once_both_land(store_url, tmp_path):
    here = __import__("pathlib").Path(__file__)
    tests_dir = os.pathsep.join([str(here.parent), str(here.parents[1])])
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(store_url), arm, tests_dir], stderr=subprocess.PIPE)
        for arm in ("baseline", "eitp-paper")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with Store.open(store_url, create=False) as store:
        runs = store.runs_frame()
        assert len(runs) == 100
        assert runs.arm.value_counts().to_dict() == {"baseline": 50, "eitp-paper": 50}
        assert len(store.metrics_frame()) == 200 and len(store.energy_frame()) == 200


def test_a_store_locked_past_the_busy_timeout_is_a_clear_error(store_path, monkeypatch):
    import eitp_bench.store.database as store_module

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 100)
    with Store.open(store_path) as store:
        holder = sqlite3.connect(store_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process mid-write, for longer than the timeout
        try:
            with pytest.raises(UserError, match="locked"):
                store.add(make_record())
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert store.add(make_record()) is True  # and the store still works afterwards


# --- files that are not ours are refused and left untouched ---------------------------------


def _assert_refused_untouched(path, *words):
    before = path.read_bytes()
    with pytest.raises(UserError) as info:
        Store.open(path)
    message = str(info.value)
    assert str(path) in message
    for w in words:
        assert w in message
    assert path.read_bytes() == before
    assert not path.with_name(path.name + "-wal").exists()


def test_non_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n")
    _assert_refused_untouched(path, "not a SQLite file")


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users VALUES (1, 'ada')")
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, "not an eitp-bench store", "users")


def test_foreign_meta_table_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.commit()
    conn.close()
    _assert_refused_untouched(path, "not an eitp-bench store")


def test_corrupt_store_is_refused(store_path):
    with Store.open(store_path) as store:
        store.add(make_record())
    data = bytearray(store_path.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # smash page 1 (the schema) after the 100-byte header
    store_path.write_bytes(bytes(data))
    _assert_refused_untouched(store_path, "corrupt")


def test_newer_schema_is_refused(store_path):
    with Store.open(store_path) as store:
        store.add(make_record())
    conn = sqlite3.connect(store_path)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    _assert_refused_untouched(store_path, "newer eitp-bench", "upgrade")


def test_missing_store_without_create(tmp_path):
    with pytest.raises(UserError, match="no results store"):
        Store.open(tmp_path / "nope.sqlite", create=False)
    assert not (tmp_path / "nope.sqlite").exists()


# --- migrations ------------------------------------------------------------------------------


def test_v1_store_is_migrated_and_keeps_its_runs(store_path):
    # A store exactly as schema v1 left it, with one run written by v1 code (no stored_at column).
    r = make_record(7)
    conn = sqlite3.connect(store_path, isolation_level=None)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('app', 'eitp-bench'), ('schema_version', '1')")
    run_history(store_path, MIGRATIONS[:1])
    conn.execute(
        "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (r.run_id, 1, r.suite, r.suite_config_hash, r.arm, r.task, r.size, r.seed, r.repetition, r.device,
         r.started_at, r.finished_at, r.status, r.error, r.provenance.hardware_profile_id,
         __import__("json").dumps(r.config), r.provenance.model_dump_json()),
    )  # fmt: skip
    for i, m in enumerate(r.metrics):
        conn.execute("INSERT INTO metrics VALUES (?,?,?,?,?,?)", (r.run_id, i, m.name, m.value, m.unit, m.window))
    conn.close()
    assert "stored_at" not in {row[1] for row in sqlite3.connect(store_path).execute("PRAGMA table_info(runs)")}

    with Store.open(store_path) as store:
        back = store.records()
        assert back == [r.model_copy(update={"energy": [], "timeline": []})]
        assert store.add(make_record(8)) is True
    conn = sqlite3.connect(store_path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    stored = dict(conn.execute("SELECT repetition, stored_at FROM runs").fetchall())
    conn.close()
    assert stored[7] is None and stored[8] is not None  # the v2 column exists and new runs fill it


def test_schema_version_matches_migration_count():
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 3


# Flags as eitp-bench wrote them under record schema 1: plain strings, one with ';' inside.
V1_FLAGS = [
    "invalid: counter went back from 900 to 100 µJ but max_energy_range_uj is unreadable, so the wrap cannot be corrected",
    "unavailable: energy_uj unreadable (PermissionError: root-only since CVE-2020-8694)",
    "something a user wrote; with a semicolon",
]


@pytest.mark.parametrize("store_version", [1, 2])
def test_old_store_with_plain_string_flags_is_upgraded(store_path, store_version):
    # A store as store schema v1 or v2 left it, holding a record-schema-1 run (flags as strings) written
    # with the INSERTs of that time: positional, the old column order.
    r = make_record(3)
    conn = sqlite3.connect(store_path, isolation_level=None)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('app', 'eitp-bench'), ('schema_version', ?)", (str(store_version),))
    run_history(store_path, MIGRATIONS[:store_version])
    run = (r.run_id, 1, r.suite, r.suite_config_hash, r.arm, r.task, r.size, r.seed, r.repetition, r.device,
           r.started_at, r.finished_at, r.status, r.error, r.provenance.hardware_profile_id,
           json.dumps(r.config), r.provenance.model_dump_json())  # fmt: skip
    conn.execute(f"INSERT INTO runs VALUES ({','.join('?' * len(run))}{',NULL' * (store_version - 1)})", run)
    for i, e in enumerate(r.energy):
        flags = V1_FLAGS if e.joules is None else []
        conn.execute("INSERT INTO energy VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     (r.run_id, i, e.window, e.device, e.domain, e.joules, e.method, e.meter, e.duration_s, e.samples,
                      e.max_gap_s, e.wraps, json.dumps(flags), e.idle_watts, e.net_joules))  # fmt: skip
    conn.close()

    with Store.open(store_path) as store:
        (back,) = store.records()
        assert back.schema_version == SCHEMA_VERSION_RECORDS and back.world_size == 1
        assert back.energy[1].flags == [
            Flag(code="wrap_unrepairable", message=V1_FLAGS[0]),
            Flag(code="permission_denied", message=V1_FLAGS[1]),
            Flag(code="legacy", message=V1_FLAGS[2]),
        ]
        assert back.energy[0].flags == [] and back.energy[0].net_joules == r.energy[0].net_joules
        package = store.energy_frame().iloc[1]
        assert package["flags"] == ["wrap_unrepairable", "permission_denied", "legacy"]
        assert package["flag_messages"] == V1_FLAGS
        assert store.add(make_record(4)) is True
    conn = sqlite3.connect(store_path)
    assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert {v for (v,) in conn.execute("SELECT record_schema_version FROM runs")} == {SCHEMA_VERSION_RECORDS}
    conn.close()


def _layout(path) -> dict:
    """{table: {column: (type affinity, not null)}} plus the indexes (name, the condition of a partial one), as
    SQLite reports them."""
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    # (a TEXT PRIMARY KEY is NOT NULL in effect although SQLite reports it nullable)
    out = {t: {row[1]: ("INT" in row[2].upper(), bool(row[3] or row[5])) for row in conn.execute(f"PRAGMA table_info({t})")}
           for t in tables}
    out["indexes"] = sorted((name, " ".join(sql.partition(" WHERE ")[2].split())) for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"))
    conn.close()
    return out


def test_migrated_layout_is_the_models_layout(tmp_path):
    # A new store is created from the models (store/layout.py); an old one replays the migrations. Both
    # must end in the same tables, columns, NULL rules and indexes, or old stores would read differently.
    import eitp_bench.store.database as store_module

    fresh, replayed = tmp_path / "fresh.sqlite", tmp_path / "replayed.sqlite"
    Store.open(fresh).close()
    conn = sqlite3.connect(replayed)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('app', 'eitp-bench'), ('schema_version', '1')")
    conn.commit()
    conn.close()
    run_history(replayed, MIGRATIONS)
    a, b = _layout(fresh), _layout(replayed)
    assert a == b
    for name, table in store_module.CHILD_TABLES.items():
        assert set(a[name]) == {"run_id", "idx", *table.columns}
    assert set(a["runs"]) == {*store_module.RUN_SQL_COLUMNS, "hardware_profile_id", "energy_state_id",
                              "has_finite_metric", "timeline_devices", "stored_at", "seq"}
    partial = {name: where for name, where in a["indexes"] if where}  # (v10) the planner matches these conditions
    assert partial == {"runs_grouped": "status = 'ok' AND has_finite_metric = 1", "metrics_not_finite": "value IS NULL"}
    assert "flags_json" in a["energy"] and "net_joules" in a["energy"] and "flags_json" in a["metrics"]


# --- where the store lives -------------------------------------------------------------------


def test_paths_and_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_path("sqlite:///rel/r.sqlite").as_posix() == "rel/r.sqlite"
    assert resolve_path("sqlite:////abs/r.sqlite").as_posix() == "/abs/r.sqlite"
    monkeypatch.delenv("EITP_BENCH_STORE", raising=False)
    assert resolve_path(None).as_posix() == "eitp-results/results.sqlite"
    monkeypatch.setenv("EITP_BENCH_STORE", str(tmp_path / "env.sqlite"))
    with Store.open() as store:
        store.add(make_record())
    assert (tmp_path / "env.sqlite").exists()
    with pytest.raises(UserError, match="SQLite files or PostgreSQL databases"):
        Store.open("mysql://host/db")
    with pytest.raises(UserError, match="directory"):
        Store.open(tmp_path)

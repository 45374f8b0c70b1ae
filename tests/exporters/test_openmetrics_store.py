"""`export --format openmetrics` reads a store in SQL (openmetrics.store_families + regress.store_changes)
and must write the very bytes that the whole store read into frames gives (openmetrics.families over
frames.load_frames + regress.find_changes, kept as the reference), on SQLite and PostgreSQL.

The store holds many nights of several suites, and each case where "latest" is easy to get wrong: runs
that share a started_at (the later stored wins), a latest run without one of its series' metrics or with
it NaN (an older run's value is the latest), failed runs started last, a faulted latest energy entry (left
out, never an older figure), hosts, runs without a hardware profile, and finish times written with other
UTC offsets and precisions (the latest in time is not the greatest string).
"""

from __future__ import annotations

import pytest
from nightly_store import nightly_records
from synthetic_store import eitp_records, record
from test_export_openmetrics import fleet_records

from eitp_bench.analysis.frames import load_frames
from eitp_bench.analysis.regress import find_changes, store_changes
from eitp_bench.cli import main
from eitp_bench.exporters.openmetrics import families, render, store_families
from eitp_bench.flags import Flag
from eitp_bench.records import EnergyEntry
from eitp_bench.store import Store
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics  # noqa: E402


def _edge_records() -> list:
    recs = []
    # two runs of one series started at the same time: the later stored is the latest
    recs += [record("baseline", "generate", i, {"tokens_per_s": v}, suite="tie", started=5) for i, v in ((0, 111.0), (1, 222.0))]
    # the latest run lacks step_s and has tokens_per_s NaN: both latest values are the older run's
    recs.append(record("baseline", "generate", 0, {"tokens_per_s": 50.0, "step_s": 0.5}, suite="gap", started=0))
    recs.append(record("baseline", "generate", 1, {"tokens_per_s": float("nan"), "latency_p50_s": 0.02},
                       suite="gap", started=10))
    # a failed run started last is never the latest
    recs.append(record("baseline", "generate", 2, {"tokens_per_s": 999.0}, suite="gap", started=20, status="failed",
                       error="boom"))
    # energy on two hosts, one entry without a host; the latest run's entry on node-b is faulted
    for i, faulted in enumerate((False, True)):
        r = record("eitp-paper", "train", i, {"train_joules": 10.0 + i}, suite="hosts", profile=None, started=i)
        r.energy = [EnergyEntry(window="train", device="gpu:0", domain="gpu", joules=100.0 + i, method="counter",
                                meter="nvml", duration_s=5.0, samples=50, host=host,
                                flags=[Flag(code="stalled", message="no new reading for 2 s")] if faulted and host else [])
                    for host in (None, "node-b")]
        recs.append(r)
    # finish times: the +02:00 one is the greatest string but the earliest time; one has milliseconds
    for i, finished in enumerate(("2026-01-01T10:00:00+02:00", "2026-01-01T09:00:00+00:00",
                                  "2026-01-01T08:30:00.123+00:00", None)):
        recs.append(record("baseline", "lm", i, {"val_loss": 3.0 + i}, suite="tz", started=i)
                    .model_copy(update={"finished_at": finished}))
    return recs


def _records() -> list:
    recs = nightly_records(30, slow_from=20, profile="hp-a") + nightly_records(9, slow_from=None, profile=None,
                                                                                suite="smoke-b")
    for night in range(4):
        for k, (suite, profile) in enumerate((("eitp-a", "hp-1"), ("eitp-a", "hp-2"), ("eitp-b", "hp-1"))):
            recs += eitp_records(n_reps=2, seed=10 * night + k, suite=suite, profile=profile, failed=1,
                                 timeline=False, started0=1440 * night + 30 * k)
    return recs + fleet_records() + _edge_records()


@pytest.fixture
def store(store_url):  # noqa: F811
    with Store.open(store_url) as st:
        st.add_many(_records())
    return store_url


def _reference(store) -> str:
    """What the export wrote when it read the whole store into frames."""
    frames = load_frames(store)
    return render(families(frames, find_changes(frames.metrics, provenance=frames.provenance)), "openmetrics")


def _samples(text: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in parse_openmetrics(text) for s in f.samples}


def _value(samples: dict, name: str, **labels) -> float:
    hits = [v for (n, ls), v in samples.items() if n == name and all((k, w) in ls for k, w in labels.items())]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def test_sql_families_are_those_of_the_whole_store_read_into_frames(store):
    reference = _reference(store)
    with Store.open(store, read_only=True) as st:
        text = render(store_families(st, store_changes(st).changes), "openmetrics")
    assert text == reference
    # and the reference holds what it should (the equality above is about something)
    samples = _samples(text)
    assert _value(samples, "eitp_bench_tokens_per_second", suite="tie") == 222.0
    assert _value(samples, "eitp_bench_tokens_per_second", suite="gap") == 50.0
    assert _value(samples, "eitp_bench_step_seconds", suite="gap") == 0.5
    assert _value(samples, "eitp_bench_latency_p50_seconds", suite="gap") == 0.02
    assert _value(samples, "eitp_bench_energy_joules_total", suite="hosts", host="", hardware_profile="") == 101.0
    assert not [k for k in samples if ("host", "node-b") in k[1]]  # the latest is faulted: absent, not 100 J
    assert _value(samples, "eitp_bench_last_run_timestamp_seconds", suite="tz") == 1767258000.0  # 09:00Z
    assert _value(samples, "eitp_bench_regression", suite="smoke", metric="tokens_per_s") == 1.0
    assert _value(samples, "eitp_bench_regression", suite="smoke-b", metric="tokens_per_s", hardware_profile="") == 0.0


@pytest.mark.parametrize("dialect", ["openmetrics", "prometheus"])
def test_the_command_writes_the_reference_bytes(store, tmp_path, dialect):
    frames = load_frames(store)
    reference = render(families(frames, find_changes(frames.metrics, provenance=frames.provenance)), dialect)
    out = tmp_path / "eitp.prom"
    assert main(["export", "--format", dialect, "--store", store, "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == reference


def test_an_empty_store_exports_no_family(tmp_path):
    path = tmp_path / "empty.sqlite"
    Store.open(str(path)).close()
    with Store.open(str(path), read_only=True) as st:
        assert store_families(st, store_changes(st).changes) == []
    assert _reference(str(path)) == "# EOF\n"

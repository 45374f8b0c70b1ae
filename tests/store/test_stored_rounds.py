"""The judge's rounds read from a store while its metric rows stream past (analysis/stored_rounds.py) are
exactly the rounds that combine_rounds computes from a full read, on both backends: the median of each
round's copies, their number, the first stored copy's row, every copy's flags, and the runs behind them.

The store holds a nightly job's copies: one batch of the EIT-P suite stored again on four more nights,
values moved a little each night, a flag on some copies, a NaN value, failed runs, two power limits of one
configuration × profile (two groups) and an older configuration.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from synthetic_store import eitp_records
from test_newest_reads import _state, _with_hardware
from test_rounds import copies

from eitp_bench.analysis.frames import for_suite, load_frames, load_newest
from eitp_bench.analysis.resultset import ResultSet
from eitp_bench.analysis.stored_rounds import read_rounds
from eitp_bench.flags import flag
from eitp_bench.records import Metric
from eitp_bench.report.build import findings_of
from eitp_bench.store import Store
from eitp_bench.store import queries as store_queries
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)


def _flagged(record, code: str):
    """The record with a flag on its first metric."""
    first, *rest = record.metrics
    first = first.model_copy(update={"flags": [*first.flags, flag(code, f"{code} on this copy")]})
    return record.model_copy(update={"metrics": [first, *rest]})


def _records() -> list:
    batch = eitp_records(n_reps=3, seed=3, suite="nightly", profile="hp-1", failed=1, started0=10_000)
    nights = [batch] + [copies(batch, night, jitter=0.01 * (-1) ** night) for night in range(1, 5)]
    out = []
    for night, records in enumerate(nights):
        for i, r in enumerate(records):
            if i % 4 == 0:  # half the nights ran at another power limit: a group of their own
                r = _with_hardware(r, state=_state(350.0 if night % 2 else 700.0))
            if night in (1, 3) and i % 5 == 0 and r.metrics:
                r = _flagged(r, "short_window" if night == 1 else "not_steady")
            if night == 2 and i % 7 == 0 and r.metrics:  # a copy whose value was NaN: stored null, not a copy
                r = r.model_copy(update={"metrics": [Metric(name=r.metrics[0].name, value=float("nan"),
                                                            unit=r.metrics[0].unit), *r.metrics[1:]]})
            out.append(r)
    older = eitp_records(n_reps=2, seed=9, suite="nightly", profile="hp-1", failed=0, started0=0)
    return [r.model_copy(update={"suite_config_hash": "cfg-old"}) for r in older] + out


@pytest.fixture
def stored(store_url):
    with Store.open(store_url) as store:
        store.add_many(_records())
    return store_url


def _full_groups(store):
    return {(g.key.config_hash, g.key.hardware_profile_id, g.key.energy_state): g
            for g in ResultSet(load_frames(store)).groups()}


def _read(store, **kwargs):
    groups = [(h, p) for h, p in {(k[0], k[1]) for k in _full_groups(store)}]
    where = store_queries.runs_of(groups)
    runs, seqs = store.runs_and_seqs(where=where)
    return read_rounds(store, where, runs, seqs, store.provenance_frame(where=where), **kwargs)


def test_the_rounds_are_combine_rounds_of_a_full_read(stored):
    store = Store.open(stored, read_only=True)
    full = _full_groups(store)
    got = _read(store)
    assert set(got.behind) == set(full)
    assert len(full) >= 3  # two power limits of the nightly configuration, and the older one
    by_key = dict(iter(got.frame.groupby(["suite_config_hash", "hardware_profile_id", "energy_state"], sort=False)))
    combined_somewhere = flags_merged = False
    for key, group in full.items():
        want = group.rounds.reset_index(drop=True)
        have = by_key[key].reset_index(drop=True)
        assert list(have.columns) == list(want.columns)
        pd.testing.assert_frame_equal(have.drop(columns="round_sd"), want.drop(columns="round_sd"), check_exact=True)
        np.testing.assert_allclose(have["round_sd"], want["round_sd"], rtol=1e-9, atol=1e-12)
        combined_somewhere |= bool((want["copies"] > 1).any())
        flags_merged |= any(len(set(codes)) > 1 for codes in want["flags"])
        behind, want_behind = got.behind[key], group.runs_behind
        assert list(behind.frame["run_id"]) == list(want_behind.frame["run_id"])
        for name in want["name"].unique():
            assert list(behind.runs(name=name)["run_id"]) == list(want_behind.runs(name=name)["run_id"]), name
    assert combined_somewhere and flags_merged  # the fixture exercises copies and merged flags, not one copy each


def test_rows_stream_a_chunk_at_a_time(stored, monkeypatch):
    store = Store.open(stored, read_only=True)
    chunks = []
    stream = store_queries.metric_values

    def small_chunks(store, where, consume, chunk_rows=20_000):
        def seen(rows):
            chunks.append(len(rows))
            consume(rows)

        return stream(store, where, seen, chunk_rows=7)

    whole = _read(store)
    monkeypatch.setattr(store_queries, "metric_values", small_chunks)
    chunked = _read(store)
    assert max(chunks) == 7 and len(chunks) > 10
    pd.testing.assert_frame_equal(chunked.frame, whole.frame, check_exact=True)


@pytest.mark.parametrize("max_groups", [1, 2, 3])
def test_report_json_from_the_rounds_is_that_of_a_full_read(stored, max_groups):
    store = Store.open(stored, read_only=True)
    newest = load_newest(store, max_groups=max_groups)
    assert newest.metrics is None and newest.rounds is not None  # no frame of every stored copy

    def as_json(frames):
        return json.dumps(findings_of(frames, "eitp", n_resamples=200, max_groups=max_groups).to_json(), indent=1)

    full = for_suite(load_frames(store), None)
    assert as_json(newest) == as_json(full)
    found = findings_of(newest, "eitp", n_resamples=200, max_groups=max_groups)
    batches = {v.n_batches for g in found.groups for v in g.verdicts if v.n_rounds}
    assert max(batches) >= 2  # the nightly copies count as batches behind the verdicts


def test_a_run_stored_while_the_rounds_are_read_is_passed_over(stored):
    """Another process may store a run of the same groups between the read of the runs and the metric rows'
    stream: the rounds are those of the runs read, never an error about an altered store."""
    reader = Store.open(stored, read_only=True)
    before = _read(reader)
    groups = [(h, p) for h, p in {(k[0], k[1]) for k in _full_groups(reader)}]
    where = store_queries.runs_of(groups)
    (runs, seqs), provenance = reader.runs_and_seqs(where=where), reader.provenance_frame(where=where)
    late = copies([r for r in _records() if r.status == "ok" and r.suite_config_hash != "cfg-old"][:3], 9, jitter=0.5)
    with Store.open(stored) as writer:
        writer.add_many(late)
    got = read_rounds(reader, where, runs, seqs, provenance)
    pd.testing.assert_frame_equal(got.frame, before.frame, check_exact=True)
    assert len(_read(reader).frame) == len(before.frame) and not _read(reader).frame.equals(before.frame)

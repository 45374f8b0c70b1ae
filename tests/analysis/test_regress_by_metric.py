"""`regress` on a store reads one page of series at a time (analysis/regress.py: store_changes).

Its table and exit code must be byte for byte those of today's read of every series at once
(frames.load_series, then testable_series and find_changes), on both backends: with planted steps in
several metrics, profiles with several boards and power limits, a run without a profile, failed runs and
NaN values. And it must never hold more than one page's rows (metric name × suite × task × arm) at once.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from eitp_bench import cli
from eitp_bench.analysis import frames as frames_module
from eitp_bench.analysis import regress as regress_module
from eitp_bench.analysis.regress import find_changes, store_changes
from eitp_bench.records import Metric
from eitp_bench.store import Store
from eitp_bench.store import queries as store_queries
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)
from synthetic_store import record

NIGHTS = 30


def _state(uuid: str, limit_w: float) -> dict:
    return {"driver_version": "550.54", "gpus": [{"uuid": uuid, "power_limit_w": limit_w, "clocks_locked": False}]}


def _nightly_records() -> list:
    """30 nights × 2 arms × 3 profiles; steps at night 20 in three metrics, flat noise in the others."""
    rng = np.random.default_rng(21)
    out = []
    for night in range(NIGHTS):
        late = night >= 20
        for p, profile in enumerate(["hp-a", "hp-b", None]):
            for arm in ("baseline", "eitp"):
                metrics = {
                    "tokens_per_s": 100.0 * (0.8 if late and profile == "hp-a" else 1.0),  # a regression
                    "step_s": 0.5 * (0.85 if late and profile == "hp-b" else 1.0),  # an improvement
                    "joules_per_token": 2.0 * (1.3 if late and arm == "eitp" else 1.0),  # a regression
                    "accuracy": 0.6,  # flat noise
                }
                metrics = {k: v * (1 + rng.normal(0, 0.01)) for k, v in metrics.items()}
                r = record(arm, "generate", night, metrics, started=1440 * night + 10 * p,
                           profile=profile or "hp-x", status="failed" if (night * 7 + p) % 23 == 0 else "ok")
                prov = r.provenance
                update = {}
                if profile is None:  # no profile stored: its own series, sorted after the named ones
                    update["hardware_profile_id"] = None
                if profile == "hp-a":  # two boards on one profile, and a power-limit change: keyed apart
                    board = "GPU-1" if night % 2 else "GPU-2"
                    update["hardware"] = {**prov.hardware, "state": _state(board, 350.0 if night < 10 else 300.0)}
                r = r.model_copy(update={"provenance": prov.model_copy(update=update)})
                if night % 5 == 0:  # a NaN value: stored null, never read as a point
                    r = r.model_copy(update={"metrics": [*r.metrics, Metric(name="zz_nan", value=float("nan"),
                                                                            unit="s")]})
                out.append(r)
    return out


@pytest.fixture
def nightly(store_url):
    with Store.open(store_url) as store:
        store.add_many(_nightly_records())
    return store_url


def _cli(args, capsys):
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("flags", [[], ["--window", "5", "--threshold", "1%"], ["--window", "1"]])
def test_regress_by_metric_prints_and_exits_as_the_all_at_once_read(nightly, capsys, monkeypatch, flags):
    by_metric = _cli(["regress", "--store", nightly, *flags], capsys)
    # today's read: every series at once (frames.load_series), taken when no SQL store is found
    monkeypatch.setattr(frames_module, "sql_store", lambda store=None: None)
    all_at_once = _cli(["regress", "--store", nightly, *flags], capsys)
    assert by_metric == all_at_once
    if flags != ["--window", "1"]:
        assert by_metric[0] == 1 and "regressions" in by_metric[1] and "improvement " in by_metric[1]
    else:  # the bad window is said after the series count, as before
        assert by_metric[0] == 2 and "--window 1 is too small" in by_metric[2]


def test_store_changes_are_those_of_the_all_at_once_read(nightly):
    """Against the whole store read into frames, each run's state from its provenance row: store_changes
    labels rows by their runs' state ids instead (hwstate.StateLabels)."""
    store = Store.open(nightly, read_only=True)
    series = frames_module.load_frames(store)
    names_with_points = set(series.metrics["name"])
    for kw in ({"window": 3, "threshold": 0.01, "min_size": 2}, {}):  # the defaults last: checked below
        scanned = store_changes(store, **kw)
        expected = find_changes(series.metrics, provenance=series.provenance, **kw)
        assert repr(scanned.changes) == repr(expected)
        testable = regress_module.testable_series(series.metrics, provenance=series.provenance,
                                                  min_size=kw.get("min_size", 3))
        assert (scanned.tested, scanned.total) == testable
    kinds = {(c.metric, c.kind) for c in scanned.changes if c.confirmed}
    assert {("tokens_per_s", "regression"), ("step_s", "improvement"), ("joules_per_token", "regression")} <= kinds
    assert any(c.board for c in scanned.changes) and any(c.hardware_profile_id is None for c in scanned.changes)
    assert "zz_nan" in store_queries.series_names(store) and "zz_nan" not in names_with_points


def test_store_changes_hold_one_pages_rows_at_a_time(nightly, monkeypatch):
    """Each read is one page's rows (metric name × suite × task × arm), every row of it, and the previous
    page's frame is gone before the next is read."""
    store = Store.open(nightly, read_only=True)
    full = frames_module.load_frames(store)
    ok = full.metrics[full.metrics["status"] == "ok"]
    per_page = ok.groupby(["name", "suite", "task", "arm"]).size()
    read = store_queries.series_pages
    alive: list = []
    sizes: list[int] = []
    pages: list[tuple] = []

    def one_read(store_, names, **kw):
        (name,) = names
        for frame in read(store_, names, **kw):
            gc.collect()
            assert not [ref for ref in alive if ref() is not None], "an earlier page's rows are still held"
            alive.append(weakref.ref(frame))
            sizes.append(len(frame))
            assert set(frame["name"]) == {name}
            pages.extend(set(zip(frame["name"], frame["suite"], frame["task"], frame["arm"])))
            yield frame
            del frame

    monkeypatch.setattr(store_queries, "series_pages", one_read)
    scanned = store_changes(store)
    assert scanned.changes and scanned.rows_read == sizes
    assert len(pages) == len(set(pages)) == len(per_page)  # each page read once, whole, in one frame
    assert sorted(sizes) == sorted(per_page.tolist())
    assert max(sizes) == per_page.max() < ok.groupby("name").size().max()  # less than a metric name's rows


def test_regress_html_and_report_regress_read_as_report_and_regress_do(nightly, capsys, tmp_path, monkeypatch):
    """`regress --html` and `report --regress` write the same page: the report of `report` (its newest groups
    when the store holds more) with the regressions that `regress` finds one metric name at a time."""
    code, out, _ = _cli(["regress", "--store", nightly, "--html", str(tmp_path / "a.html")], capsys)
    assert code == 1 and "regressions" in out
    assert _cli(["report", "--store", nightly, "--regress", "--out", str(tmp_path / "b.html")], capsys)[0] == 0
    monkeypatch.setattr(frames_module, "sql_store", lambda store=None: None)  # the all-at-once series read
    assert _cli(["report", "--store", nightly, "--regress", "--out", str(tmp_path / "c.html")], capsys)[0] == 0

    def page(name):
        return [line for line in (tmp_path / name).read_text().splitlines() if "Generated" not in line]

    assert page("a.html") == page("b.html") == page("c.html")
    assert "Nightly regressions" in (tmp_path / "a.html").read_text()


def test_series_positions_are_the_rows_of_a_sorted_frames_groups():
    """regress._series_positions finds each series' rows by position instead of sorting the frame by start
    time (stable) and grouping it (sorted, missing keys last): the same series, in the same order, with the
    same rows in the same order, on shuffled rows with equal start times and missing keys."""
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 400
    df = pd.DataFrame({
        "suite": rng.choice(["s1", "s2"], n), "task": rng.choice(["train", "generate"], n),
        "arm": rng.choice(["baseline", "eitp"], n), "name": "step_s",
        "hardware_profile_id": pd.Series(rng.choice(["hp-a", "hp-b", None], n), dtype="str"),
        "energy_state": rng.choice(["", "power limit 300 W"], n),
        "board": pd.Series(rng.choice(["GPU-1", None], n), dtype=object),
        "started_at": [f"2026-01-{1 + int(d):02d}T00:00:00" for d in rng.integers(0, 28, n)],  # many ties
        "value": rng.normal(size=n), "run_id": [f"r{i}" for i in range(n)]})
    df.index = rng.permutation(n) + 1000  # positions, never labels
    keys = ["suite", "task", "arm", "name", "hardware_profile_id", "energy_state", "board"]
    expected = [(key, list(group["run_id"])) for key, group in
                df.sort_values("started_at", kind="stable").groupby(keys, sort=True, dropna=False)]
    got = [(named, list(df["run_id"].to_numpy()[at])) for named, at in regress_module._series_positions(df, keys)]
    assert len(got) == len(expected) > 12
    for (named, runs), (key, want) in zip(got, expected):
        assert runs == want
        assert [named[k] for k in keys] == [regress_module._plain(v) for v in key]
    assert any(named["hardware_profile_id"] is None for named, _ in got)

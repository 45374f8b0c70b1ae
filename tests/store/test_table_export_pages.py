"""`export --format csv` writes each table a page of runs at a time; the files must be the bytes that
the whole table's frame gives written at once (the export before paging, kept here as the reference),
on both backends: with failed runs, NaN metrics, timelines, and a nullable integer column (energy.rank)
null in some pages only (pandas makes the whole column float: so must every page)."""

from __future__ import annotations

import json

from synthetic_store import eitp_records

from eitp_bench.cli import main
from eitp_bench.records import Metric
from eitp_bench.store import Store, database
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)


def _reference(store: Store, name: str) -> str:
    df = {"runs": store.runs_frame, "metrics": store.metrics_frame, "energy": store.energy_frame,
          "timeline": store.timeline_frame}[name]()
    lists = {c: df[c].map(json.dumps) for c in df.columns if c in ("flags", "flag_messages")}
    return df.assign(**lists).to_csv(index=False)


def _records():
    recs = eitp_records(n_reps=3, failed=1, timeline=True)
    for r in recs[:4]:  # the first page's entries all have a rank, the others none: one float column
        for e in r.energy:
            e.rank = 0
    assert any(r.energy for r in recs[:4])
    recs[5].metrics.append(Metric(name="step_s", value=float("nan"), unit="s"))
    return recs


def test_paged_csv_is_the_whole_tables_csv(store_url, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(database, "TABLE_PAGE_RUNS", 4)
    with Store.open(store_url) as st:
        st.add_many(_records())
    assert main(["export", "--format", "csv", "--store", store_url, "--out", str(tmp_path / "csv")]) == 0
    with Store.open(store_url, read_only=True) as st:
        for name in database.TABLE_NAMES:
            assert (tmp_path / "csv" / f"{name}.csv").read_text(encoding="utf-8") == _reference(st, name), name
        assert st.count() > 3 * database.TABLE_PAGE_RUNS  # several pages


def test_an_empty_store_exports_the_headers(tmp_path):
    path = str(tmp_path / "empty.sqlite")
    Store.open(path).close()
    assert main(["export", "--format", "csv", "--store", path, "--out", str(tmp_path / "csv")]) == 0
    with Store.open(path, read_only=True) as st:
        for name in database.TABLE_NAMES:
            assert (tmp_path / "csv" / f"{name}.csv").read_text(encoding="utf-8") == _reference(st, name), name

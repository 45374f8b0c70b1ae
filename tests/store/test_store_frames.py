"""Frames are fetched a chunk at a time, as Arrow columns: the same frames as the driver's rows all at once.

`Store._frame` no longer holds every row tuple of a query before pandas sees it (store/column_read.py); the
frames must be exactly those `pd.DataFrame.from_records(cursor.fetchall())` built: values, order and
dtypes, with null columns, columns null in one chunk only, and no rows at all, on both backends.
"""

from __future__ import annotations

import pandas as pd
import pytest

import eitp_bench.store.column_read as column_read
import eitp_bench.store.database as store_module
from eitp_bench.store import queries as store_queries
from eitp_bench.store import Store
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)
from test_newest_reads import _nightlies, _records


def _fetchall_frame(self, stmt, labels=frozenset(), instants=frozenset()):
    """The former Store._frame: every row from the driver, then pandas; the label columns then made
    categories by pandas (sorted categories of the column's text), the times asked as instants parsed by
    pandas as UTC instants to the microsecond."""
    with self._driver_cursor(stmt) as cursor:
        df = pd.DataFrame.from_records(cursor.fetchall(), columns=[d[0] for d in cursor.description])
    for c in instants:
        df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601").dt.tz_localize(None).astype("datetime64[us]")
    return df.astype({c: "category" for c in labels if c in df.columns and df[c].dtype == "str"})


READS = {
    "runs": lambda s: s.runs_frame(),
    "runs, times as instants": lambda s: s.runs_and_seqs(instants=True)[0],
    "metrics": lambda s: s.metrics_frame(),
    "energy": lambda s: s.energy_frame(),
    "timeline": lambda s: s.timeline_frame(),
    "timeline_runs": lambda s: s.timeline_runs(),
    "no timeline": lambda s: s.timeline_frame(run_ids=[]),
    "series": lambda s: store_queries.series_metrics(s),
}


def test_chunked_frames_equal_whole_fetches(store_url, monkeypatch):
    recs = _records() + _nightlies(1, [("t", "cfg-t", "hp-1")], timeline=True)
    for k, r in enumerate(recs):  # a column null in some chunks only
        if k % 5 == 0:
            r.finished_at = None
    with Store.open(store_url) as store:
        store.add_many(recs)
    store = Store.open(store_url, read_only=True)
    monkeypatch.setattr(column_read, "_FETCH_ROWS", 7)  # many chunks, some whose columns are all null
    chunked = {name: read(store) for name, read in READS.items()}
    monkeypatch.setattr(Store, "_frame", _fetchall_frame)
    whole = {name: read(store) for name, read in READS.items()}
    for name in READS:
        pd.testing.assert_frame_equal(chunked[name], whole[name], check_exact=True, obj=name)
    assert len(chunked["metrics"]) > 7 and len(chunked["timeline"]) > 7 and len(chunked["no timeline"]) == 0
    assert chunked["runs"]["finished_at"].isna().any() and chunked["runs"]["finished_at"].notna().any()
    arms = chunked["runs"]["arm"]  # a label: categories in text order, a code a row
    assert isinstance(arms.dtype, pd.CategoricalDtype) and list(arms.cat.categories) == sorted(set(arms))
    assert chunked["energy"]["device"].dtype == "category" and chunked["runs"]["run_id"].dtype == "str"
    timed = chunked["runs, times as instants"]
    assert timed["started_at"].dtype == "datetime64[us]" and timed["finished_at"].isna().any()


@pytest.mark.parametrize("rows", [0, 1, 7, 8, 20])
def test_columns_of_keeps_every_row_in_order(rows, monkeypatch):
    import sqlite3

    monkeypatch.setattr(column_read, "_FETCH_ROWS", 7)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (a TEXT, b REAL, c TEXT)")
    data = [(f"s{i % 3}", i / 2 if i % 4 else None, None if i < 9 else "late") for i in range(rows)]
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", data)
    got = column_read.columns_of(conn.execute("SELECT a, b, c FROM t ORDER BY rowid"), 3)
    assert got == ([list(col) for col in zip(*data)] if data else None)


@pytest.mark.parametrize("sizes", [[], [1], [7], [3, 4], [7, 7, 1], [16, 2, 1, 1, 9], [1] * 12, [20, 3]])
def test_frames_by_key_gives_each_keys_stretch_whole_whatever_the_fetch_size(sizes, monkeypatch):
    """store_queries.series_pages hands a frame per page from one ordered query: each stretch of rows with
    one key (two columns, a null among the keys) must come whole and alone, whether it ends inside a fetch of
    7 rows, on its edge, or spans several."""
    import sqlite3

    monkeypatch.setattr(column_read, "_FETCH_ROWS", 7)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k1 TEXT, v REAL, k2 TEXT, n INTEGER)")
    keys = [(f"a{i // 2}", None if i % 3 == 1 else f"b{i % 2}") for i in range(len(sizes))]
    data = [(k1, float(n), k2, n) for (k1, k2), size in zip(keys, sizes) for n in range(size)]
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", data)
    query = "SELECT * FROM t ORDER BY rowid"
    got = list(column_read.frames_by_key(conn.execute(query), [0, 2]))
    assert [len(f) for f in got] == sizes
    start = 0
    whole = column_read.frame_of(conn.execute(query))
    for frame, (k1, k2), size in zip(got, keys, sizes):
        assert set(frame["k1"]) == {k1} and [None if pd.isna(v) else v for v in set(frame["k2"])] == [k2]
        assert frame["n"].tolist() == list(range(size))
        # a stretch whose k2 is null throughout has it as pandas infers a column of nulls alone: object None
        drop = ["k2"] if k2 is None else []
        pd.testing.assert_frame_equal(frame.drop(columns=drop),
                                      whole.iloc[start:start + size].reset_index(drop=True).drop(columns=drop))
        start += size


@pytest.mark.parametrize("rows", [0, 1, 7, 8, 20])
def test_frame_of_types_columns_as_pandas_infers_them(rows, monkeypatch):
    """Chunks typed apart (integers then floats, nulls then text, text then integers: SQLite keeps what it was
    given) still give the column pandas infers from every value at once."""
    import sqlite3

    monkeypatch.setattr(column_read, "_FETCH_ROWS", 7)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (txt, num, mixed, late_text, empty, blob, flag, opt_int)")
    data = [(f"s{i % 3}" if i % 5 else None,
             i if i < 7 else i / 4,              # int64 chunks, then float64 ones
             "x" if i == 12 else i,              # one text among integers (a column Arrow cannot type)
             None if i < 9 else "late",          # a chunk of nulls only, then text
             None,                               # null throughout: object
             b"\x00" if i == 15 else i,          # bytes in one chunk (Arrow: binary)
             i % 2,                              # SQLite has no bool: integers
             None if i % 3 == 0 else i)          # integers with nulls: float64 and NaN
            for i in range(rows)]
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", data)
    query = "SELECT * FROM t ORDER BY rowid"
    got = column_read.frame_of(conn.execute(query))
    cursor = conn.execute(query)
    want = pd.DataFrame.from_records(cursor.fetchall(), columns=[d[0] for d in cursor.description])
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    if rows == 20:
        assert str(got["txt"].dtype) == "str" and got["num"].dtype == float and got["opt_int"].dtype == float
        assert got["mixed"].dtype == object and got["empty"].dtype == object and got["flag"].dtype == "int64"


@pytest.mark.parametrize("rows", [0, 1, 7, 8, 20])
def test_label_columns_come_as_sorted_categories_of_their_text(rows, monkeypatch):
    """A label column is coded a chunk at a time; it must hold the column's text as pandas makes categories
    of it (categories in text order, nulls missing), and a label column that turns out not to be text (SQLite
    keeps an integer given to a TEXT column) the values pandas infers, as any column."""
    import sqlite3

    monkeypatch.setattr(column_read, "_FETCH_ROWS", 7)
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (arm, late, nulls, numbered, other)")
    data = [(["zeta", "alpha", "mid", "é"][i % 4] if i % 6 else None,
             None if i < 9 else f"v{i % 2}",     # a chunk of nulls only, then text
             None,                                # null throughout
             "x" if i < 8 else i,                 # text chunks, then integers
             f"o{i % 3}")                         # not a label: stays text
            for i in range(rows)]
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", data)
    query = "SELECT * FROM t ORDER BY rowid"
    labels = {"arm", "late", "nulls", "numbered"}
    got = column_read.frame_of(conn.execute(query), labels)
    cursor = conn.execute(query)
    want = pd.DataFrame.from_records(cursor.fetchall(), columns=[d[0] for d in cursor.description])
    want = want.astype({c: "category" for c in labels if want[c].dtype == "str"})
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    if rows == 20:
        assert list(got["arm"].cat.categories) == ["alpha", "mid", "zeta", "é"]
        assert got["arm"].isna().sum() == 4 and got["numbered"].dtype == object and got["other"].dtype == "str"
        assert got.sort_values("arm", kind="stable")["arm"].dropna().tolist() == sorted(got["arm"].dropna())


@pytest.mark.parametrize("children", ["some", "none"])
def test_child_rows_sit_beside_their_runs_as_a_merge_in_store_order_puts_them(children):
    """`_beside_their_runs` gives what runs.merge(child, on="run_id") sorted by the runs' order, then idx, gives:
    runs without rows and rows of runs not read drop out, a run's rows come by idx whatever order SQL sent."""
    runs = pd.DataFrame({"run_id": ["r3", "r1", "r2", "r9"], "arm": ["a", "b", "a", "b"], "seq": [10, 11, 12, 13]})
    child = pd.DataFrame({"run_id": ["r2", "r1", "r2", "rX", "r3", "r1"], "idx": [1, 2, 0, 0, 0, 1],
                          "value": [2.1, 1.2, 2.0, 9.9, 3.0, 1.1], "unit": ["J", "J", "J", "J", "s", "J"]})
    if children == "none":
        child = child.iloc[0:0]
    want = (runs.assign(_row=range(len(runs))).merge(child, on="run_id", how="inner")
            .sort_values(["_row", "idx"], kind="stable").drop(columns=["_row", "idx"]).reset_index(drop=True))
    got = store_module._beside_their_runs(runs, child)
    pd.testing.assert_frame_equal(got, want, check_exact=True, check_index_type=False)
    if children == "some":
        assert list(zip(got["run_id"], got["value"])) == [("r3", 3.0), ("r1", 1.1), ("r1", 1.2), ("r2", 2.0),
                                                          ("r2", 2.1)]
    with pytest.raises(ValueError, match="share names"):
        store_module._beside_their_runs(runs, child.assign(arm="x"))

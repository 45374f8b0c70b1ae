"""Store.record_pages walks a store a page at a time (export --format jsonl and mlflow): every record
once, in the order stored, pages no larger than asked, on both backends."""

from __future__ import annotations

from synthetic_store import eitp_records

from eitp_bench.store import Store
from store_backends import pg_url, store_url  # noqa: F401  (fixtures)


def test_pages_hold_every_record_once_in_store_order(store_url):  # noqa: F811
    records = eitp_records(n_reps=2, failed=1)
    with Store.open(store_url) as st:
        st.add_many(records[:7])
        st.add_many(records[7:])  # a second write: store order is not run_id order
        pages = list(st.record_pages(3))
        assert [len(p) for p in pages[:-1]] == [3] * (len(pages) - 1) and 1 <= len(pages[-1]) <= 3
        assert [r for p in pages for r in p] == st.records() == records

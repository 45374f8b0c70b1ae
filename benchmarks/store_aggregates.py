"""Time of the whole-store questions every `report` asks (store/queries.py), and a digest of their answers.

    python benchmarks/store_aggregates.py STORE [STORE …]        # a SQLite path or a PostgreSQL URL
    python benchmarks/store_aggregates.py /tmp/scale/scale-1000000-10x4.sqlite --repeat 5
    python benchmarks/store_aggregates.py URL --to-v9     # first take a v11 store back to v9, then
    PYTHONPATH=OLD python benchmarks/store_aggregates.py URL    # time an older eitp-bench (a v9 store) on it,
    python benchmarks/store_aggregates.py URL             # and this one (it upgrades the store to v11 first)

For each store: group_rows (the comparability groups, whole store and one suite), run_count (whole store
and one suite), not_finite_counts and suites, each run --repeat times in one process; the median and the
slowest time are printed. The first call of a fresh process reads from a cold page cache, so the slowest
time shows what a `report` right after the store was written may pay. The digest (sha256 of the answers'
repr, rows in any order) lets two versions of eitp-bench be compared on the same store: equal digests,
equal answers.

The store is opened for writing, as `report` would open it: a store of an older schema is upgraded
first (timed separately). Copy a shared store before pointing this at it.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time


def _timed(fn, repeat: int):
    times, answer = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - t)
    return answer, statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("stores", nargs="+")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--to-v9", action="store_true", help="take each v11 store back to v9 (drop what "
                        "migrations v10 and v11 added) and stop: for timing an older eitp-bench on the same store")
    parser.add_argument("--vacuum", action="store_true", help="VACUUM ANALYZE a PostgreSQL store first (what "
                        "autovacuum does after a while): index-only scans need its visibility map")
    args = parser.parse_args()
    if args.to_v9:
        for url in args.stores:
            _to_v9(url)
        return

    from eitp_bench.store import Store
    from eitp_bench.store import queries

    for url in args.stores:
        t = time.perf_counter()
        store = Store.open(url)
        opened = time.perf_counter() - t
        if args.vacuum and store.dialect == "postgresql":
            _vacuum(url)
        suite = queries.suites(store)[0]
        questions = {
            "group_rows": lambda: queries.group_rows(store),
            f"group_rows(suite={suite})": lambda: queries.group_rows(store, suite=suite),
            "run_count": lambda: queries.run_count(store),
            f"run_count(suite={suite})": lambda: queries.run_count(store, suite=suite),
            "not_finite_counts": lambda: queries.not_finite_counts(store),
            f"not_finite_counts(suite={suite})": lambda: queries.not_finite_counts(store, suite=suite),
            "suites": lambda: queries.suites(store),
        }
        print(f"{url}: opened (and upgraded if older) in {opened:.1f} s")
        print(f"  {'question':<36} {'median s':>9} {'slowest s':>9}  rows  digest")
        total, digest = 0.0, hashlib.sha256()
        for name, fn in questions.items():
            answer, median, slowest = _timed(fn, args.repeat)
            total += median
            # rows in any order (a PostgreSQL GROUP BY returns them unsorted; the analysis sorts them)
            text = repr(sorted(map(repr, answer)) if isinstance(answer, list) else answer).encode()
            digest.update(text)
            rows = len(answer) if isinstance(answer, list) else answer
            print(f"  {name:<36} {median:>9.3f} {slowest:>9.3f} {rows:>5}  {hashlib.sha256(text).hexdigest()[:12]}")
        print(f"  {'all (sum of medians)':<36} {total:>9.3f} {'':>9} {'':>5}  {digest.hexdigest()[:12]}")
        store.close()


def _to_v9(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url if "://" in url else f"sqlite:///{url}")
    with engine.begin() as conn:
        for statement in ("ALTER TABLE runs DROP COLUMN timeline_devices",
                          "CREATE INDEX timeline_by_run_device ON timeline(run_id, device)", "DROP INDEX runs_grouped", "DROP INDEX metrics_not_finite",
                          "ALTER TABLE runs DROP COLUMN has_finite_metric",
                          "UPDATE meta SET value = '9' WHERE key = 'schema_version'"):
            conn.execute(text(statement))
    engine.dispose()
    print(f"{url}: back at store v9")


def _vacuum(url: str) -> None:
    import psycopg

    t = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(f"{url}: VACUUM ANALYZE in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()

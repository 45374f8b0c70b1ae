"""Time of the whole-store questions every `report` asks (store/queries.py), and a digest of their answers.

    python benchmarks/store_aggregates.py STORE [STORE …]        # a SQLite path or a PostgreSQL URL
    python benchmarks/store_aggregates.py /tmp/scale/scale-1000000-10x4.sqlite --repeat 5

For each store: group_rows (the comparability groups, whole store and one suite), run_count (whole store
and one suite), not_finite_counts and suites, each run --repeat times in one process; the median and the
slowest time are printed. The first call of a fresh process reads from a cold page cache, so the slowest
time shows what a `report` right after the store was written may pay. The digest (sha256 of the answers'
repr) lets two versions of eitp-bench be compared on the same store: equal digests, equal answers.

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
    args = parser.parse_args()

    from eitp_bench.store import Store
    from eitp_bench.store import queries

    for url in args.stores:
        t = time.perf_counter()
        store = Store.open(url)
        opened = time.perf_counter() - t
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
            text = repr(answer).encode()
            digest.update(text)
            rows = len(answer) if isinstance(answer, list) else answer
            print(f"  {name:<36} {median:>9.3f} {slowest:>9.3f} {rows:>5}  {hashlib.sha256(text).hexdigest()[:12]}")
        print(f"  {'all (sum of medians)':<36} {total:>9.3f} {'':>9} {'':>5}  {digest.hexdigest()[:12]}")
        store.close()


if __name__ == "__main__":
    main()

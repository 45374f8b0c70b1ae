"""How long does `eitp-bench history` take on a larger store, and what does an incremental rebuild save?

    python benchmarks/history_site.py [--nights 120] [--profiles 4] [--arms 4]

Builds nightly smoke-like records (tests/nightly_store.py: train, lm and generate each night, six
metrics) for every (arm, hardware profile), with a 10 % slowdown of one arm on one profile from the
last third on, then times: the first build of the site, a rebuild with nothing new, and a rebuild
after one more night of one arm on one profile. Analysis (regress's change points, one metric name at a
time: analysis/history.store_history) runs every time; only the rendering of unchanged series pages and
run pages is skipped. The records are stored in a temporary SQLite store first (not timed). For a fleet-
sized store (100 k, 1 M records) see benchmarks/history_scale.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from nightly_store import nightly_records  # noqa: E402

from eitp_bench.analysis.history import store_history  # noqa: E402
from eitp_bench.report.history_site import write_site  # noqa: E402
from eitp_bench.store import Store  # noqa: E402


def build(path, out):
    store = Store.open(str(path), read_only=True)
    t0 = time.perf_counter()
    found = store_history(store)
    t1 = time.perf_counter()
    result = write_site(found, store, out)
    store.close()
    return t1 - t0, time.perf_counter() - t1, result, found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nights", type=int, default=120)
    parser.add_argument("--profiles", type=int, default=4)
    parser.add_argument("--arms", type=int, default=4)
    args = parser.parse_args()
    records = []
    for p in range(args.profiles):
        for a in range(args.arms):
            slow = 2 * args.nights // 3 if (p, a) == (0, 0) else None
            records += nightly_records(args.nights, slow_from=slow, seed=100 * p + a, profile=f"hp-{p}", arm=f"arm{a}")
    extra = nightly_records(1, slow_from=None, seed=999, profile="hp-1", arm="arm1", first_night=args.nights)
    out = Path(tempfile.mkdtemp(prefix="history-bench-")) / "site"
    path = out.parent / "nightly.sqlite"
    try:
        with Store.open(str(path)) as store:
            store.add_many(records)
        rows = [("first build", *build(path, out)), ("rebuild, nothing new", *build(path, out))]
        with Store.open(str(path)) as store:
            store.add_many(extra)
        rows.append(("rebuild, one new night on one profile", *build(path, out)))
        found = rows[0][4]
        print(f"{len(records)} runs, {sum(len(r.metrics) for r in records)} metric rows, {len(found.summaries)} "
              f"series pages, {sum(len(p.labels) for p in found.summaries)} panels")
        regressions = [c for c, _ in found.confirmed_first() if c.kind == "regression"]
        print(f"confirmed regressions: {len(regressions)}; first: {regressions[0].series if regressions else 'none'}")
        for label, analysis_s, render_s, result, _ in rows:
            print(f"{label:<40} analysis {analysis_s:6.2f} s  site {render_s:6.2f} s  "
                  f"pages written {result.written:3d} skipped {result.skipped:3d}  run pages {result.run_pages}")
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        print(f"site size {size / 1e6:.1f} MB in {sum(1 for _ in out.rglob('*.html'))} HTML files")
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


if __name__ == "__main__":
    main()

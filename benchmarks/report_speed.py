"""How long does `build_report` take over a store of ~10 000 runs? (target ≤ 3 s)

    python benchmarks/report_speed.py [--runs 10000] [--store]

Builds synthetic EIT-P records (11 runs per repetition), turns them into the store's
frames, and times report generation from frames. With --store, also writes them into
a temporary SQLite Store and times the whole path (store → frames → HTML).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synthetic_store import eitp_records, frames_from_records  # noqa: E402

from eitp_bench.report import build_report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--suites", type=int, default=1,
                        help="split the runs over this many suites (one verdict table, 7 bootstraps, each)")
    parser.add_argument("--store", action="store_true", help="also time through a real Store")
    args = parser.parse_args()
    reps = max(1, args.runs // 11 // args.suites)  # 11 runs per repetition
    # each suite its own configuration (hash), as in a real store: judged apart
    records = [r.model_copy(update={"suite_config_hash": f"cfg-{s:03d}"}) for s in range(args.suites)
               for r in eitp_records(n_reps=reps, seed=s, suite=f"nightly-{s:03d}", failed=1, started0=10_000 * s)]
    frames = frames_from_records(records)
    print(f"suites={args.suites} repetitions per arm={reps} runs={len(frames['runs'])} metric rows={len(frames['metrics'])} energy rows={len(frames['energy'])}")
    build_report(frames_from_records(records[:200]), n_resamples=100)  # warm imports (matplotlib, scipy)
    t, cpu = time.perf_counter(), time.process_time()
    html = build_report(frames)
    print(f"build_report from frames: {time.perf_counter() - t:.2f} s wall, {time.process_time() - cpu:.2f} s CPU"
          f" (load average {os.getloadavg()[0]:.1f}), {len(html) / 1e6:.2f} MB of HTML")
    if args.store:
        from eitp_bench.store import Store

        with tempfile.TemporaryDirectory() as tmp:
            store = Store.open(str(Path(tmp) / "results.sqlite"))
            store.add_many(records)
            t = time.perf_counter()
            html = build_report(store)
            print(f"build_report from a Store: {time.perf_counter() - t:.2f} s")


if __name__ == "__main__":
    main()

"""How fast the results store writes and reads: per-run add(), bulk add_many(), frames, records().

    python benchmarks/store_write.py --runs 10000
    python benchmarks/store_write.py --runs 10000 --store postgresql://…/empty_db   # a fleet store

Each run carries 6 metrics, 4 energy entries and (optionally) a timeline, like a real repetition.
The reports need all four frames of a 10 000-run store in <= 3 s together.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from eitp_bench.flags import flag
from eitp_bench.records import EnergyEntry, Metric, Provenance, RunRecord, TimelinePoint
from eitp_bench.store import Store

SHORT = flag("short_window", "window shorter than the counter update period (~1 ms): 0 or 1 counter steps")


def synthetic_run(i: int, timeline_points: int) -> RunRecord:
    return RunRecord(
        suite="bench", suite_config_hash="h", arm=("baseline", "eitp-paper")[i % 2], task="lm", size="tiny",
        seed=i, repetition=i // 2, device="cuda:0", config={"steps": 100, "lr": 3e-4},
        provenance=Provenance(eitp_bench_version="0.1.0", python="3.11", platform="linux", hardware_profile_id="abc"),
        metrics=[Metric(name=n, value=float(i + k), unit="u") for k, n in
                 enumerate(["tokens_per_s", "step_s", "val_ppl", "model_bytes", "retrieval_acc@512", "loss"])],
        energy=[EnergyEntry(window=w, device=d, domain=dom, joules=10.0 + i, method="counter", meter=m,
                            duration_s=1.0, samples=100, flags=[SHORT] if i % 7 == 0 else [])
                for w in ("train", "generate") for d, dom, m in (("gpu:0", "gpu", "nvml"), ("cpu:0", "package", "rapl"))],
        timeline=[TimelinePoint(window="train", device="gpu:0", domain="gpu", t=k * 0.1, watts=300.0)
                  for k in range(timeline_points)],
    )  # fmt: skip


def timed(label: str, fn):
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    print(f"{label:<42s} {dt:8.3f} s")
    return result, dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--single", type=int, default=1000, help="runs written one add() (one transaction) each")
    ap.add_argument("--timeline", type=int, default=10, help="timeline points per run")
    ap.add_argument("--store", default=None,
                    help="an empty store to write into, e.g. postgresql://user:pw@127.0.0.1:5432/bench "
                         "(default: a new SQLite file in a temporary folder)")
    args = ap.parse_args()
    import pandas  # noqa: F401  (imported up front so its import time is not counted in a frame)

    records = [synthetic_run(i, args.timeline) for i in range(args.runs)]
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "bench.sqlite"
        with Store.open(path) as store:
            if store.count():
                raise SystemExit(f"{store.path} already holds runs: pass an empty store")
            single = records[: args.single]
            _, dt = timed(f"add() x {len(single)} (one txn each)", lambda: [store.add(r) for r in single])
            print(f"{'':<42s} {dt / max(len(single), 1) * 1e3:8.3f} ms per run")
            timed(f"add_many() x {args.runs - len(single)}", lambda: store.add_many(records[args.single :]))
        if isinstance(path, Path):
            print(f"store size: {path.stat().st_size / 1e6:.1f} MB for {args.runs} runs")
        with Store.open(path) as store:
            total = 0.0
            for name in ("runs_frame", "metrics_frame", "energy_frame", "timeline_frame"):
                df, dt = timed(f"{name}()", getattr(store, name))
                print(f"{'':<42s} {len(df):8d} rows")
                total += dt
            print(f"{'all four frames':<42s} {total:8.3f} s  (budget 3 s)")
            timed("records() (full RunRecords)", store.records)


if __name__ == "__main__":
    main()

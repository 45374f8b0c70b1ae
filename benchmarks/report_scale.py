"""Wall time and peak memory of `report`, `report --json`, `compare` and `regress` as a store grows.

    python benchmarks/report_scale.py                    # 10 k and 100 k records
    python benchmarks/report_scale.py --sizes 10000      # one size
    python benchmarks/report_scale.py --million          # adds 1 M records (long: builds a ~1 GB store)
    python benchmarks/report_scale.py --keep /tmp/scale  # keep (and reuse) the stores: before/after runs

A store is a fleet's nightlies: `--configs` configurations × `--profiles` hardware profiles, each
storing one repetition of the EIT-P suite (11 records: baseline and eitp-paper train/lm/retrieval/
generate/compress, eitp-compressed compress) per night, the generate runs with a 50-point power
timeline; nights are added until the store holds the wanted number of records.

Each command runs in its own child process (`python -m eitp_bench.cli …`): its wall time and its peak
resident memory (ru_maxrss of that child) are printed. Figures depend on the machine and its load:
compare them within one run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from synthetic_store import eitp_records  # noqa: E402

# A child that runs one command and reports its peak RSS (KiB on Linux) on its last stderr line.
_MEASURE = ("import resource, subprocess, sys\n"
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
            "sys.stderr.write(r.stderr[-2000:] if r.returncode not in (0, 1) else '')\n"
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n")


def build_store(path: Path, n_records: int, configs: int, profiles: int) -> int:
    """Nights of every (configuration, profile) until n_records are stored; returns the records stored."""
    from eitp_bench.store import Store

    store = Store.open(str(path))
    stored, night = 0, 0
    while stored < n_records:
        batch = []
        for c in range(configs):
            for p in range(profiles):
                recs = eitp_records(n_reps=1, seed=night * 1000 + c * 10 + p, suite=f"nightly-{c:02d}",
                                    profile=f"hp-{p:02d}", failed=0, started0=night * 1440 + c * 20 + p * 2)
                batch.extend(r.model_copy(update={"suite_config_hash": f"cfg-{c:02d}"}) for r in recs)
        batch = batch[: n_records - stored]
        stored += store.add_many(batch)
        night += 1
    return stored


def measure(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak MiB, exit code) of one command in a fresh child."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _MEASURE, *argv], stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    last = r.stderr.strip().splitlines()[-1].split()
    if len(r.stderr.strip().splitlines()) > 1:
        print(r.stderr, file=sys.stderr)
    return wall, int(last[1]) / 1024, int(last[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also 1 000 000 records")
    parser.add_argument("--configs", type=int, default=10)
    parser.add_argument("--profiles", type=int, default=4)
    parser.add_argument("--keep", help="folder for the stores (reused when present); default a temporary one")
    parser.add_argument("--commands", nargs="*", default=["report", "report --json", "compare", "regress"])
    args = parser.parse_args()
    sizes = args.sizes + ([1_000_000] if args.million else [])
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="report_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "eitp_bench.cli"]
    print(f"{args.configs} configurations × {args.profiles} profiles; load average {os.getloadavg()[0]:.1f}")
    print(f"{'records':>9} {'command':<14} {'wall s':>8} {'peak MiB':>9} exit")
    for n in sizes:
        path = folder / f"scale-{n}-{args.configs}x{args.profiles}.sqlite"
        if not path.exists():
            t = time.perf_counter()
            build_store(path, n, args.configs, args.profiles)
            print(f"(built {path} in {time.perf_counter() - t:.0f} s, {path.stat().st_size / 2**20:.0f} MiB)")
        for command in args.commands:
            name, *flags = command.split()
            out = ["--out", str(folder / "report.html")] if command == "report" else []
            wall, peak, code = measure([*cli, name, "--store", str(path), *flags, *out])
            print(f"{n:>9} {command:<14} {wall:>8.1f} {peak:>9.0f} {code}", flush=True)


if __name__ == "__main__":
    main()

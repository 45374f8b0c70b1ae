"""Wall time, peak memory and pages written of `eitp-bench history` on a large store: the first build of
the site, a rebuild with nothing new, and the nightly rebuild after one more night is stored.

    python benchmarks/history_scale.py --keep /tmp/scale                  # 100 k records
    python benchmarks/history_scale.py --keep /tmp/scale --sizes 1000000  # 1 M (the store takes ~5 min to build)
    python benchmarks/history_scale.py --stores /tmp/scale --work /tmp/h  # ready-made stores, copied first
    python benchmarks/history_scale.py --pg postgresql://USER@HOST:PORT/postgres --sizes 1000000

The stores are benchmarks/report_scale.py's (a fleet of `--configs` × `--profiles` running the EIT-P suite
every night): `--keep` builds them there when missing (and reuses them), `--stores` only reads them: each
store is COPIED into `--work` before the night is added, so the original is never written. The night is
stored through Store.add_many, as a nightly job would. With `--pg URL` (a user who may CREATE DATABASE)
each store is a database built afresh on that server for this run (dropped first): nothing to copy. Each
`history` runs in its own child process (report_scale.measure: wall time, peak resident memory, stopped
past --max-mib / --max-s). Pages written
are the site's HTML files changed by that build; the site size is every file of the site. Figures depend on
the machine and its load: compare them within one run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report_scale import _pg_database, append_nights, build_store, measure  # noqa: E402


def site_files(site: Path) -> dict[str, int]:
    """Path → mtime_ns of every HTML page of the site."""
    return {str(p): p.stat().st_mtime_ns for p in site.rglob("*.html")}


def site_bytes(site: Path) -> int:
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file())


def build(cli: list[str], store: str, site: Path, label: str, n: int, args) -> None:
    before = site_files(site) if site.exists() else {}
    wall, peak, code = measure([*cli, "history", "--store", store, "--out", str(site)], args.max_mib, args.max_s)
    after = site_files(site) if site.exists() else {}
    changed = [p for p, t in after.items() if before.get(p) != t]
    series = sum(1 for p in changed if "/series/" in p)
    runs = sum(1 for p in changed if "/runs/" in p)
    print(f"{n:>9} {label:<22} {wall:>8.1f} {peak:>9.0f} {code:>4} {series:>7} {runs:>7} "
          f"{site_bytes(site) / 2**20:>9.0f} {len(after):>7}  {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--configs", type=int, default=10)
    parser.add_argument("--profiles", type=int, default=4)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--keep", help="folder of the stores: built there when missing, then reused")
    source.add_argument("--stores", help="folder of ready-made stores (report_scale.py --keep): only copied")
    source.add_argument("--pg", metavar="URL", help="a PostgreSQL server: each store a database built afresh there")
    parser.add_argument("--work", help="folder for the copied store and the site (default a temporary one)")
    parser.add_argument("--skip-unchanged", action="store_true", help="no rebuild with nothing new (saves time at 1 M)")
    parser.add_argument("--max-mib", type=int, default=4096)
    parser.add_argument("--max-s", type=float, default=1800)
    args = parser.parse_args()
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="history_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    stores = Path(args.stores or args.keep or work)
    cli = [sys.executable, "-m", "eitp_bench.cli"]
    print(f"{'PostgreSQL' if args.pg else 'SQLite'}; {args.configs} configurations × {args.profiles} profiles; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min); {os.cpu_count()} CPUs")
    print(f"{'records':>9} {'build':<22} {'wall s':>8} {'peak MiB':>9} exit {'series':>7} {'runs':>7} "
          f"{'site MiB':>9} {'pages':>7}  load")
    for n in args.sizes:
        name = f"scale-{n}-{args.configs}x{args.profiles}-fleet.sqlite"
        site = work / f"site-{n}"
        if args.pg:
            copy = _pg_database(args.pg, f"eitp_history_{n}_{args.configs}x{args.profiles}", fresh=True)
            t = time.perf_counter()
            build_store(copy, n, args.configs, args.profiles)
            print(f"(built {name.removesuffix('.sqlite')} on PostgreSQL in {time.perf_counter() - t:.0f} s)", flush=True)
        else:
            copy = str(work / f"history-{name}")
            original = stores / name
            if not original.exists():
                if args.stores:
                    raise SystemExit(f"no {original}: build it with benchmarks/report_scale.py --keep {stores}")
                t = time.perf_counter()
                build_store(str(original), n, args.configs, args.profiles)
                print(f"(built {name} in {time.perf_counter() - t:.0f} s)", flush=True)
            shutil.copyfile(original, copy)
        shutil.rmtree(site, ignore_errors=True)
        build(cli, copy, site, "first build", n, args)
        if not args.skip_unchanged:
            build(cli, copy, site, "rebuild, nothing new", n, args)
        t = time.perf_counter()
        added = append_nights(copy, 1, args.configs, args.profiles)
        print(f"(stored one more night: {added} records in {time.perf_counter() - t:.1f} s)", flush=True)
        build(cli, copy, site, "nightly rebuild", n, args)
    print("(series / runs: series pages and run pages written by that build; pages: HTML files of the site; "
          "load: 1-minute load average after the build)")


if __name__ == "__main__":
    main()

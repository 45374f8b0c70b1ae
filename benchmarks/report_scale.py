"""Wall time and peak memory of `report`, `report --json`, `compare`, `regress`, `export --format
openmetrics` and `report --bundle` as a store grows.

    python benchmarks/report_scale.py                    # 10 k and 100 k records
    python benchmarks/report_scale.py --sizes 10000      # one size
    python benchmarks/report_scale.py --million          # adds 1 M records (long: builds a 3 GB store in ~5 min)
    python benchmarks/report_scale.py --keep /tmp/scale  # keep (and reuse) the stores: before/after runs

A store is a fleet's nightlies: `--configs` configurations × `--profiles` hardware profiles, each
storing one repetition of the EIT-P suite (11 records: baseline and eitp-paper train/lm/retrieval/
generate/compress, eitp-compressed compress) per night, the generate runs with a 50-point power
timeline; nights are added until the store holds the wanted number of records.

Each command runs in its own child process (`python -m eitp_bench.cli …`): its wall time and its peak
resident memory (ru_maxrss of that child) are printed, with the load average after it. A command past
--max-mib of resident memory or --max-s seconds is stopped and shown as killed-memory / killed-time.
Figures depend on the machine and its load: compare them within one run.

The stores are written straight into the store's tables (the rows `Store.add_many` would write, by the
driver's executemany on SQLite and COPY on PostgreSQL), so that a 1 M-record store builds in minutes;
a sample of the records is read back through the Store and compared with what was generated.

    python benchmarks/report_scale.py --pg postgresql://user:pw@127.0.0.1:5432/postgres
        # the same on PostgreSQL: one database per size (eitp_scale_<records>_<configs>x<profiles>),
        # created on that server and kept (reused by the next run); drop them with DROP DATABASE
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

# A child that runs one command and reports its peak RSS (KiB on Linux) on its last stderr line. It stops
# the command (and says so: exit "killed") past --max-mib of resident memory or --max-s seconds, so a
# command that would not fit cannot take a shared machine down.
_MEASURE = ("import resource, subprocess, sys, time\n"
            "limit_kib, limit_s = int(sys.argv[1]) * 1024, float(sys.argv[2])\n"
            "p = subprocess.Popen(sys.argv[3:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
            "t0, killed = time.monotonic(), ''\n"
            "while p.poll() is None:\n"
            "    try:\n"
            "        rss = int(next(l for l in open(f'/proc/{p.pid}/status') if l.startswith('VmRSS')).split()[1])\n"
            "    except (OSError, StopIteration):\n"
            "        rss = 0\n"
            "    if rss > limit_kib or time.monotonic() - t0 > limit_s:\n"
            "        killed = 'memory' if rss > limit_kib else 'time'\n"
            "        p.kill()\n"
            "    time.sleep(0.05)\n"
            "err = p.stderr.read()\n"
            "sys.stderr.write(err[-2000:] if p.returncode not in (0, 1) and not killed else '')\n"
            "code = f'killed-{killed}' if killed else p.returncode\n"
            "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n")


def night_records(night: int, configs: int, profiles: int) -> list:
    """One night's records: every configuration × profile runs the suite once."""
    batch = []
    for c in range(configs):
        for p in range(profiles):
            recs = eitp_records(n_reps=1, seed=night * 1000 + c * 10 + p, suite=f"nightly-{c:02d}",
                                profile=f"hp-{p:02d}", failed=0, started0=night * 1440 + c * 20 + p * 2)
            batch.extend(r.model_copy(update={"suite_config_hash": f"cfg-{c:02d}",
                                              "provenance": fleet_provenance(night, c, p, i)})
                         for i, r in enumerate(recs))
    return batch


def fleet_provenance(night: int, config: int, profile: int, i: int):
    """A run's provenance as the worker records it on a GPU box (runner/worker.py): about 2 KB, most of it
    the same for the runs of one machine and commit (meters, boards and their state, inputs, the cost
    estimate), some of it measured per run (setup time, cool-down, idle watts), so no two runs' texts are
    the same. The nightly job builds the newest commit: a new one every 7 nights."""
    from eitp_bench.records import Provenance

    jitter = ((night * 7919 + config * 131 + profile * 17 + i) % 1000) / 1000  # per run, deterministic
    uuids = [f"GPU-{profile:02d}{k}-5ab3-4e1c-9f0d-{profile:04d}{k:08d}" for k in range(2)]
    hardware = {
        "meters": ["nvml", "rapl"], "alias": f"fleet node {profile:02d}",
        "meter_info": {"nvml": {"gpus": [{"device": f"gpu:{k}", "name": "NVIDIA H100 80GB HBM3", "uuid": u,
                                          "architecture": "Hopper", "power_limit_w": 700.0,
                                          "counter_update_period_s": 0.1} for k, u in enumerate(uuids)]},
                       "rapl": {"packages": 2, "domains": ["package", "dram"], "max_energy_range_uj": 262143328850}},
        "meters_unavailable": ["ipmi: ipmitool is not on PATH (node power over IPMI DCMI)",
                               "redfish: EITP_BENCH_REDFISH_URL is not set (node power over Redfish is opt-in)"],
        "gpu_profiles": ["NVIDIA H100 80GB HBM3"], "cpu_profile": "AMD EPYC 9454",
        "isolation": {"gpu_processes": [], "cpu_busy_processes": [], "flags": [], "notes": []},
        "cooldown_before_s": round(20.0 + 10 * jitter, 3),
        "state": {"driver_version": "550.54.15",
                  "gpus": [{"uuid": u, "power_limit_w": 700.0, "clocks_locked": False, "power_profile": None,
                            "persistence_mode": 1, "sm_clock_mhz": 1980, "mem_clock_mhz": 2619} for u in uuids],
                  "cpu": {"driver": "amd-pstate-epp", "governors": ["performance"], "min_mhz": 1500.0,
                          "max_mhz": 3800.0, "hw_min_mhz": 400.0, "hw_max_mhz": 3800.0, "boost": True,
                          "boost_source": "cpufreq/boost", "smt": "on"}},
        "idle_baseline": {"gpu:0 gpu": round(68.0 + jitter, 3), "gpu:1 gpu": round(70.0 + jitter, 3),
                          "cpu:0 package": round(95.0 + 2 * jitter, 3), "seconds": 10.0},
        "cost_estimate": {"total_s": 1400.0 + config, "low_s": 900.0, "high_s": 2100.0, "source": "profile",
                          "phases": {"start_idle": 10.0, "train": 1200.0, "retrieval": 60.0, "generate": 90.0,
                                     "compress": 40.0, "theory": 0.0}, "repetitions": 1},
        "inputs": {"model": {"repo": "gpt2", "revision": "607a30d783dfa663caf39e06633721c8d4cfcd7e"},
                   "data": {"repo": "Salesforce/wikitext", "revision": "b08601e04326c79dfdd32d625aee71d232d685c3"}},
        "setup_s": round(2.0 + jitter, 4),
        "precision": {"setting": "bf16", "autocast": "bfloat16", "device": "cuda", "tf32": True,
                      "applies_to": ["train", "eval", "generate", "distill"]},
    }
    return Provenance(eitp_bench_version="0.1.0", git_commit=f"{night // 7:07x}{'c0ffee' * 5}"[:40],
                      python="3.11.7", torch="2.13.0+cu124", transformers="5.25.0", cuda="12.4",
                      driver="550.54.15", platform="Linux-6.8.0-x86_64-with-glibc2.39",
                      hardware_profile_id=f"hp-{profile:02d}", hardware=hardware)


def nights_in(n_records: int, configs: int, profiles: int) -> int:
    """How many nights (the last maybe partial) nightly_records writes for n_records."""
    per_night = len(night_records(0, configs, profiles))
    return -(-n_records // per_night)


def append_nights(url: str, nights: int, configs: int, profiles: int) -> int:
    """Store `nights` more nights after those of a store built by build_store (through Store.add_many,
    as a nightly job would); returns how many records were added."""
    from eitp_bench.store import Store

    with Store.open(url) as store:
        first = nights_in(store.count(), configs, profiles)
        added = 0
        for night in range(first, first + nights):
            batch = night_records(night, configs, profiles)
            store.add_many(batch)
            added += len(batch)
    return added


def nightly_records(n_records: int, configs: int, profiles: int):
    """Batches of one night's records (every configuration × profile) until n_records are generated."""
    made, night = 0, 0
    while made < n_records:
        batch = night_records(night, configs, profiles)
        batch = batch[: n_records - made]
        made += len(batch)
        night += 1
        yield batch


def build_store(url: str, n_records: int, configs: int, profiles: int) -> int:
    """Write the nightly records into a new store at `url` (the rows Store.add_many writes); returns how many."""
    from eitp_bench.records import utc_now
    from eitp_bench.store import Store
    from eitp_bench.store.hardware_values import stored_provenances
    from eitp_bench.store.layout import CHILD_TABLES, RUN_SQL_COLUMNS, RUN_STORAGE_COLUMNS, run_row

    run_columns = [*RUN_SQL_COLUMNS, *(c for c in RUN_STORAGE_COLUMNS if c != "seq")]
    with Store.open(url) as store:
        if store.count():
            raise SystemExit(f"{url} already holds runs: pass an empty store")
        raw = store._conn.connection.driver_connection
        postgres = store.dialect == "postgresql"
        seq, stored_at, sample = 0, utc_now(), []
        pending = {"runs": [], **{name: [] for name in CHILD_TABLES}}
        pending_records: list = []
        known: dict[str, int] = {}  # the hardware values stored so far (digest → id)

        def flush():
            with store._tx(write=True) as conn:  # one transaction per flush, under the store's write lock
                texts = [r.provenance.model_dump_json() for r, _ in pending_records]
                for (r, seq), provenance in zip(pending_records, stored_provenances(conn, texts, known)):
                    row = run_row(r, stored_at, provenance)
                    pending["runs"].append((*(row[c] for c in run_columns), *(() if postgres else (seq,))))
                pending_records.clear()
                for name, rows in pending.items():
                    columns = run_columns + ([] if postgres else ["seq"]) if name == "runs" else \
                        ["run_id", "idx", *CHILD_TABLES[name].columns]
                    _insert(raw, name, columns, rows, postgres)
                    rows.clear()

        for batch in nightly_records(n_records, configs, profiles):
            sample = sample or batch[:11]
            for r in batch:
                seq += 1
                pending_records.append((r, seq))
                for name, table in CHILD_TABLES.items():
                    values = table._values
                    pending[name].extend((r.run_id, i, *values(item)) for i, item in enumerate(getattr(r, name)))
            if len(pending_records) >= 20_000:
                flush()
        flush()
        # what was written directly reads back as the records generated (the Store's own reader)
        if store.records(run_ids=[r.run_id for r in sample]) != sample:
            raise SystemExit("the store built does not read back as the records written")
        if postgres:  # a long-lived store has been vacuumed, a fresh bulk load not: index-only scans then read
            # the tables (a compare straight after a 100 000-record build took 19.4 s once, 2.2 s after this)
            store._vacuum(["runs", *CHILD_TABLES])
        return store.count()


def _insert(raw, table: str, columns: list[str], rows: list[tuple], postgres: bool) -> None:
    quoted = ", ".join(f'"{c}"' for c in columns)  # `window` is a reserved word in PostgreSQL
    if postgres:
        with raw.cursor() as cur, cur.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        raw.executemany(f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(columns))})", rows)


def measure(argv: list[str], max_mib: int, max_s: float) -> tuple[float, float, str]:
    """(wall seconds, peak MiB, exit code or 'killed-memory'/'killed-time') of one command in a fresh child."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(max_mib), str(max_s), *argv], stderr=subprocess.PIPE,
                       text=True)
    wall = time.perf_counter() - t
    lines = r.stderr.strip().splitlines()
    if len(lines) > 1:
        print(r.stderr, file=sys.stderr)
    code, kib = lines[-1].split()
    return wall, int(kib) / 1024, code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--million", action="store_true", help="also 1 000 000 records")
    parser.add_argument("--configs", type=int, default=10)
    parser.add_argument("--profiles", type=int, default=4)
    parser.add_argument("--keep", help="folder for the stores (reused when present); default a temporary one")
    parser.add_argument("--pg", metavar="URL", help="a PostgreSQL server (a user who may CREATE DATABASE): the "
                                                    "stores are databases there instead of SQLite files")
    parser.add_argument("--commands", nargs="*", default=["report", "report --json", "compare", "regress",
                                                          "export --format openmetrics", "report --bundle"])
    parser.add_argument("--max-mib", type=int, default=4096, help="stop a command past this resident memory")
    parser.add_argument("--max-s", type=float, default=300, help="stop a command past this many seconds")
    args = parser.parse_args()
    sizes = args.sizes + ([1_000_000] if args.million else [])
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="report_scale_"))
    folder.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "eitp_bench.cli"]
    where = "PostgreSQL" if args.pg else "SQLite"
    print(f"{where}; {args.configs} configurations × {args.profiles} profiles; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min); {os.cpu_count()} CPUs")
    print(f"{'records':>9} {'command':<27} {'wall s':>8} {'peak MiB':>9} exit  load")
    for n in sizes:
        name = f"scale-{n}-{args.configs}x{args.profiles}-fleet"  # -fleet: runs with a real run's provenance
        url = _pg_database(args.pg, name.replace("-", "_").replace("scale", "eitp_scale")) if args.pg \
            else str(folder / f"{name}.sqlite")
        from eitp_bench.store import Store

        # opened for writing: creates the store, or brings a kept one (--keep) up to the current store schema
        # (the commands below open it read-only, which never upgrades)
        with Store.open(url) as store:
            empty = store.count() == 0
        if empty:
            t = time.perf_counter()
            build_store(url, n, args.configs, args.profiles)
            size = "" if args.pg else f", {Path(url).stat().st_size / 2**20:.0f} MiB"
            print(f"(built {name} in {time.perf_counter() - t:.0f} s{size})", flush=True)
        for command in args.commands:
            name_, *flags = command.split()
            wall, peak, code = measure([*cli, name_, "--store", url, *_outputs(name_, flags, folder)], args.max_mib,
                                       args.max_s)
            print(f"{n:>9} {command:<27} {wall:>8.1f} {peak:>9.0f} {code:>4}  {os.getloadavg()[0]:.1f}", flush=True)
    print(f"(exit 1 of regress: it found confirmed regressions; killed-*: stopped past --max-mib {args.max_mib} "
          f"or --max-s {args.max_s:g}; load: 1-minute load average after the command)")


def _outputs(command: str, flags: list[str], folder: Path) -> list[str]:
    """The command's flags with the files it writes placed in `folder`: the HTML report, the bundle
    (`--bundle` alone names no file), the export's file."""
    flags = [*flags]
    if "--bundle" in flags:
        flags.insert(flags.index("--bundle") + 1, str(folder / "evidence.tar.gz"))
    if command == "report" and "--json" not in flags:
        flags += ["--out", str(folder / "report.html")]
    if command == "export":  # csv and parquet write a folder of tables, the others one file
        fmt = flags[flags.index("--format") + 1]
        flags += ["--out", str(folder / (f"export-{fmt}" if fmt in ("csv", "parquet") else f"export.{fmt}"))]
    return flags


def _pg_database(server: str, name: str, *, fresh: bool = False) -> str:
    """The URL of database `name` on the server, created when missing (dropped first when `fresh`)."""
    import psycopg

    base = server.rpartition("/")[0]
    with psycopg.connect(server, autocommit=True) as conn:
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{base}/{name}"


if __name__ == "__main__":
    main()

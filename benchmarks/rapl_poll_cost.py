"""What the RAPL poller costs at its period: the time of one poll (every zone read once) × polls per second.

The poll period is at most JUMP_RESOLUTION_J / Pmax and STALL_S / STALL_READS (energy/rapl/): 4 ms
at the 1000 W default. This times `RaplMeter.poll()` on a fake powercap tree of one package with
core, uncore and dram (files on the local disk, not sysfs: a real energy_uj read is an MSR read
through the kernel, typically a few µs more) and prints the share of one core the poller thread uses.

    python benchmarks/rapl_poll_cost.py [--polls 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_powercap import FakePowercap  # noqa: E402

from eitp_bench.energy.rapl import RaplMeter  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--polls", type=int, default=20000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakePowercap(Path(tmp))
        fake.add_package(0)
        meter = RaplMeter(fake.root, background=False)
        meter.start()
        t0 = time.process_time()
        for _ in range(args.polls):
            meter.poll()
        cpu = (time.process_time() - t0) / args.polls
    print(f"zones: {len(meter.zones)}, poll period: {meter.poll_interval * 1e3:.1f} ms")
    print(f"CPU time per poll: {cpu * 1e6:.1f} µs over {args.polls} polls")
    print(f"share of one core at that period: {cpu / meter.poll_interval * 100:.2f} %")


if __name__ == "__main__":
    main()

"""What reading the board's state at every mark costs: NvmlMeter.mark() with and without `read_state`.

Each mark with state reads 7 more NVML values per GPU (power limit, two clocks, temperature,
clock-event reasons, two violation counters). On a real GPU each NVML query takes microseconds to
about a millisecond. Here the fake NVML (tests/fake_nvml.py) measures only eitp-bench's own Python
overhead per mark. The ratio is the figure to read, and the absolute times depend on the machine.

    python benchmarks/hw_state_mark.py --gpus 8 --marks 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_nvml import FakeGpu, FakeNvml, ManualClock  # noqa: E402

from eitp_bench.energy.nvml import NvmlMeter  # noqa: E402


def per_mark_us(read_state: bool, gpus: int, marks: int) -> float:
    clock = ManualClock(0.0)
    nvml = FakeNvml(gpus=[FakeGpu(counter_period_s=1e9) for _ in range(gpus)], clock=clock)  # no integration cost
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock, torch_uuids=None, env={}, read_state=read_state)
    t0 = time.perf_counter()
    for _ in range(marks):
        clock.advance(0.001)
        meter.mark()
    return (time.perf_counter() - t0) / marks * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--marks", type=int, default=2000)
    args = ap.parse_args()
    per_mark_us(True, args.gpus, 50)  # warm-up
    off = per_mark_us(False, args.gpus, args.marks)
    on = per_mark_us(True, args.gpus, args.marks)
    print(f"{args.gpus} fake GPUs, {args.marks} marks: {off:.0f} µs/mark without state, {on:.0f} µs/mark with "
          f"state ({on / off:.2f}×); a window has 2 marks")


if __name__ == "__main__":
    main()

"""Overhead of EnergyMonitor on a CPU-bound torch workload.

Runs the same workload with and without a monitor, interleaved A B A B in one
process, and prints the ratio of medians. The monitor carries a RAPL poller on a
(static) fake powercap tree and an NVML sampler on the fake NVML, both at 100 ms,
so its threads do real work while the workload runs: on a machine without sensors
the monitor would only have the (thread-less) estimate meter.

    python benchmarks/monitor_overhead.py [--reps 10] [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_nvml import FakeGpu, FakeNvml  # noqa: E402
from fake_powercap import FakePowercap  # noqa: E402

from eitp_bench.energy.monitor import EnergyMonitor  # noqa: E402
from eitp_bench.energy.nvml import NvmlMeter  # noqa: E402
from eitp_bench.energy.rapl import RaplMeter  # noqa: E402


def workload(iters: int) -> float:
    a = torch.randn(256, 256)
    b = torch.randn(256, 256)
    t0 = time.perf_counter()
    for _ in range(iters):
        a = torch.tanh(a @ b) + 0.01
    return time.perf_counter() - t0


def calibrate(seconds: float) -> int:
    iters = 50
    while workload(iters) < seconds / 4:
        iters *= 2
    return int(iters * seconds / workload(iters))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--interval", type=float, default=0.1)
    args = ap.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        fake = FakePowercap(Path(tmp))
        fake.add_package(0)
        rapl = RaplMeter(root=fake.root, poll_interval=args.interval)
        nvml = NvmlMeter(nvml=FakeNvml(gpus=[FakeGpu(name="NVIDIA H100 80GB HBM3")]), interval=args.interval)
        monitor = EnergyMonitor([rapl, nvml], interval=args.interval, cuda_sync=False)

        iters = calibrate(args.seconds)
        plain, monitored = [], []
        workload(iters)  # warm-up
        for _ in range(args.reps):
            plain.append(workload(iters))
            with monitor.window("work"):
                monitored.append(workload(iters))
        monitor.close()

    m_plain, m_mon = statistics.median(plain), statistics.median(monitored)
    print(f"workload: {iters} iterations of a 256x256 matmul+tanh, 1 torch thread, {args.reps} reps each, interleaved")
    print(f"monitor: RAPL poller every {rapl.poll_interval * 1000:.0f} ms (its jump/stall rules cap the period), "
          f"NVML sampler at {args.interval * 1000:.0f} ms (fake sensors)")
    print(f"median without monitor: {m_plain:.4f} s")
    print(f"median with monitor:    {m_mon:.4f} s")
    print(f"overhead ratio (with/without): {m_mon / m_plain:.4f}  ({(m_mon / m_plain - 1) * 100:+.2f} %)")


if __name__ == "__main__":
    main()

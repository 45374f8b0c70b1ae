"""Counter vs sampled power, per segment and per merged phase; and the counter's update period.

Simulated on the fake NVML (no GPU needed, no wall-clock figures): a 100-ms energy counter and an
instant power field that averages only 25 % of each 100-ms period (A100/H100), under a training
phase of `--segments` windows of 2.5 s (100-ms steps: 70 ms high, 30 ms low power) separated by
evaluations of random length, windows opened and merged as workloads/train.py does. Prints, over
`--seeds` runs: how far apart counter and samples are per segment and per merged phase, how many
segments a fixed 5 % check and the edge-error check flag, and whether the merged phase is flagged.
Then the counter's update period as inferred from jittered 100-ms reads by the old rule (smallest
interval between changes), by run means of the changes, and after the start-up calibration.

    python benchmarks/crosscheck_scale.py [--segments 20] [--seeds 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fake_nvml import FakeGpu, FakeNvml, ManualClock  # noqa: E402

from eitp_bench.energy.monitor import EnergyMonitor, merge_windows  # noqa: E402
from eitp_bench.energy.nvml import NvmlMeter, inferred_period  # noqa: E402


def phase(segments: int, seed: int, coverage: float):
    rng = random.Random(seed)
    schedule, t = [], 1.0
    for _ in range(segments):
        schedule.append((round(t, 3), round(t + 2.5, 3)))
        t += 2.5 + round(rng.uniform(0.4, 1.2), 3)

    def watts(x: float) -> float:
        for t0, t1 in schedule:
            if t0 <= x < t1:
                return 440.0 if (x - t0) % 0.1 < 0.07 - 1e-9 else 260.0
        return 150.0

    clock = ManualClock(0.0)
    nvml = FakeNvml(gpus=[FakeGpu(counter_period_s=0.1, power_coverage=coverage, watts=watts)], clock=clock)
    meter = NvmlMeter(nvml=nvml, interval=None, clock=clock, env={})
    monitor = EnergyMonitor([meter], cuda_sync=False)
    meter.start()
    segs = []
    for t0, t1 in schedule:
        while clock.t + 0.1 <= t0:
            clock.t = round(clock.t + 0.1 + rng.uniform(0, 0.004), 6)
            meter.sample_now()
        clock.t = t0
        w = monitor.begin("train")
        while clock.t + 0.1 <= t1:
            clock.t = round(clock.t + 0.1 + rng.uniform(0, 0.004), 6)
            meter.sample_now()
        clock.t = t1
        segs.append(w.end())
    monitor.close()
    return [s.energy[0] for s in segs], merge_windows(segs, "train")[0]


def periods(seed: int) -> tuple[float, float, float]:
    rng = random.Random(seed)
    reads = [0.1 * k + rng.uniform(-0.03, 0.03) for k in range(1, 600)]
    changes, last = [], None
    for t in reads:
        v = int(t / 0.1 + 1e-9)
        if last is not None and v != last:
            changes.append(t)
        last = v
    old = min(b - a for a, b in zip(changes, changes[1:]))
    clock = ManualClock(0.0)
    meter = NvmlMeter(nvml=FakeNvml(gpus=[FakeGpu(counter_period_s=0.1)], clock=clock), interval=None,
                      clock=clock, env={}, calibrate_s=1.0, sleep=clock.advance)
    meter.start()
    calibrated = meter.update_period_s(0)
    meter.stop()
    return old, inferred_period(changes[-65:]), calibrated


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--coverage", type=float, default=0.25)
    args = ap.parse_args()
    print(f"{args.segments} segments of 2.5 s, 100-ms counter, power field covering {args.coverage:.0%} of each period")
    print("seed  segment apart (min..max)  flagged@5%  flagged@edges  merged apart  merged tolerance  merged flagged")
    for seed in range(args.seeds):
        parts, merged = phase(args.segments, seed, args.coverage)
        apart = [(e.sampled_joules - e.joules) / e.joules for e in parts]
        at5 = sum(abs(a) > 0.05 for a in apart)
        at_edges = sum(any(f.code == "crosscheck_mismatch" for f in e.flags) for e in parts)
        m_apart = (merged.sampled_joules - merged.joules) / merged.joules
        flagged = any(f.code == "crosscheck_mismatch" for f in merged.flags)
        print(f"{seed:4d}  {100 * min(apart):+6.1f} % .. {100 * max(apart):+5.1f} %   {at5:6d}/{len(parts)}"
              f"  {at_edges:9d}/{len(parts)}  {100 * m_apart:+9.2f} %"
              f"  {100 * merged.crosscheck_tolerance_j / merged.joules:12.1f} %"
              f"  {str(flagged):>10s}")
    print("\ncounter update period, true 100 ms, jittered 100-ms reads (ms):")
    print("seed  old rule (min interval)  run means of changes  start-up calibration")
    rows = [periods(seed) for seed in range(args.seeds)]
    for seed, (old, runs, cal) in enumerate(rows):
        print(f"{seed:4d}  {1000 * old:20.1f}  {1000 * runs:20.1f}  {1000 * cal:20.1f}")
    print(f"median  {1000 * statistics.median(r[0] for r in rows):18.1f}  "
          f"{1000 * statistics.median(r[1] for r in rows):20.1f}  {1000 * statistics.median(r[2] for r in rows):20.1f}")


if __name__ == "__main__":
    main()

"""Does instrument qualification recover a sensor's update period, averaging window and delay?

Simulated sensors with known truth (tests/fake_sensor.py) follow a square-wave load on a manual
clock, so the run is exact and takes well under a second per case whatever the machine's load
(`--noise 0.02` adds reading noise of 2 % of the load step to the power sensors).
For each sensor kind, several seeds vary the update phase (and the load's edge jitter); we print the
true and recovered figures and the worst relative error over the seeds (target: period and
averaging window within 10 %). The delay is resolved to a fraction of one update period.

    python benchmarks/qualification.py [--seeds 5] [--noise 0.02] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fake_nvml import ManualClock  # noqa: E402
from fake_sensor import FakeLoad, SimulatedSensor  # noqa: E402

from eitp_bench.energy.qualify import qualify  # noqa: E402

# name, quantity, period, averaging, delay, half-period, cycles, poll
CASES = [
    ("RAPL energy_uj (1 ms counter)", "energy", 0.001, 0.0, 0.0, 0.25, 4, 0.00025),
    ("NVML energy counter, 20 ms", "energy", 0.02, 0.0, 0.005, 0.5, 4, 0.002),
    ("NVML energy counter, 100 ms, 20 ms late", "energy", 0.1, 0.0, 0.02, 1.0, 4, 0.005),
    ("NVML GetPowerUsage, Ampere+ (1 s mean, 100 ms updates)", "power", 0.1, 1.0, 0.05, 2.0, 3, 0.005),
    ("NVML instant power, 20 ms, 250 ms smoothing", "power", 0.02, 0.25, 0.01, 0.75, 4, 0.002),
    ("partial-period power (25 ms of every 100 ms)", "power", 0.1, 0.025, 0.0, 1.0, 4, 0.005),
]


def run_case(quantity, period, averaging, delay, half, cycles, poll, seed, noise=0.0):
    rng = random.Random(seed)
    clock = ManualClock(100.0 + rng.random())
    load = FakeLoad(clock, idle_w=50.0, step_w=150.0)
    sensor = SimulatedSensor(load, clock, quantity=quantity, period_s=period, averaging_s=averaging,
                             delay_s=delay, phase_s=rng.random() * period, noise_w=noise * 150.0, seed=seed)
    res = qualify([sensor.as_sensor()], load, half_period_s=half, cycles=cycles, poll_s=poll, clock=clock,
                  sleep=clock.advance, seed=seed)
    return res.sensors[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--noise", type=float, default=0.0,
                    help="power sensors' reading noise as a fraction of the load step (e.g. 0.02)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for name, quantity, period, averaging, delay, half, cycles, poll in CASES:
        true_w = max(averaging, period)  # a window shorter than one update is reported as the update
        got = [run_case(quantity, period, averaging, delay, half, cycles, poll, s, args.noise)
               for s in range(args.seeds)]
        err_p = max(abs(g.update_period_s / period - 1) for g in got)
        err_w = max(abs(g.averaging_window_s / true_w - 1) for g in got)
        err_d = max(abs(g.delay_s - delay) for g in got)
        rows.append({
            "sensor": name, "true_period_s": period, "true_averaging_s": averaging, "true_delay_s": delay,
            "period_s": sum(g.update_period_s for g in got) / len(got),
            "averaging_s": sum(g.averaging_window_s for g in got) / len(got),
            "delay_s": sum(g.delay_s for g in got) / len(got),
            "worst_period_error": err_p, "worst_averaging_error": err_w, "worst_delay_error_s": err_d,
            "note": got[0].note,
        })
    if args.json:
        print(json.dumps({"machine": platform.platform(), "python": platform.python_version(), "rows": rows}, indent=2))
        return
    print(f"machine: {platform.platform()}, python {platform.python_version()}, {args.seeds} seeds per sensor, "
          f"power noise {100 * args.noise:g} % of the step")
    print(f"{'sensor':58s} {'period true→got (worst)':>28s} {'averaging true→got (worst)':>30s} "
          f"{'delay true→got (worst abs)':>30s}")
    for r in rows:
        print(f"{r['sensor']:58s} "
              f"{r['true_period_s'] * 1e3:7.2f}→{r['period_s'] * 1e3:7.2f} ms ({100 * r['worst_period_error']:4.1f} %) "
              f"{r['true_averaging_s'] * 1e3:7.1f}→{r['averaging_s'] * 1e3:7.1f} ms ({100 * r['worst_averaging_error']:4.1f} %) "
              f"{r['true_delay_s'] * 1e3:6.1f}→{r['delay_s'] * 1e3:6.1f} ms ({r['worst_delay_error_s'] * 1e3:4.1f} ms)"
              + (f"  [{r['note']}]" if r["note"] else ""))


if __name__ == "__main__":
    main()

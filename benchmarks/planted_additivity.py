"""Is the planted work's measured cost its whole cost? The tiny model on CPU, a plain copy and a planted
copy (workloads/planted.py) in one process, alternating, for training steps and generate() calls.

    python benchmarks/planted_additivity.py [--fraction 10] [--pairs 5] [--rounds 9] [--probe]

Per round and task it prints the ratio seen (planted copy ÷ plain copy, one training step or one
generate() call each, after a lead-in, adjacent in time: median over the pairs) against the ratio each
way of measuring the planted cost implies:

- before: the planted products' own seconds (the wall clock around the hook), ratio 1 / (1 − share);
- after: the A/B in the planted copy itself (`train_step_ratio`, `generation_ratio`), the ratio the
  planted arm now records.

seen ÷ implied is 1.000 when a measurement is the whole cost, above 1 when the planted work also slows
the rest. `--probe` times pure Python right after a burst of planted products against right after a
busy-wait of the same length, in 0.1 ms slices: a slower stretch after the burst is the cost no timer
around the products can see (on the Xeon this was written on: the wide-vector clock drop).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from eitp_bench.workloads.generate import GenerationSetting, generate_once  # noqa: E402
from eitp_bench.workloads.models import build_model  # noqa: E402
from eitp_bench.workloads.objectives import make_objective  # noqa: E402
from eitp_bench.workloads.planted import PlantedWork, generation_ratio, train_step_ratio  # noqa: E402
from eitp_bench.workloads.train import OptimSettings, train  # noqa: E402

BATCH, BLOCK, VOCAB = 8, 32, 32


def batch(seed: int) -> tuple:
    ids = torch.randint(0, VOCAB, (BATCH, BLOCK), generator=torch.Generator().manual_seed(seed))
    return ids, ids


def train_unit(model, objective, settings) -> float:
    """Seconds of one training step after a lead-in step, through the suite's own `train` (as the A/B times it)."""
    result = train(model, objective, iter([batch(0), batch(0)]), steps=2, settings=settings, device="cpu",
                   evaluate=lambda m: float("nan"), eval_every=2, tokens_per_step=BATCH * BLOCK, steps_per_epoch=1.0)
    return result.step_times[1]


def generate_unit(model, prompts, setting) -> float:
    """Seconds of one generate() call after a lead-in call (as the A/B times it)."""
    generate_once(model, prompts, setting)
    t0 = time.perf_counter()
    generate_once(model, prompts, setting)
    return time.perf_counter() - t0


def seen_and_products(plain, planted, work: PlantedWork, unit, pairs: int) -> tuple[float, float]:
    """(planted copy ÷ plain copy, the ratio the products' own seconds imply), medians over `pairs` units
    of each copy, adjacent in time, the order alternating: the truth each measurement should match."""
    seen, implied = [], []
    for i in range(pairs):
        t = {}
        for m in ((plain, planted) if i % 2 == 0 else (planted, plain)):
            n0 = len(work.calls)
            t[m is planted] = unit(m)
            if m is planted:  # the calls of the timed unit: after the lead-in's
                calls = work.calls[n0:]
                timed = sum(d for _, d in calls[len(calls) // 2:])
        seen.append(t[True] / t[False])
        implied.append(1 / (1 - timed / t[True]))
    return statistics.median(seen), statistics.median(implied)


def probe(rows: int = 256, bursts: int = 32, slices: int = 60, trials: int = 150) -> None:
    """Pure-Python slices after a burst of (rows × 64)·(64 × 64) products vs after an equal busy-wait."""
    d = 64
    w, a = torch.full((d, d), 1.0 / d), torch.ones(rows, d)
    b = torch.empty_like(a)

    def burst() -> None:
        for _ in range(bursts):
            torch.mm(a, w, out=b)

    def spin(s: float) -> None:
        end = time.perf_counter() + s
        while time.perf_counter() < end:
            pass

    def one_slice() -> float:
        t0, s = time.perf_counter(), 0
        for i in range(4000):
            s += i
        return time.perf_counter() - t0

    burst_s = min(_timed(burst) for _ in range(5))
    after = {"burst": [[] for _ in range(slices)], "wait": [[] for _ in range(slices)]}
    for t in range(trials):
        for kind in (("burst", "wait") if t % 2 else ("wait", "burst")):
            spin(0.01)  # settle
            burst() if kind == "burst" else spin(burst_s)
            for i in range(slices):
                after[kind][i].append(one_slice())
    med = {k: [statistics.median(x) for x in v] for k, v in after.items()}
    ratios = [x / y for x, y in zip(med["burst"], med["wait"])]
    slow = [i for i, r in enumerate(ratios) if r > 1.01]
    print(f"probe: a {burst_s * 1e3:.2f} ms burst of products, then {slices} slices of "
          f"{med['wait'][-1] * 1e6:.0f} us of pure Python; slice time after the burst ÷ after a busy-wait:")
    print("  " + " ".join(f"{r:.3f}" for r in ratios))
    print(f"  slower by >1 % for {len(slow)} slices (~{sum(med['wait'][:len(slow)]) * 1e3:.1f} ms); "
          f"extra time over the {slices} slices: {(sum(med['burst']) - sum(med['wait'])) * 1e6:.0f} us")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fraction", type=float, default=10.0)
    ap.add_argument("--pairs", type=int, default=5, help="units of each copy per round, and the A/B's pairs")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--probe", action="store_true", help="also time pure Python after a burst of products")
    a = ap.parse_args()
    torch.set_num_threads(1)
    settings = OptimSettings(lr=1e-3)
    objective = make_objective("baseline", None)
    plain = build_model("tiny", vocab_size=VOCAB, n_positions=64, seed=0)
    planted = build_model("tiny", vocab_size=VOCAB, n_positions=64, seed=0)
    work = PlantedWork.attach(planted, a.fraction)
    prompts = torch.randint(0, VOCAB, (1, 8), generator=torch.Generator().manual_seed(0))
    setting = GenerationSetting("sample", 1, 32, 1.0, 1.0)
    units = {"train": lambda m: train_unit(m.train(), objective, settings),
             "generate": lambda m: generate_unit(m.eval(), prompts, setting)}
    for m in (plain, planted):  # warm both copies up
        for unit in units.values():
            unit(m)
    rows = {"train": [], "generate": []}
    for r in range(a.rounds):
        for task, unit in units.items():
            seen, before = seen_and_products(plain, planted, work, unit, a.pairs)
            if task == "train":
                ab = train_step_ratio(work, planted.train(), objective, batch(0), settings=settings, device="cpu",
                                      pairs=a.pairs)
            else:
                ab = generation_ratio(work, planted.eval(), prompts, setting, device="cpu", precision="fp32",
                                      pairs=a.pairs)
            rows[task].append((seen, before, ab))
            print(f"round {r} {task:8s}: seen {seen:.3f}; implied by the products' own seconds {before:.3f} "
                  f"(seen ÷ implied {seen / before:.3f}), by the A/B {ab:.3f} (seen ÷ implied {seen / ab:.3f})")
    print(f"\nmedian over {a.rounds} rounds, seen ÷ implied (1.000: the measurement is the whole cost):")
    for task, got in rows.items():
        before = statistics.median(s / b for s, b, _ in got)
        after = statistics.median(s / ab for s, _, ab in got)
        print(f"  {task:8s}: before (products' own seconds) {before:.3f}; after (A/B) {after:.3f}")
    if a.probe:
        print()
        probe()


if __name__ == "__main__":
    main()

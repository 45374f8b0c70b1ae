"""Fabricated RunRecords with known effects, and the store's frames built from them.

`frames_from_records` mirrors the Store's frame contract (DEVELOPERS.md) so analysis
code can be tested without SQLite; `fill_store` writes the same records into a real
Store when one exists.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from eitp_bench import names
from eitp_bench.flags import Flag
from eitp_bench.records import EnergyEntry, Metric, Provenance, RunRecord, TimelinePoint
from eitp_bench.store import ENERGY_COLUMNS, METRIC_COLUMNS, RUN_COLUMNS, TIMELINE_COLUMNS, flag_columns
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def provenance(profile: str = "hp-test-cpu") -> Provenance:
    return Provenance(eitp_bench_version="0.1.0", git_commit="abc1234", python="3.11.2", torch="2.13.0",
                      platform="Linux-6.1-x86_64", hardware_profile_id=profile,
                      hardware={"cpu": "Test CPU 8-core", "gpu": "none"})


def record(arm: str, task: str, repetition: int, metrics: dict[str, float], *, suite: str = "synthetic",
           config_hash: str = "cfg1", profile: str = "hp-test-cpu", energy_window: str | None = None,
           energy_joules: float | None = None, energy_method: str = "counter", started: int = 0,
           status: str = "ok", error: str | None = None, timeline: bool = False,
           flags: list[Flag] | None = None) -> RunRecord:
    """One repetition. Energy (if given) is one cpu package entry in `energy_window`."""
    window = energy_window
    rec_metrics = [Metric(name=k, value=float(v), unit=_unit(k), window=window) for k, v in metrics.items()]
    energy = []
    if energy_joules is not None:
        meter = "estimate" if energy_method == "estimated" else "rapl"
        energy.append(EnergyEntry(window=window or "run", device="cpu:0", domain="package", joules=energy_joules,
                                  method=energy_method, meter=meter, duration_s=10.0, samples=100,
                                  max_gap_s=0.1, flags=list(flags or []), idle_watts=5.0,
                                  net_joules=energy_joules - 50.0))
        if energy_method == "estimated":  # what the monitor leaves when RAPL cannot be read
            energy.append(EnergyEntry(window=window or "run", device="cpu:0", domain="package", joules=None,
                                      method="counter", meter="rapl", duration_s=10.0,
                                      flags=[Flag(code="permission_denied",
                                                  message="rapl: energy_uj not readable (permission denied)")]))
    tl = []
    if timeline:
        tl = [TimelinePoint(window=window or "run", device="cpu:0", domain="package", t=0.1 * i,
                            watts=40.0 + 5.0 * np.sin(i / 5)) for i in range(50)]
    start = T0 + timedelta(minutes=started)
    return RunRecord(suite=suite, suite_config_hash=config_hash, arm=arm, task=task, size="tiny", seed=repetition,
                     repetition=repetition, started_at=start.isoformat(),
                     finished_at=(start + timedelta(seconds=30)).isoformat(), status=status, error=error,
                     provenance=provenance(profile), metrics=rec_metrics, energy=energy, timeline=tl)


def _unit(name: str) -> str:
    if name.endswith("_per_s"):
        return "1/s"
    if name.endswith("_j") or "joules" in name:
        return "J"
    if name.endswith("_s"):
        return "s"
    return ""


def frames_from_records(records: list[RunRecord]) -> dict[str, pd.DataFrame]:
    """runs, metrics, energy, timeline and provenance frames with the Store's columns."""
    runs, metrics, energy, timeline, prov = [], [], [], [], []
    for r in records:
        run = {c: getattr(r, c) for c in RUN_COLUMNS if c != "hardware_profile_id"}
        run["hardware_profile_id"] = r.provenance.hardware_profile_id
        runs.append(run)
        for m in r.metrics:
            row = {**run, **m.model_dump(exclude={"flags"})}
            row["flags"], row["flag_messages"] = flag_columns(m.flags)
            metrics.append(row)
        for e in r.energy:
            row = {**run, "run_device": r.device, **e.model_dump(exclude={"flags"})}
            row["flags"], row["flag_messages"] = flag_columns(e.flags)
            energy.append(row)
        timeline += [{"run_id": r.run_id, "arm": r.arm, "task": r.task, **p.model_dump()} for p in r.timeline]
        prov.append({"run_id": r.run_id, **r.provenance.model_dump(exclude={"hardware"}),
                     **{f"hardware.{k}": v for k, v in r.provenance.hardware.items()}})
    run_device_columns = ["run_device" if c == "device" else c for c in RUN_COLUMNS]  # as energy_frame()
    return {
        "runs": pd.DataFrame(runs, columns=RUN_COLUMNS),
        "metrics": pd.DataFrame(metrics, columns=RUN_COLUMNS + METRIC_COLUMNS).astype({"value": float}),
        "energy": pd.DataFrame(energy, columns=run_device_columns + ENERGY_COLUMNS),
        "timeline": pd.DataFrame(timeline, columns=["run_id", "arm", "task", *TIMELINE_COLUMNS]),
        "provenance": pd.DataFrame(prov),
    }


def ab_records(metric: str, task: str, candidate: list[float], baseline: list[float], *,
               candidate_arm: str = "eitp-paper", baseline_arm: str = "baseline", **kw) -> list[RunRecord]:
    """Interleaved A/B repetitions with the given metric values."""
    out = []
    for i, v in enumerate(candidate):
        out.append(record(candidate_arm, task, i, {metric: v}, started=2 * i, **kw))
    for i, v in enumerate(baseline):
        out.append(record(baseline_arm, task, i, {metric: v}, started=2 * i + 1, **kw))
    return out


def lognormal(rng, median: float, n: int, cv: float = 0.05) -> np.ndarray:
    return median * rng.lognormal(0.0, cv, n)


def eitp_records(n_reps: int = 8, seed: int = 0, *, suite: str = "synthetic", profile: str = "hp-test-cpu",
                 energy_method: str = "counter", speedup: float = 1.1, energy_ratio: float = 1.3,
                 size_ratio: float = 0.26, ppl_ratio: float = 1.02, retrieval_ratio: float = 1.0,
                 failed: int = 1, timeline: bool = True, started0: int = 0, converged: tuple[int, int] | None = None,
                 base_acc: float = 0.5, chance: float = 0.1, queries: int = 64) -> list[RunRecord]:
    """A whole EIT-P suite's records, with the workloads' metric names, and known true effects
    (candidate ÷ baseline medians). Plain arms run train, lm, retrieval, generate and compress;
    eitp-compressed runs compress only. With estimated energy, joules metrics carry `_estimated`.
    `converged` = (candidate, baseline) repetitions that reach the quality target (default: all);
    a repetition that misses it has no joules_to_target, as in the workloads."""
    rng = np.random.default_rng(seed)
    est = "_estimated" if energy_method == "estimated" else ""
    out: list[RunRecord] = []
    t = started0
    kw = dict(suite=suite, profile=profile)
    for rep in range(n_reps):
        for arm in ("baseline", "eitp-paper", "eitp-compressed"):
            t += 1
            if arm == "eitp-compressed":
                out.append(record(arm, "compress", rep, {"model_bytes": 500e6 * size_ratio,
                                                         "accuracy_drop": 0.02 + rng.normal(0, 0.001)},
                                  started=t, **kw))
                continue
            cand = arm == "eitp-paper"
            e = lognormal(rng, 1000.0 * (energy_ratio if cand else 1.0), 1)[0]
            reached = rep < (converged[0 if cand else 1] if converged else n_reps)
            train = {f"train_joules{est}": e, f"train_joules_per_step{est}": e / 100,
                     "step_s": e / 4000, "final_val_loss": lognormal(rng, 3.0, 1, 0.002)[0], "e_min_j@bf16": 1e-9,
                     "target_val_loss": 3.1, "target_reached": float(reached), "lr": 5e-5}
            if reached:
                train[f"joules_to_target{est}"] = e * 0.8
            out.append(record(arm, "train", rep, train, energy_window="train", energy_joules=e,
                              energy_method=energy_method, started=t, **kw))
            out.append(record(arm, "lm", rep, {"val_loss": lognormal(rng, 3.0, 1, 0.002)[0],
                                               "val_ppl": lognormal(rng, 20.0 * (ppl_ratio if cand else 1.0), 1)[0]},
                              started=t, **kw))
            acc = {f"retrieval_acc@{d}": min(1.0, lognormal(rng, base_acc * (retrieval_ratio if cand else 1.0), 1)[0])
                   for d in (64, 256)}
            acc["retrieval_acc_long"] = acc["retrieval_acc@256"]
            acc.update({"retrieval_n@64": queries, "retrieval_n@256": queries, "retrieval_n_long": queries,
                        "retrieval_chance": chance})
            out.append(record(arm, "retrieval", rep, acc, started=t, **kw))
            jpt = lognormal(rng, 0.5 / (speedup if cand else 1.0), 1)[0]
            gen = {"tokens_per_s": lognormal(rng, 100.0 * (speedup if cand else 1.0), 1)[0], f"joules_per_token{est}": jpt}
            out.append(record(arm, "generate", rep, gen, energy_window=names.headline_generate_window(), energy_joules=jpt * 1000,
                              energy_method=energy_method, started=t, timeline=timeline and rep == 0, **kw))
            out.append(record(arm, "compress", rep, {"model_bytes": 500e6, "accuracy_drop": 0.0}, started=t, **kw))
    for i in range(failed):
        out.append(record("eitp-paper", "train", n_reps + i, {}, status="failed",
                          error="RuntimeError: CUDA out of memory <tried 2 GiB>", started=t + 1 + i, **kw))
    return out

"""One repetition, inside its own fresh process: every task of one arm, one RunRecord per task.

`worker_main(spec_path)` is the entry point (forked by the forkserver, or `python -m eitp_bench.runner
--worker SPEC.json`); `run_repetition(spec)` is the body: meters, idle baseline, provenance, then each
task inside its energy windows, each record written atomically into the staging folder as it finishes.
Heavy libraries are imported inside the functions: the forkserver has imported them already.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

from eitp_bench.energy.coverage import mark_coverage
from eitp_bench.energy.steady import flag_unsteady
from eitp_bench.records import RunRecord, utc_now
from eitp_bench.runner.plan import RepetitionSpec
from eitp_bench.runner.staging import ERROR_TAIL_LINES, write_json_atomic
from eitp_bench.suite import Suite


def _hardware() -> dict:
    """The matched hardware profiles of this machine, its stable profile id, and the CPU's TDP
    (for the estimate meter, used only when no sensor reads)."""
    from eitp_bench.hardware import describe
    from eitp_bench.hardware.profiles import load_profiles

    hw = describe()
    tdp = next((p.tdp_w for p in load_profiles() if p.name == hw["cpu_profile"]), None)
    return {
        "profile_id": hw["profile_id"],
        "alias": hw["alias"],
        "gpu_profiles": hw["gpu_profiles"],
        "cpu_profile": hw["cpu_profile"],
        "cpu_tdp_w": tdp,
    }


def _isolation(nvml, exclude_pids: Optional[set[int]] = None, *, runner_pid: Optional[int] = None,
               device: str = "cpu") -> dict:
    """The isolation check (other GPU compute processes, busy CPU processes); never raises.
    `exclude_pids`: this repetition's other ranks and their launcher; `runner_pid`: the runner, whose whole
    process tree is ours. On a GPU this process opens its CUDA context first (it would at its first tensor
    anyway), so NVML lists it and the check can tell whether NVML's pids are this namespace's."""
    from eitp_bench.hardware.isolation import isolation_check

    try:
        holds_context = _open_cuda_context(device)
        return isolation_check(nvml, exclude_pids=exclude_pids, runner_pid=runner_pid, holds_cuda_context=holds_context)
    except Exception as err:
        return {"gpu_processes": None, "cpu_busy_processes": None, "flags": [], "error": repr(err)}


def _open_cuda_context(device: str) -> bool:
    if not str(device).startswith("cuda"):
        return False
    import torch

    torch.zeros(1, device=device)
    torch.cuda.synchronize(device)
    return True


def _run_state(nvml) -> dict:
    """The hardware state runs are kept apart by (hardware/state.py); never raises."""
    from eitp_bench.hardware.state import run_state

    try:
        return run_state(nvml)
    except Exception:
        return {}


def _temperatures(nvml) -> dict:
    try:
        return nvml.temperatures() if nvml is not None else {}
    except Exception:
        return {}


def _jsonable(value):
    """Meter facts (GPU names, power limits, clocks) as plain JSON for the provenance."""
    return json.loads(json.dumps(value, default=str))


def _co2_tracker(suite, enabled: bool = True):
    """codecarbon's offline tracker around a task when the suite names a country (and `enabled`: one
    instance per repetition, rank 0's), else a no-op."""
    from contextlib import nullcontext

    if not (enabled and suite.meters.co2_country):
        return nullcontext()
    from eitp_bench.energy.carbon import Co2Tracker

    return Co2Tracker(country_iso_code=suite.meters.co2_country)


def _co2_metrics(tracker) -> list:
    """CO2 and codecarbon's own energy figure (a peer's estimate, named as such: never our joules)."""
    result = getattr(tracker, "result", None)
    if not result:
        return []
    from eitp_bench.records import Metric

    return [
        Metric(name="co2_kg", value=result["emissions_kg"], unit=f"kg CO2eq ({result['country']}, codecarbon)"),
        Metric(name="codecarbon_peer_energy_kwh", value=result["energy_kwh_codecarbon"], unit="kWh (codecarbon's estimate)"),
    ]


def idle_baseline(monitor, spec: RepetitionSpec, suite: Suite, multi_rank: bool) -> Optional[dict]:
    """The idle baseline later windows subtract (net joules): measured here, or the round's, inherited.

    One idle period per round: the first repetition of a round measures it and the parent passes its
    figures to the round's other repetitions (spec.idle). Multi-rank repetitions measure their own (each rank
    its sensors). The returned dict goes to provenance.hardware.idle_baseline: whose idle a net figure uses."""
    if suite.meters.idle_s <= 0:
        return None
    inherited = spec.idle if not multi_rank else None
    if inherited and inherited.get("channels"):
        monitor.idle_watts = {(c["meter"], c["device"], c["domain"]): c["watts"] for c in inherited["channels"]
                              if c.get("watts") is not None}
        return {**inherited, "measured_here": False}
    base = monitor.measure_idle(suite.meters.idle_s)
    return {"measured_here": True, "measured_by": spec.label, "round": spec.repetition, "size": spec.size,
            "measured_at": utc_now(),
            "duration_s": base.duration_s, "channels": _jsonable(base.as_list())}


def _resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("suite asks for device cuda but torch sees no CUDA GPU")
    return requested


def worker_main(spec_path: str, as_rank: bool = False) -> int:
    """Entry point of a worker process: read the spec the parent wrote, run the repetition.

    Multi-rank (suite.launcher, eitp_bench/distributed/): the worker launches the ranks (torch's elastic
    launcher, no restarts) and waits; each rank runs this again with `as_rank`, and only rank 0 writes records.
    """
    spec = RepetitionSpec(**json.loads(Path(spec_path).read_text(encoding="utf-8")))
    suite = Suite.model_validate(spec.suite)
    if not as_rank:
        write_json_atomic(Path(spec.staging) / "pid", str(os.getpid()))
    if suite.launcher.world_size > 1 and not as_rank:
        from eitp_bench.distributed.launch import launch_ranks, rendezvous_id

        return launch_ranks(spec_path, suite.launcher, Path(spec.staging), rendezvous_id(spec.config_hash, spec.label))
    if spec.arm in suite.debug.crash_arms and suite.debug.crash_mode == "exit":
        print(f"injected crash of arm {spec.arm} (debug.crash_arms)", file=sys.stderr, flush=True)
        os._exit(3)
    if not as_rank and spec.arm in suite.debug.pause_arms and suite.debug.pause_file:
        write_json_atomic(Path(spec.staging) / "phase", "paused (debug.pause_file)")
        while os.path.exists(suite.debug.pause_file):
            time.sleep(0.05)
    return run_repetition(spec, suite, as_rank=as_rank)


def run_repetition(spec: RepetitionSpec, suite: Suite, as_rank: bool = False) -> int:
    """One repetition (or one rank of it): every task of one arm, each record written atomically as it finishes."""
    staging = Path(spec.staging)
    t_start = time.monotonic()

    import torch

    from eitp_bench.energy.monitor import EnergyMonitor
    from eitp_bench.provenance import provenance
    from eitp_bench.records import Metric
    from eitp_bench.workloads.precision import precision_record
    from eitp_bench.workloads.assets import resolved_inputs
    from eitp_bench.workloads.tasks import TASKS, TaskContext

    if suite.threads is not None:  # fewer threads than cores: far less jitter on a shared CPU
        torch.set_num_threads(suite.threads)
    # multi-rank: the process group, this rank's device, a monitor of the sensors this rank owns
    ranks = None
    if as_rank:
        from eitp_bench.distributed.ranks import RankContext

        ranks = RankContext.start(suite)
    device = ranks.device if ranks else _resolve_device(suite.device)
    from eitp_bench.workloads.precision import set_tf32

    set_tf32(device, suite.train.precision)  # bf16/fp16: TF32 allowed for what stays fp32; fp32: strict fp32
    hw = _hardware()
    meter_args = dict(interval=suite.meters.interval, timeline=suite.meters.timeline, tdp_w=hw.pop("cpu_tdp_w"))
    monitor = ranks.make_monitor(**meter_args) if ranks else EnergyMonitor(**meter_args)
    nvml = next((m for m in monitor.meters if m.name == "nvml"), None)
    if nvml is not None and spec.qualification is not None:  # qualified period and edge error per GPU
        nvml.use_qualification(spec.qualification)
    writes = ranks is None or ranks.rank == 0  # rank 0 writes every record of a multi-rank repetition
    try:
        if writes:
            write_json_atomic(staging / "phase", "isolation check")
        hw["isolation"] = _jsonable(_isolation(nvml, ranks.sibling_pids() if ranks else None,
                                               runner_pid=spec.runner_pid, device=device))
        hw["cooldown_before_s"] = spec.cooldown_before_s
        hw["state"] = _jsonable(_run_state(nvml))  # power limit, locked clocks, boards, CPU governor …
        if spec.qualification is not None:
            hw["qualification"] = spec.qualification
        if suite.meters.idle_s > 0:
            write_json_atomic(staging / "phase", "idle")
        hw["idle_baseline"] = idle_baseline(monitor, spec, suite, multi_rank=ranks is not None)
        if spec.estimate is not None:
            hw["cost_estimate"] = spec.estimate
        torch.manual_seed(spec.seed)
        hw["inputs"] = resolved_inputs(suite)  # the model and data commits this repetition reads
        prov = provenance(spec.hardware_profile_id or hw.pop("profile_id"),
                          hardware={"meters": [m.name for m in monitor.meters], "meter_info": _jsonable(monitor.info()),
                                    # sensors that could not read here, with the reason: the report names them
                                    "meters_unavailable": sorted({f"{s.meter}: {s.reason}" for s in monitor.statuses
                                                                  if not s.available and s.meter != "estimate"}),
                                    **hw})
        ctx = TaskContext(suite, spec.arm, spec.size, spec.seed, spec.repetition, device, monitor)
        ctx.ranks = ranks
        t_ref = time.monotonic()
        prov.hardware["setup_s"] = t_ref - t_start  # process start to the first task, idle included (cost model)
        for task in spec.tasks:
            if writes:
                write_json_atomic(staging / "phase", task)
            record = RunRecord(
                suite=spec.suite_name, suite_config_hash=spec.config_hash, arm=spec.arm, task=task, size=spec.size,
                seed=spec.seed, repetition=spec.repetition, device=device, config=spec.suite,
                provenance=prov.model_copy(deep=True),
                world_size=ranks.world_size if ranks else 1, nnodes=ranks.nnodes if ranks else 1,
            )
            temps_start = _temperatures(nvml)
            ctx.energy = []
            ctx.precision_seen = {}
            ctx.task_device = device  # a task that runs elsewhere (int8 generate on CPU) says so
            first_window = len(monitor.results)
            try:
                if spec.arm in suite.debug.crash_arms and (ranks is None or suite.debug.crash_rank in (None, ranks.rank)):
                    raise RuntimeError(f"injected failure of arm {spec.arm} (debug.crash_arms)")
                if task not in TASKS:
                    raise RuntimeError(f"task {task!r} has no implementation in workloads.tasks.TASKS")
                with _co2_tracker(suite, enabled=writes) as co2:
                    # multi-rank: which ranks run this task, and how their results combine (distributed/ranks.py)
                    record.metrics = ranks.run_task(task, ctx, TASKS[task]) if ranks else TASKS[task](ctx)
                record.metrics += _co2_metrics(co2)
                record.metrics.append(Metric(name="round_position", value=spec.position, unit="1"))
                record.energy = flag_unsteady(ctx.energy, suite.meters.min_window_s)  # not_steady: < 5 s
                # GPU-only totals say so; CPU work measured on the GPUs alone is no figure of the work
                record.energy = mark_coverage(record.energy, cpu_work=str(ctx.task_device or device).startswith("cpu"))
                if suite.meters.timeline:
                    # windows opened here on behalf of a later task go with that task's record
                    later = [w for ws in ctx.windows_for.values() for w in ws]
                    windows = [w for w in monitor.results[first_window:] if not any(w is x for x in later)]
                    for w in windows + ctx.windows_for.pop(task, []):
                        record.timeline.extend(w.timeline_points(t_ref))
            except Exception:
                record.status = "failed"
                record.error = "\n".join(traceback.format_exc().strip().splitlines()[-ERROR_TAIL_LINES:])
                print(record.error, file=sys.stderr, flush=True)
                if ranks is not None:  # the other ranks may wait in a collective: end this rank, fail the repetition
                    raise
            record.device = ctx.task_device or device
            record.provenance.hardware["precision"] = precision_record(suite.train.precision, device, ctx.precision_seen)
            if nvml is not None:  # GPU temperature when this task started and ended (None: unreadable)
                temps_end = _temperatures(nvml)
                record.provenance.hardware["gpu_temperature_c"] = {
                    d: {"start": temps_start.get(d), "end": temps_end.get(d)} for d in sorted({*temps_start, *temps_end})
                }
            record.finished_at = utc_now()
            if writes:
                write_json_atomic(staging / f"{task}.json", record.model_dump_json())
    finally:
        monitor.close()
    if ranks is not None:  # leave the process group together
        ranks.close()
    return 0

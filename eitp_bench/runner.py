"""Plan repetitions, run each in a fresh process, collect RunRecords as they finish.

Protocol: a repetition is one fresh Python process running one arm through every task of the
suite (so nothing is carried over between samples); arms are interleaved within each repetition
round in an order shuffled by the round's seed (recorded as `round_position`), so no arm always
runs first on a cold machine or last on a hot one; every arm gets the same seed in a round. The worker (`python -m eitp_bench.runner --worker spec.json`) writes each task's record
atomically into a staging folder; the parent moves a repetition's records into the results
folder only once its process has ended, so an interrupted repetition leaves nothing behind.

A crashed, failing or timed-out repetition becomes records with status "failed" and the last
lines of its log, and the suite goes on. Ctrl-C kills the running worker and keeps every finished
repetition (`RunInterrupted`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

from eitp_bench.energy.qualify import qualify_for_suite
from eitp_bench.energy.steady import flag_unsteady
from eitp_bench.records import RunRecord, utc_now
from eitp_bench.suite import Suite, suite_config_hash, suite_file_name

ERROR_TAIL_LINES = 20


@dataclass
class RepetitionSpec:
    """Everything a worker process needs; written as JSON, so nothing else leaks in."""

    suite: dict
    suite_name: str
    config_hash: str
    arm: str
    size: str
    seed: int
    repetition: int
    tasks: list[str]
    staging: str = ""
    hardware_profile_id: Optional[str] = None
    position: int = 0  # place of this arm in its round's shuffled order
    cooldown_before_s: float = 0.0  # the thermal cooldown the runner waited just before this repetition
    qualification: Optional[dict] = None  # meters.qualify: the suite's sensor qualification (energy/qualify.py)

    def plan_entry(self, suite: Suite) -> dict:
        """This repetition as the dry-run plan shows it: identity, tasks and every effective setting."""
        from eitp_bench.suite import effective_settings

        return {
            "arm": self.arm, "size": self.size, "seed": self.seed, "repetition": self.repetition,
            "position": self.position, "tasks": list(self.tasks), "settings": effective_settings(suite, self.arm),
        }

    @property
    def label(self) -> str:
        return f"{self.size}-r{self.repetition:03d}-{self.arm}"


def round_order(arms: list[str], seed: int, size: str) -> list[str]:
    """The arms of one round in a shuffled order, reproducible from the round's seed and size."""
    import random

    order = list(arms)
    random.Random(f"{seed}:{size}:arm-order").shuffle(order)
    return order


def plan(suite: Suite, hardware_profile_id: Optional[str] = None) -> list[RepetitionSpec]:
    """All repetitions in run order: per size, per round, every arm once, in a seeded random order."""
    from eitp_bench.workloads.arms import tasks_for_arm  # light: no torch

    config, digest = suite.model_dump(mode="json"), suite_config_hash(suite)
    specs = []
    for size in suite.sizes:
        for rep in range(suite.repetitions):
            seed = suite.seed_for(rep)
            for position, arm in enumerate(round_order(list(suite.arms), seed, size)):
                tasks = tasks_for_arm(arm, list(suite.tasks))
                if tasks:
                    specs.append(
                        RepetitionSpec(config, suite.name, digest, arm, size, seed, rep, tasks,
                                       hardware_profile_id=hardware_profile_id, position=position)
                    )
    return specs


def write_json_atomic(path: Path, data: str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_out_dir(suite_name: str) -> Path:
    return Path("eitp-results") / f"{suite_file_name(suite_name)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class RunInterrupted(Exception):
    def __init__(self, summary: "RunSummary"):
        super().__init__("interrupted")
        self.summary = summary


@dataclass
class RunSummary:
    out_dir: Path
    planned: int
    finished: int = 0  # repetitions (processes) that ended, ok or failed
    records: list[RunRecord] = field(default_factory=list)

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status != "ok"]


# ----------------------------------------------------------------------------- parent side


class Runner:
    """Runs a suite's plan, one process per repetition. `on_record` callbacks see each record."""

    def __init__(
        self,
        suite: Suite,
        out_dir: Optional[Path] = None,
        *,
        on_record: Optional[list[Callable[[RunRecord], object]]] = None,
        hardware_profile_id: Optional[str] = None,
        progress: bool = True,
        python: Optional[str] = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.suite = suite
        self.out_dir = Path(out_dir) if out_dir else default_out_dir(suite.name)
        self.on_record = list(on_record or [])
        self.hardware_profile_id = hardware_profile_id
        self.progress = progress
        self.python = python or sys.executable
        self.sleep = sleep  # the cooldown's wait (tests inject a recorder)
        self._provenance = None

    def run(self) -> RunSummary:
        specs = plan(self.suite, self.hardware_profile_id)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            self.out_dir / "suite.json",
            json.dumps({"config_hash": suite_config_hash(self.suite), "suite": self.suite.model_dump(mode="json")}, indent=2),
        )
        summary = RunSummary(self.out_dir, planned=len(specs))
        qualification = qualify_for_suite(self.suite)  # None unless meters.qualify
        with _Progress(len(specs), enabled=self.progress) as bar:
            for i, spec in enumerate(specs):
                cooldown = self.suite.meters.cooldown_s if i > 0 else 0.0
                try:
                    if cooldown > 0:  # let the GPU and CPU cool between repetitions (meters.cooldown_s)
                        bar.describe(f"cooldown {cooldown:g} s before {spec.label}")
                        self.sleep(cooldown)
                    spec.cooldown_before_s, spec.qualification = cooldown, qualification
                    bar.describe(f"{spec.label} ({i + 1}/{len(specs)})")
                    records = self._run_one(spec, bar)
                except KeyboardInterrupt:
                    raise RunInterrupted(summary) from None
                for record in records:
                    self._publish(record)
                summary.records.extend(records)
                summary.finished += 1
                bar.advance(spec, records)
        return summary

    def _publish(self, record: RunRecord) -> None:
        for callback in self.on_record:
            callback(record)

    def _run_one(self, spec: RepetitionSpec, bar: "_Progress") -> list[RunRecord]:
        staging = Path(tempfile.mkdtemp(prefix=f".{spec.label}-", dir=self.out_dir))
        spec.staging = str(staging)
        spec_path = staging / "spec.json"
        spec_path.write_text(json.dumps(asdict(spec)), encoding="utf-8")
        log_path = staging / "worker.log"
        started = utc_now()
        error: Optional[str] = None
        proc = None
        try:
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [self.python, "-m", "eitp_bench.runner", "--worker", str(spec_path)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
                deadline = time.monotonic() + self.suite.timeout_s
                while True:
                    try:
                        code = proc.wait(timeout=0.25)
                        break
                    except subprocess.TimeoutExpired:
                        bar.phase(_read_phase(staging))
                        if time.monotonic() > deadline:
                            _stop(proc)
                            code = None
                            error = f"timed out after {self.suite.timeout_s:g} s (suite timeout_s)"
                            break
            if code not in (0, None) and error is None:
                error = f"worker exited with code {code}"
            records = self._collect(spec, staging, started, error, log_path)
            self._keep_log(spec, log_path, failed=any(r.status != "ok" for r in records))
            return records
        except KeyboardInterrupt:
            if proc is not None:
                _stop(proc)
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _collect(self, spec, staging: Path, started: str, error: Optional[str], log_path: Path) -> list[RunRecord]:
        """Move the worker's records to the results folder; tasks without one become failed records."""
        if self.suite.launcher.node_rank > 0:  # multi-node: rank 0, on node 0, writes every record
            if error:
                print(f"{spec.label}: this node's ranks failed: {error}\n{_tail(log_path)}", file=sys.stderr, flush=True)
            return []
        records = []
        for task in spec.tasks:
            path = staging / f"{task}.json"
            if path.exists():
                record = RunRecord.model_validate_json(path.read_text(encoding="utf-8"))
            else:
                tail = _tail(log_path)
                reason = error or "worker ended without a record for this task"
                record = RunRecord(
                    suite=spec.suite_name, suite_config_hash=spec.config_hash, arm=spec.arm, task=task,
                    size=spec.size, seed=spec.seed, repetition=spec.repetition, started_at=started,
                    finished_at=utc_now(), status="failed", error=f"{reason}\n{tail}".strip(),
                    config=spec.suite, provenance=self._parent_provenance(spec),
                )
            write_json_atomic(self.out_dir / f"{spec.label}-{task}.json", record.model_dump_json(indent=1))
            records.append(record)
        return records

    def _keep_log(self, spec, log_path: Path, failed: bool) -> None:
        if log_path.exists() and (failed or log_path.stat().st_size):
            logs = self.out_dir / "logs"
            logs.mkdir(exist_ok=True)
            os.replace(log_path, logs / f"{spec.label}.log")

    def _parent_provenance(self, spec):
        if self._provenance is None:
            from eitp_bench.provenance import provenance

            self._provenance = provenance(spec.hardware_profile_id)
        return self._provenance


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


def _isolation(nvml, exclude_pids: Optional[set[int]] = None) -> dict:
    """The isolation check (other GPU compute processes, busy CPU processes); never raises.
    `exclude_pids`: this repetition's other ranks and their launcher, which are not "other" processes."""
    from eitp_bench.hardware.isolation import isolation_check

    try:
        return isolation_check(nvml, exclude_pids=exclude_pids)
    except Exception as err:
        return {"gpu_processes": None, "cpu_busy_processes": None, "flags": [], "error": repr(err)}


def _temperatures(nvml) -> dict:
    try:
        return nvml.temperatures() if nvml is not None else {}
    except Exception:
        return {}


def _jsonable(value):
    """Meter facts (GPU names, power limits, clocks) as plain JSON for the provenance."""
    return json.loads(json.dumps(value, default=str))


def _co2_tracker(suite):
    """codecarbon's offline tracker around a task when the suite names a country, else a no-op."""
    from contextlib import nullcontext

    if not suite.meters.co2_country:
        return nullcontext()
    from eitp_bench.energy.carbon import Co2Tracker

    return Co2Tracker(country_iso_code=suite.meters.co2_country)


def _no_co2():
    from contextlib import nullcontext

    return nullcontext()


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


def _stop(proc: subprocess.Popen) -> None:
    """Terminate a worker, then kill it if it does not go within 5 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, lines: int = ERROR_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _read_phase(staging: Path) -> str:
    try:
        return (staging / "phase").read_text(encoding="utf-8").strip()
    except OSError:
        return ""


class _Progress:
    """A rich progress bar on a terminal; one line per finished repetition otherwise."""

    def __init__(self, total: int, enabled: bool = True):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.enabled = enabled
        self.live = enabled and self.console.is_terminal
        self.total = total
        self.done = 0
        self._desc = ""

    def __enter__(self):
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=self.console,
            )
            self._bar.start()
            self._task = self._bar.add_task("repetitions", total=self.total)
        return self

    def __exit__(self, *exc):
        if self.live:
            self._bar.stop()
        return False

    def describe(self, text: str) -> None:
        self._desc = text
        if self.live:
            self._bar.update(self._task, description=text)

    def phase(self, phase: str) -> None:
        if self.live and phase:
            self._bar.update(self._task, description=f"{self._desc} · {phase}")

    def advance(self, spec: RepetitionSpec, records: list[RunRecord]) -> None:
        self.done += 1
        if self.live:
            self._bar.advance(self._task)
        elif self.enabled:
            bad = [r.task for r in records if r.status != "ok"]
            status = f"failed: {', '.join(bad)}" if bad else "ok"
            print(f"[{self.done}/{self.total}] {spec.label} {status}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- worker side


def _resolve_device(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("suite asks for device cuda but torch sees no CUDA GPU")
    return requested


def worker_main(spec_path: str, as_rank: bool = False) -> int:
    """Run one repetition: every task of one arm, each record written atomically as it finishes.

    Multi-rank (suite.launcher, eitp_bench/distributed/): the worker launches the ranks and waits;
    each rank runs this function again with `as_rank`, and only rank 0 writes records."""
    spec = RepetitionSpec(**json.loads(Path(spec_path).read_text(encoding="utf-8")))
    staging = Path(spec.staging)
    suite = Suite.model_validate(spec.suite)
    # --- multi-rank call-out 1/4: this process only starts the ranks (torch's elastic launcher) ---
    if suite.launcher.world_size > 1 and not as_rank:
        from eitp_bench.distributed.launch import launch_ranks, rendezvous_id

        return launch_ranks(spec_path, suite.launcher, staging, rendezvous_id(spec.config_hash, spec.label))
    if spec.arm in suite.debug.crash_arms and suite.debug.crash_mode == "exit":
        print(f"injected crash of arm {spec.arm} (debug.crash_arms)", file=sys.stderr, flush=True)
        os._exit(3)

    import torch

    from eitp_bench.energy.monitor import EnergyMonitor
    from eitp_bench.provenance import provenance
    from eitp_bench.records import Metric
    from eitp_bench.workloads.tasks import TASKS, TaskContext

    if suite.threads is not None:  # fewer threads than cores: far less jitter on a shared CPU
        torch.set_num_threads(suite.threads)
    # --- multi-rank call-out 2/4: process group, this rank's device, a monitor of its own sensors ---
    ranks = None
    if as_rank:
        from eitp_bench.distributed.ranks import RankContext

        ranks = RankContext.start(suite)
    device = ranks.device if ranks else _resolve_device(suite.device)
    hw = _hardware()
    meter_args = dict(interval=suite.meters.interval, timeline=suite.meters.timeline, tdp_w=hw.pop("cpu_tdp_w"))
    monitor = ranks.make_monitor(**meter_args) if ranks else EnergyMonitor(**meter_args)
    nvml = next((m for m in monitor.meters if m.name == "nvml"), None)
    writes = ranks is None or ranks.rank == 0  # rank 0 writes every record of a multi-rank repetition
    try:
        write_json_atomic(staging / "phase", "isolation check")
        hw["isolation"] = _jsonable(_isolation(nvml, ranks.sibling_pids() if ranks else None))
        hw["cooldown_before_s"] = spec.cooldown_before_s
        if spec.qualification is not None:
            hw["qualification"] = spec.qualification
        if suite.meters.idle_s > 0:
            write_json_atomic(staging / "phase", "idle")
            monitor.measure_idle(suite.meters.idle_s)
        torch.manual_seed(spec.seed)
        prov = provenance(spec.hardware_profile_id or hw.pop("profile_id"),
                          hardware={"meters": [m.name for m in monitor.meters], "meter_info": _jsonable(monitor.info()),
                                    # sensors that could not read here, with the reason: the report names them
                                    "meters_unavailable": sorted({f"{s.meter}: {s.reason}" for s in monitor.statuses
                                                                  if not s.available and s.meter != "estimate"}),
                                    **hw})
        ctx = TaskContext(suite, spec.arm, spec.size, spec.seed, spec.repetition, device, monitor)
        ctx.ranks = ranks
        t_ref = time.monotonic()
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
            ctx.task_device = device  # a task that runs elsewhere (int8 generate on CPU) says so
            first_window = len(monitor.results)
            try:
                if spec.arm in suite.debug.crash_arms and (ranks is None or suite.debug.crash_rank in (None, ranks.rank)):
                    raise RuntimeError(f"injected failure of arm {spec.arm} (debug.crash_arms)")
                if task not in TASKS:
                    raise RuntimeError(f"task {task!r} has no implementation in workloads.tasks.TASKS")
                with _co2_tracker(suite) if writes else _no_co2() as co2:  # codecarbon: one instance, rank 0's
                    # --- multi-rank call-out 3/4: which ranks run this task (distributed/ranks.py) ---
                    record.metrics = ranks.run_task(task, ctx, TASKS[task]) if ranks else TASKS[task](ctx)
                record.metrics += _co2_metrics(co2)
                record.metrics.append(Metric(name="round_position", value=spec.position, unit="1"))
                record.energy = flag_unsteady(ctx.energy, suite.meters.min_window_s)  # not_steady: < 5 s
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
    if ranks is not None:  # --- multi-rank call-out 4/4: leave the process group together ---
        ranks.close()
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("--worker", "--rank-worker"):
        sys.exit(worker_main(sys.argv[2], as_rank=sys.argv[1] == "--rank-worker"))
    print("usage: python -m eitp_bench.runner --worker SPEC.json", file=sys.stderr)
    sys.exit(2)

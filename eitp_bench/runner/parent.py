"""The parent: runs a suite's plan one worker process per repetition, and publishes what they wrote.

For each repetition it makes a staging folder, starts a worker (forkserver.start_worker), waits
with the suite's timeout while showing the worker's current task, then *publishes* the repetition
at once: every task record (failed ones made here for tasks the worker never finished) goes to the
results folder and, in one transaction, to the store. Only then is the staging folder removed, so a
parent killed at any instant leaves either nothing or a complete staged repetition, which the next
run into the same folder recovers (recovery.py).

A crashed, failing or timed-out repetition becomes records with status "failed" and the last lines
of its log, and the suite goes on. SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the running worker, discard its
unfinished repetition and keep every finished one (`RunInterrupted`); a signal that arrives while a
repetition is being published waits until it is published. On SIGKILL the workers die with the
parent (see forkserver.py and process_tree.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from eitp_bench.records import RunRecord, utc_now
from eitp_bench.runner.forkserver import server_running, start_worker, uses_forkserver, warm_up
from eitp_bench.runner.plan import RepetitionSpec, default_out_dir, plan
from eitp_bench.runner.progress import RunProgress
from eitp_bench.runner.qualification import qualify_in_child
from eitp_bench.runner.recovery import (SUITE_FILE, check_out_dir, import_unstored, lock_out_dir, recover_staged,
                                        stored_repetitions)
from eitp_bench.runner.staging import (new_staging, read_phase, remove_staging_root_if_empty, tail,
                                       write_json_atomic)
from eitp_bench.store.retry import publish
from eitp_bench.suite import Suite, suite_config_hash


# the signals that stop a run cleanly (SIGHUP: the terminal or ssh session that ran it went away)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class RunInterrupted(Exception):
    def __init__(self, summary: "RunSummary", signum: int = signal.SIGINT):
        super().__init__("interrupted")
        self.summary = summary
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class _Stop(BaseException):
    """Raised by the parent's SIGINT/SIGTERM/SIGHUP handler (BaseException: no `except Exception` eats it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@dataclass
class RunSummary:
    out_dir: Path
    planned: int
    skipped: int = 0  # repetitions already stored (--resume)
    finished: int = 0  # repetitions (processes) that ended here, ok or failed
    records: list[RunRecord] = field(default_factory=list)  # what this run's workers produced
    recovered: list[RunRecord] = field(default_factory=list)  # published from an earlier run's staging
    earlier_run_ids: set[str] = field(default_factory=set)  # the stored records --resume skipped

    @property
    def failed(self) -> list[RunRecord]:
        return [r for r in self.records if r.status != "ok"]

    def run_ids(self, config_hash: str) -> set[str]:
        """Every record of this configuration that belongs to this results folder (for its report)."""
        return ({r.run_id for r in self.records} | self.earlier_run_ids
                | {r.run_id for r in self.recovered if r.suite_config_hash == config_hash})


class Runner:
    """Runs a suite's plan, one process per repetition, publishing each into `store` and the folder.

    `progress`: "auto", "lines", "quiet", "off" (see progress.py); True means "auto", False "off".
    `resume`: skip the repetitions `store` already holds for this configuration.
    """

    def __init__(
        self,
        suite: Suite,
        out_dir: Optional[Path] = None,
        *,
        store=None,
        on_record: Optional[list[Callable[[RunRecord], object]]] = None,
        hardware_profile_id: Optional[str] = None,
        progress: "bool | str" = True,
        resume: bool = False,
        python: Optional[str] = None,
        sleep: Callable[[float], None] = time.sleep,
        estimate: Optional[dict] = None,
    ):
        self.suite = suite
        self.out_dir = Path(out_dir) if out_dir else default_out_dir(suite.name)
        self.store = store
        self.on_record = list(on_record or [])
        self.hardware_profile_id = hardware_profile_id
        self.progress = {True: "auto", False: "off"}.get(progress, progress)
        self.resume = resume
        self.python = python  # None: forkserver workers (or $EITP_BENCH_WORKER_PYTHON)
        self.sleep = sleep  # the cooldown's wait (tests inject a recorder)
        self.estimate = estimate  # the cost model's estimate (analysis/cost_model.py): suite.json and every record keep it
        self._provenance = None
        self._signal: Optional[int] = None
        self._publishing = False
        if resume and store is None:
            raise ValueError("resume needs the store that holds the earlier repetitions")

    # --- the plan, start to end ----------------------------------------------------------------

    def run(self) -> RunSummary:
        specs = plan(self.suite, self.hardware_profile_id)
        digest = suite_config_hash(self.suite)
        summary = RunSummary(self.out_dir, planned=len(specs))
        with RunProgress(len(specs), mode=self.progress) as bar, self._signals():
            bar.note(f"suite {self.suite.name} ({digest[:12]}): {len(specs)} repetitions planned → {self.out_dir}")
            lock = None
            try:
                try:
                    lock = lock_out_dir(self.out_dir)
                    recover_staged(self.out_dir, lambda *a: summary.recovered.extend(self._publish(*a)), bar.note)
                    check_out_dir(self.out_dir, self.suite, self.resume)
                    if self.resume:  # the folder's records the store lacks go in, never get overwritten
                        import_unstored(self.out_dir, self.store, digest, bar.note)
                    # before the forkserver's imports load the CPU: None unless meters.qualify. In a child
                    # process, so this one never holds a CUDA context during the suite (qualification.py)
                    qualification = qualify_in_child(self.suite)
                    fresh_server = uses_forkserver(self.python) and not server_running()
                    if uses_forkserver(self.python):
                        warm_up()  # the server imports torch and transformers while --resume reads the store
                    todo = self._not_stored(specs, digest, summary, bar)
                    write_json_atomic(self.out_dir / SUITE_FILE, json.dumps(
                        {"config_hash": digest, "suite": self.suite.model_dump(mode="json"),
                         **({"estimate": self.estimate} if self.estimate is not None else {})}, indent=2))
                    round_idle: dict = {}  # (size, round) → the idle baseline its first repetition measured
                    bar.total = len(todo)
                    for i, spec in enumerate(todo):
                        bar.starting(spec)
                        cooldown = self.suite.meters.cooldown_s if i > 0 else 0.0
                        if cooldown > 0:  # let the GPU and CPU cool between repetitions (meters.cooldown_s)
                            bar.cooldown(cooldown)
                            self.sleep(cooldown)
                        spec.cooldown_before_s, spec.qualification = cooldown, qualification
                        spec.idle, spec.estimate = round_idle.get((spec.size, spec.repetition)), self.estimate
                        spec.runner_pid = os.getpid()  # isolation: this runner's process tree is ours
                        if i == 0 and fresh_server:
                            bar.waiting_for_server()
                        records = self._run_one(spec, bar)
                        if spec.idle is None:  # the round's later repetitions use the idle this one measured
                            measured = _measured_idle(records)
                            if measured is not None:
                                round_idle[(spec.size, spec.repetition)] = measured
                        summary.records.extend(records)
                        summary.finished += 1
                        bar.finished(spec, records)
                except _Stop as stop:
                    raise RunInterrupted(summary, stop.signum) from None
            finally:
                if lock is not None:
                    remove_staging_root_if_empty(self.out_dir)
                    lock.close()
        return summary

    def _not_stored(self, specs: list[RepetitionSpec], digest: str, summary: RunSummary, bar) -> list[RepetitionSpec]:
        """With --resume: the repetitions the store does not hold yet (a partly held one is said, not rerun)."""
        if not self.resume:
            return specs
        held = stored_repetitions(self.store, digest)
        todo = []
        for spec in specs:
            tasks = held.get(spec.key)
            if tasks is None:
                todo.append(spec)
                continue
            summary.earlier_run_ids.update(tasks.values())
            if set(spec.tasks) - set(tasks):
                bar.note(f"warning: {spec.label} is stored without a record for "
                         f"{', '.join(sorted(set(spec.tasks) - set(tasks)))}; not run again (it would duplicate the rest)")
        summary.skipped = len(specs) - len(todo)
        bar.note(f"resuming: {summary.skipped} of {len(specs)} repetitions already stored for this configuration, "
                 f"{len(todo)} to run")
        return todo

    # --- one repetition ------------------------------------------------------------------------

    def _run_one(self, spec: RepetitionSpec, bar: RunProgress) -> list[RunRecord]:
        staging = new_staging(self.out_dir, spec)
        log_path = staging / "worker.log"
        started = utc_now()
        error: Optional[str] = None
        worker = None
        try:
            worker = start_worker(staging / "spec.json", log_path, self.python)
            deadline = time.monotonic() + self.suite.timeout_s
            while (code := worker.wait(0.25)) is None:
                bar.phase(read_phase(staging))
                if time.monotonic() > deadline:
                    worker.stop()
                    error = f"timed out after {self.suite.timeout_s:g} s (suite timeout_s)"
                    break
        except BaseException:
            if worker is not None:  # interrupted: the unfinished repetition is discarded
                self._publishing = True  # a second signal must not cut the stop short
                try:
                    worker.stop()
                finally:
                    self._publishing = False
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if error is None and code != 0:
            error = _exit_reason(code)
        records = self._complete(spec, staging, started, error, log_path)
        return self._publish(spec, records, log_path)

    def _complete(self, spec, staging: Path, started: str, error: Optional[str], log_path: Path) -> list[RunRecord]:
        """The worker's records; a task without one becomes a failed record with the log's last lines."""
        from eitp_bench.runner.staging import staged_records

        if self.suite.launcher.node_rank > 0:  # multi-node: rank 0, on node 0, writes every record
            if error:
                print(f"{spec.label}: this node's ranks failed: {error}\n{tail(log_path)}", file=sys.stderr, flush=True)
            return []
        found = staged_records(staging, spec.tasks)
        records = []
        for task in spec.tasks:
            record = found.get(task)
            if record is None:
                reason = error or "worker ended without a record for this task"
                record = RunRecord(
                    suite=spec.suite_name, suite_config_hash=spec.config_hash, arm=spec.arm, task=task,
                    size=spec.size, seed=spec.seed, repetition=spec.repetition, started_at=started,
                    finished_at=utc_now(), status="failed", error=f"{reason}\n{tail(log_path)}".strip(),
                    config=spec.suite, provenance=self._parent_provenance(spec),
                    world_size=self.suite.launcher.world_size, nnodes=self.suite.launcher.nnodes,
                )
            records.append(record)
        return records

    def _publish(self, spec: RepetitionSpec, records: list[RunRecord], log_path: Path) -> list[RunRecord]:
        """Results folder, store (one transaction), callbacks, log; then the staging folder goes.

        Idempotent (files are rewritten, the store ignores a stored run_id), so recovery may redo a
        publication a killed parent had begun. Signals wait until it is done.
        """
        self._publishing = True
        try:
            for record in records:
                write_json_atomic(self.out_dir / f"{spec.label}-{record.task}.json", record.model_dump_json(indent=1))
            if self.store is not None:  # a transient store failure is retried (store/retry.py)
                publish(self.store, records, sleep=self.sleep)
            for record in records:
                for callback in self.on_record:
                    callback(record)
            self._keep_log(spec, log_path, failed=any(r.status != "ok" for r in records))
            if spec.staging:
                shutil.rmtree(spec.staging, ignore_errors=True)
        finally:
            self._publishing = False
        if self._signal is not None:
            raise _Stop(self._signal)
        return records

    def _keep_log(self, spec, log_path: Path, failed: bool) -> None:
        if log_path.exists() and (failed or log_path.stat().st_size):
            logs = self.out_dir / "logs"
            logs.mkdir(exist_ok=True)
            os.replace(log_path, logs / f"{spec.label}.log")

    def _parent_provenance(self, spec):
        """Provenance for a record the worker never wrote, with this machine's hardware profile id."""
        if self._provenance is None:
            from eitp_bench.provenance import provenance

            self._provenance = provenance(spec.hardware_profile_id or _profile_id())
        return self._provenance

    # --- signals -------------------------------------------------------------------------------

    def _signals(self):
        """SIGINT, SIGTERM and SIGHUP (a closed terminal or ssh session) raise _Stop in the parent
        (deferred while publishing); restored after."""
        from contextlib import contextmanager

        @contextmanager
        def installed():
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            self._signal = None
            previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}

            def handler(signum, frame):
                first = self._signal is None
                self._signal = signum
                if first and not self._publishing:
                    raise _Stop(signum)

            for s in previous:
                signal.signal(s, handler)
            try:
                yield
            finally:
                for s, h in previous.items():
                    signal.signal(s, h)

        return installed()


def _measured_idle(records: list[RunRecord]) -> Optional[dict]:
    """The idle baseline a repetition measured itself (worker.idle_baseline), as the round passes it on."""
    for record in records:
        idle = record.provenance.hardware.get("idle_baseline") if record.provenance else None
        if idle and idle.get("measured_here") and idle.get("channels") is not None:
            return {k: v for k, v in idle.items() if k != "measured_here"}
    return None


def _exit_reason(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (the out-of-memory killer sends SIGKILL)" if -code == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {code}"


def _profile_id() -> Optional[str]:
    try:
        from eitp_bench.hardware import describe

        return describe()["profile_id"]
    except Exception:  # a failed record is still recorded without it
        return None

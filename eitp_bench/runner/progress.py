"""What the runner tells the person waiting: the plan at once, then repetitions done / planned, the
current arm and task, elapsed time and an ETA from the repetitions finished so far.

Modes: "auto" draws a rich progress bar when stdout and stderr are terminals and prints plain lines
otherwise; "lines" always prints plain lines (a line per task started and per repetition finished);
"quiet" prints the plan line and one line per finished repetition; "off" prints nothing. Everything
goes to stderr: stdout stays for the command's results.

The one progress module of every command: `RunProgress` for `run`'s repetitions, `Steps` for a command
made of a few long steps (`eitp-bench bounds`: a spinner with the step's name on a terminal, one plain
line per step otherwise, always on stderr).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Optional

from eitp_bench.records import RunRecord
from eitp_bench.runner.plan import RepetitionSpec

HEARTBEAT_S = 1.5  # a step running longer than this says so again: never silent for more than 2 s


def is_terminal(stream) -> bool:
    """Whether a stream is a terminal (a closed or replaced stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def clock_text(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class RunProgress:
    def __init__(self, total: int, *, mode: str = "auto", clock: Callable[[], float] = time.monotonic, stream=None):
        self.total = total
        self.done = 0
        self.clock = clock
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if is_terminal(sys.stdout) and is_terminal(self.stream) else "lines"
        self.mode = mode
        self._t0 = clock()
        self._rep_t0: Optional[float] = None
        self._durations: list[float] = []
        self._spec: Optional[RepetitionSpec] = None
        self._phase = ""
        self._bar = None
        self._server_wait = False

    # --- figures -----------------------------------------------------------------------------

    def elapsed_s(self) -> float:
        return self.clock() - self._t0

    def eta_s(self) -> Optional[float]:
        """Mean wall time of the finished repetitions (cooldown included) × the repetitions left."""
        if not self._durations:
            return None
        return sum(self._durations) / len(self._durations) * (self.total - self.done)

    # --- events ------------------------------------------------------------------------------

    def __enter__(self) -> "RunProgress":
        return self

    def __exit__(self, *exc) -> bool:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        return False

    def note(self, text: str) -> None:
        """One line that is always said (the plan, recovery, skipped repetitions)."""
        if self.mode == "off":
            return
        if self._bar is not None:
            from rich.markup import escape

            self._bar.console.print(escape(text))
        else:
            print(text, file=self.stream, flush=True)

    def starting(self, spec: RepetitionSpec) -> None:
        """A repetition begins (its cooldown counts as part of it)."""
        self._spec, self._phase, self._rep_t0 = spec, "", self.clock()
        self._show()

    def waiting_for_server(self) -> None:
        """The first repetition waits for the forkserver's imports: said, and kept out of the ETA."""
        self.phase("waiting for the worker server to import torch and transformers (once per run)")
        self._server_wait = True

    def cooldown(self, seconds: float) -> None:
        self.phase(f"cooldown {seconds:g} s")

    def phase(self, phase: str) -> None:
        if not phase or phase == self._phase:
            return
        if self._server_wait:  # the worker runs: its repetition's time starts now
            self._server_wait, self._rep_t0 = False, self.clock()
        self._phase = phase
        if self.mode == "lines" and self._spec is not None:
            print(f"[{self.done + 1}/{self.total}] {self._spec.label}: {phase}", file=self.stream, flush=True)
        self._show()

    def finished(self, spec: RepetitionSpec, records: list[RunRecord]) -> None:
        self.done += 1
        if self._rep_t0 is not None:
            self._durations.append(self.clock() - self._rep_t0)
        bad = [r.task for r in records if r.status != "ok"]
        status = f"failed: {', '.join(bad)}" if bad else "ok"
        line = (f"[{self.done}/{self.total}] {spec.label} {status} · elapsed {clock_text(self.elapsed_s())}"
                f" · ETA {clock_text(self.eta_s())}")
        if self.mode in ("lines", "quiet"):
            print(line, file=self.stream, flush=True)
        self._show(advance=True)

    # --- the bar -----------------------------------------------------------------------------

    def _show(self, advance: bool = False) -> None:
        if self.mode != "bar":
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
                                 console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task("", total=self.total, eta="?")
        from rich.markup import escape

        what = f"{self._spec.arm} · {self._phase or 'starting'}" if self._spec else ""
        self._bar.update(self._task, description=escape(what), eta=clock_text(self.eta_s()),
                         advance=1 if advance else 0)


class Steps:
    """`heartbeat_s`: while a step runs, say again every so many seconds that it still runs and for how
    long (a thread calls `tick`); None: only when a step begins (tests drive `tick` themselves)."""

    def __init__(self, title: str, total: int, *, stream=None, clock: Callable[[], float] = time.monotonic,
                 heartbeat_s: Optional[float] = None):
        self.title, self.total, self.done = title, total, 0
        self.stream = stream or sys.stderr
        self.clock = clock
        self._t0 = clock()
        self._status = None
        self._live = is_terminal(self.stream)
        self._name, self._step_t0 = "", self._t0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = None
        if heartbeat_s:
            self._beat = threading.Thread(target=self._heartbeat, args=(heartbeat_s,), daemon=True)
            self._beat.start()

    def _heartbeat(self, every: float) -> None:
        while not self._stop.wait(every):
            self.tick()

    def tick(self) -> None:
        """The current step still runs: say which, and how long it has taken so far."""
        with self._lock:
            if not self.done:
                return
            now = self.clock()
            self._show(f"{self.title}: still {self._name} ({self.done}/{self.total}, {now - self._step_t0:.1f} s in "
                       f"this step, {now - self._t0:.1f} s in all)")

    def step(self, name: str) -> None:
        """A step begins (the previous one has ended)."""
        with self._lock:
            self.done += 1
            self._name, self._step_t0 = name, self.clock()
            self._show(f"{self.title}: {name} ({self.done}/{self.total}, {self._step_t0 - self._t0:.1f} s)")

    def _show(self, text: str) -> None:
        if self._live:
            if self._status is None:
                from rich.console import Console

                self._status = Console(file=self.stream).status("")
                self._status.start()
            from rich.markup import escape

            self._status.update(escape(text))
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
            self._beat = None
        if self._status is not None:
            self._status.stop()
            self._status = None

    def __enter__(self) -> "Steps":
        return self

    def __exit__(self, *exc) -> Optional[bool]:
        self.close()
        return False

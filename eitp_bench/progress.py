"""Progress of a command made of a few long steps (`eitp-bench bounds`): a spinner with the step's
name on a terminal, one plain line per step otherwise, always on stderr (stdout keeps the result)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Optional

HEARTBEAT_S = 1.5  # a step running longer than this says so again: never silent for more than 2 s


def is_terminal(stream) -> bool:
    """Whether a stream is a terminal (a closed or replaced stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


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

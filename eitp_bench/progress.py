"""Progress of a command made of a few long steps (`eitp-bench bounds`): a spinner with the step's
name on a terminal, one plain line per step otherwise, always on stderr (stdout keeps the result)."""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional


def is_terminal(stream) -> bool:
    """Whether a stream is a terminal (a closed or replaced stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Steps:
    def __init__(self, title: str, total: int, *, stream=None, clock: Callable[[], float] = time.monotonic):
        self.title, self.total, self.done = title, total, 0
        self.stream = stream or sys.stderr
        self.clock = clock
        self._t0 = clock()
        self._status = None
        self._live = is_terminal(self.stream)

    def step(self, name: str) -> None:
        """A step begins (the previous one has ended)."""
        self.done += 1
        text = f"{self.title}: {name} ({self.done}/{self.total}, {self.clock() - self._t0:.1f} s)"
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
        if self._status is not None:
            self._status.stop()
            self._status = None

    def __enter__(self) -> "Steps":
        return self

    def __exit__(self, *exc) -> Optional[bool]:
        self.close()
        return False

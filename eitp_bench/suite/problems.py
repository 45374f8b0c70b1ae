"""Problems found in a suite before any work: one line each, all reported together.

A `Problem` names where it came from (the suite file, or the `--set` that introduced it), the
dotted field, the value and what is expected. `SuiteInvalid` is the one `UserError` that carries
every problem found, so a user fixes them in one pass instead of one per attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from eitp_bench.errors import UserError

MAX_VALUE_CHARS = 60  # values are quoted in messages; a 1 MiB string must not become a 1 MiB line
_NO_VALUE = object()


def show_value(value: Any) -> str:
    """repr() of a value, cut short: one line however long or multi-line the value is."""
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 5] + "…" + text[-4:]


@dataclass
class Problem:
    field: str  # dotted path, e.g. "train.batch_size" or "retrieval.distances.2"; "" for the whole file
    expected: str  # what the field should hold (or what is wrong, for problems without one value)
    value: Any = _NO_VALUE
    source: str = ""  # the suite file's label, or "--set key=value"

    @property
    def text(self) -> str:
        if not self.field:
            return self.expected
        if self.value is _NO_VALUE:
            return f"field {self.field!r}: {self.expected}"
        return f"field {self.field!r} has value {show_value(self.value)}: {self.expected}"

    def line(self) -> str:
        return f"{self.source}: {self.text}" if self.source else self.text


class SuiteInvalid(UserError):
    """Every problem of a suite at once; exit 2, nothing was run."""

    def __init__(self, label: str, problems: list[Problem], fix: Optional[str] = None):
        self.problems = list(problems)
        for p in self.problems:
            p.source = p.source or label
        if len(self.problems) == 1:
            p = self.problems[0]
            where = "" if p.source == label else f"{p.source}: "
            message = f"suite {label}: {where}{p.text} (nothing was run)"
        else:
            lines = "\n".join(f"  {p.line()}" for p in self.problems)
            message = f"suite {label}: {len(self.problems)} problems (nothing was run):\n{lines}"
        super().__init__(message, fix=fix or "correct the suite file or the --set value")


def attribute_to_overrides(problems: list[Problem], overrides: dict[str, str], label: str) -> None:
    """Name the `--set` as the source of a problem in a field it set (or below it)."""
    for p in problems:
        for key, assignment in overrides.items():
            if p.field and (p.field == key or p.field.startswith(key + ".") or key.startswith(p.field + ".")):
                p.source = f"--set {assignment}"
        p.source = p.source or label

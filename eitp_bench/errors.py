"""User-facing errors: one message that names the problem and the fix.

Commands raise `UserError`; `cli.main` prints it on one line (plus the fix) and
exits with its code, never with a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: bad input, a missing sensor, a corrupt file."""

    def __init__(self, message: str, *, fix: str | None = None, exit_code: int = 2):
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message} — fix: {self.fix}"


MAX_LINE_CHARS = 600  # an error line longer than this keeps its start and end, the middle elided
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def terminal_line(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """`text` safe to print as one line: control characters (ANSI escapes, newlines inside a value)
    and bidirectional overrides (which reorder what the reader sees) shown as \\u escapes, and a
    line over `limit` characters cut in the middle, saying how much was left out."""
    out = "".join(ch if ch.isprintable() and ch not in _BIDI else
                  ("\n" if ch == "\n" else f"\\u{ord(ch):04x}") for ch in str(text))
    lines = out.split("\n")
    return "\n".join(_elided(line, limit) for line in lines)


def _elided(line: str, limit: int) -> str:
    if len(line) <= limit:
        return line
    keep = (limit - 40) // 2
    return f"{line[:keep]} … ({len(line) - 2 * keep} characters left out) … {line[-keep:]}"

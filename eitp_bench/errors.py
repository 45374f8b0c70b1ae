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

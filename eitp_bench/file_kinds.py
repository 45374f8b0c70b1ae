"""What a path is, in words, for messages that refuse it: "is a directory", "is a FIFO (named pipe)" …

A command that wants a regular file says why it cannot use the path it was given (never "does not
exist" for a directory, a pipe, /dev/null or a symlink loop), and refuses a FIFO before opening it:
opening one blocks until a writer comes, so `--store fifo` would hang.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Optional

KINDS = ((stat.S_ISDIR, "is a directory"), (stat.S_ISFIFO, "is a FIFO (named pipe)"),
         (stat.S_ISCHR, "is a character device"), (stat.S_ISBLK, "is a block device"), (stat.S_ISSOCK, "is a socket"))


def not_a_file(path: os.PathLike | str) -> Optional[str]:
    """Why `path` is not a regular file ("does not exist", "is a directory", "is a symlink loop" …);
    None when it is one (a link to one counts)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a symlink loop"
        if err.errno == errno.ENOENT:
            return "is a dangling symlink" if os.path.islink(path) else "does not exist"
        if err.errno == errno.ENOTDIR:
            return "is under a file, not a folder"
        if err.errno == errno.ENAMETOOLONG:
            return "is a name too long for the file system"
        return f"cannot be examined ({err.strerror})"
    if stat.S_ISREG(mode):
        return None
    for test, words in KINDS:
        if test(mode):
            return words
    return "is not a regular file"


def exists(path: Path) -> bool:
    """Something is at `path` (a symlink loop or dangling link counts: it is not free to be created)."""
    return os.path.lexists(path)

"""How the commands that read a large store ask glibc to give freed large arrays back.

Only those commands (report, compare, regress, history, export, verify) call it, first thing, through
the `reads_a_store` mark they are registered with: never the commands that run workloads (`run`,
`measure`, `calibrate`, `profile`). With a threshold of 512 KiB every larger tensor of a training step
gets a mapping of its own, made and dropped at each allocation, and a run's workers, forked from the
process that called `run`, would inherit it: it would change the speed being measured.
"""

from __future__ import annotations

import functools


def large_arrays_go_back_to_the_system() -> bool:
    """glibc serves an allocation over its mmap threshold with a mapping of its own, returned to the system
    when freed, but raises that threshold to the size of each such block freed (up to 32 MiB): after a large
    read's temporary arrays are freed, the next ones of that size come from the heap, and what they leave
    when freed stays between the objects still alive. A fixed threshold keeps arrays over 512 KiB in
    mappings: `report` at 1 000 000 records 323 → 301 MiB in 6.6 s (128 KiB: 300 MiB but 6.9 s; docs/scale.md).
    True where it was set; other C libraries (musl, macOS) have no such threshold: nothing is done."""
    import ctypes
    import ctypes.util
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    M_MMAP_THRESHOLD = -3  # glibc's malloc.h; setting it also stops the threshold's growth
    return mallopt(M_MMAP_THRESHOLD, 512 * 1024) == 1


def reads_a_store(command):
    """The command, marked as one that reads a store: it asks glibc for the fixed threshold before anything
    else (registered as `app.command(NAME)(reads_a_store(fn))`; tests/test_arrow_allocator.py checks that
    every command with a --store option is marked but `run` and `import`, which write one)."""

    @functools.wraps(command)  # typer reads the options from the wrapped function's signature
    def marked(*args, **kwargs):
        large_arrays_go_back_to_the_system()
        return command(*args, **kwargs)

    marked.reads_a_store = True
    return marked

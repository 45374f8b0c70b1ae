"""The eitp-bench program gives Arrow (pandas' text columns) the system allocator, unless the user chose one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("from eitp_bench.cli import main; code = main(['version']); import pyarrow; "
         "print(pyarrow.default_memory_pool().backend_name)")


@pytest.mark.parametrize("chosen, backend", [(None, "system"), ("mimalloc", "mimalloc")])
def test_the_program_uses_the_system_allocator_for_arrow_unless_told_otherwise(chosen, backend):
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == backend


ALLOCATION_PROBE = """
import ctypes, sys
import numpy as np
from eitp_bench.allocator import large_arrays_go_back_to_the_system

class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    assert large_arrays_go_back_to_the_system()
elif sys.argv[1] != "default":  # a command of the program: what it leaves for the workloads it may start
    from eitp_bench.cli import main
    main(sys.argv[1:])
freed = np.ones(4 * 2**20 // 8)  # a 4 MiB block in its own mapping, then freed
del freed
mapped = libc.mallinfo2().hblkhd
kept = np.ones(2**20 // 8)  # 1 MiB: in a mapping of its own again, or from the heap
print(libc.mallinfo2().hblkhd - mapped >= 2**20)
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc's malloc threshold")
@pytest.mark.parametrize("how, mapped", [("default", False), ("fixed", True), ("version", False),
                                         ("report --store MISSING", True)])
def test_reading_commands_keep_large_arrays_in_mappings_the_system_gets_back(how, mapped, tmp_path):
    """glibc alone raises its mmap threshold after a large block is freed, so the next large arrays come from
    the heap. The commands that read a store fix the threshold (a 1 MiB array after a freed 4 MiB one is
    mapped again), even when they stop at a missing store; the others leave glibc as it is, for the
    workloads `run` starts (eitp_bench/allocator.py)."""
    args = how.replace("MISSING", str(tmp_path / "missing.sqlite")).split()
    out = subprocess.run([sys.executable, "-c", ALLOCATION_PROBE, *args], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == str(mapped)


def _store_option(callback) -> bool:
    import inspect

    return any("--store" in (getattr(p.default, "param_decls", None) or ())
               for p in inspect.signature(callback).parameters.values())


def test_every_command_that_reads_a_store_is_marked_and_no_other():
    """A new command that reads a store cannot forget the threshold unnoticed: every command with a --store
    option is registered through `reads_a_store`, but `run` and `import`, which write one (a run's workers,
    forked from it, must train under glibc's own settings); `verify` reads the store inside a bundle."""
    from eitp_bench.cli import app

    commands = {c.name: c.callback for c in app.registered_commands}
    marked = {name for name, fn in commands.items() if getattr(fn, "reads_a_store", False)}
    with_store = {name for name, fn in commands.items() if _store_option(fn)}
    assert {"run", "import"} <= with_store and "version" in commands  # the option is found where it is
    assert marked == (with_store - {"run", "import"}) | {"verify"}
    assert marked == {"report", "compare", "regress", "history", "export", "verify"}

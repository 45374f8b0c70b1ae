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
from eitp_bench.cli import _large_arrays_go_back_to_the_system

class Info(ctypes.Structure):  # glibc's struct mallinfo2
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    assert _large_arrays_go_back_to_the_system()
freed = np.ones(4 * 2**20 // 8)  # a 4 MiB block in its own mapping, then freed
del freed
mapped = libc.mallinfo2().hblkhd
kept = np.ones(2**20 // 8)  # 1 MiB: in a mapping of its own again, or from the heap
print(libc.mallinfo2().hblkhd - mapped >= 2**20)
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc's malloc threshold")
@pytest.mark.parametrize("fixed", [False, True])
def test_the_program_keeps_large_arrays_in_mappings_the_system_gets_back(fixed):
    """glibc alone raises its mmap threshold after a large block is freed, so the next large arrays come from
    the heap; the program fixes the threshold, and a 1 MiB array after a freed 4 MiB one is mapped again."""
    out = subprocess.run([sys.executable, "-c", ALLOCATION_PROBE, "fixed" if fixed else "default"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-1] == str(fixed)

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

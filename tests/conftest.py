"""Shared test set-up.

CI machines have 2 cores shared by pytest and the workers it spawns; torch's default
of one thread per core oversubscribes them (a small matmul went from 18 µs to 10 ms),
so tests run torch on one thread. Tests import the fakes in this folder directly
(`from fake_powercap import FakePowercap`): pytest puts tests/ on sys.path.

The tests mirror the packages (tests/store/ for eitp_bench/store/, …). A few import a helper from another
test module by its name (`from test_store import make_record`, `from test_runner import fake_python`), so
every folder of test modules is on sys.path too; test file names stay unique across folders.
"""

import os
import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent
for _folder in sorted(_TESTS.iterdir()):
    if _folder.is_dir() and any(_folder.glob("test_*.py")) and str(_folder) not in sys.path:
        sys.path.append(str(_folder))  # after tests/ itself: fake_pynvml/ (a pynvml) is never added

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


import pytest


@pytest.fixture(autouse=True)
def _private_store(tmp_path, monkeypatch):
    """Every test gets its own default results store: nothing is written into the checkout."""
    monkeypatch.setenv("EITP_BENCH_STORE", str(tmp_path / "store" / "results.sqlite"))

"""Shared test set-up.

CI machines have 2 cores shared by pytest and the workers it spawns; torch's default
of one thread per core oversubscribes them (a small matmul went from 18 µs to 10 ms),
so tests run torch on one thread. Tests import the fakes in this folder directly
(`from fake_powercap import FakePowercap`): pytest puts tests/ on sys.path.
"""

import os

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

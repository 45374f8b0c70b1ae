"""`import pynvml` answered by tests/fake_nvml.py, for processes a test cannot patch (torchrun's ranks).

Put this folder first on PYTHONPATH and set EITP_TEST_FAKE_GPU_WATTS to one constant power per fake
GPU ("100,300": two GPUs, gpu:0 at 100 W and gpu:1 at 300 W); each process gets its own simulated
GPUs on the real clock, so the sensors a run reads are known.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for fake_nvml

from fake_nvml import FakeGpu, FakeNvml  # noqa: E402

_watts = [float(w) for w in os.environ.get("EITP_TEST_FAKE_GPU_WATTS", "300").split(",")]
sys.modules[__name__] = FakeNvml(gpus=[FakeGpu(watts=lambda t, w=w: w) for w in _watts])

"""`import pynvml` answered by tests/fake_nvml.py, for processes a test cannot patch (torchrun's ranks).

Put this folder first on PYTHONPATH and set EITP_TEST_FAKE_GPU_WATTS to one constant power per fake
GPU ("100,300": two GPUs, gpu:0 at 100 W and gpu:1 at 300 W; "denied" for a GPU that answers
NVML_ERROR_NO_PERMISSION; EITP_TEST_FAKE_GPU_POWER_THROTTLE=0.3: every GPU power-capped 30 % of the
time); each process gets its own simulated
GPUs on the real clock, so the sensors a run reads are known.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, for fake_nvml

from fake_nvml import FakeGpu, FakeNvml  # noqa: E402

_specs = os.environ.get("EITP_TEST_FAKE_GPU_WATTS", "300").split(",")  # "denied": another job's GPU
# EITP_TEST_FAKE_GPU_POWER_THROTTLE: the share of time every fake GPU's power cap holds its clocks down
_throttle = float(os.environ.get("EITP_TEST_FAKE_GPU_POWER_THROTTLE", "0"))
sys.modules[__name__] = FakeNvml(gpus=[FakeGpu(denied=True) if w == "denied" else
                                       FakeGpu(watts=lambda t, w=float(w): w, power_throttle_share=_throttle)
                                       for w in _specs])

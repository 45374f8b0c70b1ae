"""NVIDIA GPU energy through NVML: the `NvmlMeter` and what it stands on. One module per job:

- binding.py: the pynvml binding in our words (loading it, its errors, its values);
- discovery.py: which GPUs a meter opens, in torch's order (CUDA_VISIBLE_DEVICES, UUIDs, MIG, another
  job's GPUs left out with the reason);
- state.py: each GPU's running state and the marks a window is made of (the counter's update period);
- meter.py: `NvmlMeter`: the counter read at every mark, the sampler thread, the fault rules (reset,
  implausible jump, slow read, short window) and the window's energy;
- status.py: what `doctor` and `info()` say about NVML and each GPU.

May import: energy/base, energy/crosscheck, energy/gpu_state and the shared vocabulary.
"""

from eitp_bench.energy.nvml.binding import FIX_LIBRARY, FIX_PERMISSION, FIX_PYNVML, load_pynvml
from eitp_bench.energy.nvml.discovery import SkippedGpu, VisibleGpu, torch_device_uuids, visible_gpus
from eitp_bench.energy.nvml.state import (
    DEFAULT_POWER_LIMIT_W, GpuMark, NvmlMark, PERIOD_HISTORY, PERIOD_SPAN, inferred_period,
)
from eitp_bench.energy.nvml.meter import (
    ARCH_AMPERE, CALIBRATE_POLL_S, CALIBRATE_S, FI_DEV_POWER_INSTANT, JUMP_FACTOR, JUMP_SLACK_S, NvmlMeter,
    SLOW_READ_S, TEMPERATURE_POLL_S,
)
from eitp_bench.energy.nvml.status import power_scope

__all__ = [
    "ARCH_AMPERE", "CALIBRATE_POLL_S", "CALIBRATE_S", "DEFAULT_POWER_LIMIT_W", "FIX_LIBRARY", "FIX_PERMISSION",
    "FIX_PYNVML", "FI_DEV_POWER_INSTANT", "GpuMark", "JUMP_FACTOR", "JUMP_SLACK_S", "NvmlMark", "NvmlMeter",
    "PERIOD_HISTORY", "PERIOD_SPAN", "SLOW_READ_S", "SkippedGpu", "TEMPERATURE_POLL_S", "VisibleGpu",
    "inferred_period", "load_pynvml", "power_scope", "torch_device_uuids", "visible_gpus",
]

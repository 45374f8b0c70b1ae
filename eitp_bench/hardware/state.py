"""The machine's energy-relevant state for a run's provenance (`hardware.state`; docs/hardware-state.md).

    {"driver_version": "550.54.15",
     "gpus": [{device, uuid, serial, persistence_mode, ecc_mode, mig_mode, clocks_locked, power_profile,
               app_sm_clock_mhz, default_app_sm_clock_mhz, power_limit_w, sm_clock_mhz, mem_clock_mhz,
               temperature_c}],
     "cpu": {driver, governors, min_mhz, max_mhz, hw_min_mhz, hw_max_mhz, boost, boost_source, smt}}

Read once at the start of a repetition; what changes during a window is on each GPU energy entry
(`hw_state`, energy/gpu_state.py). Never raises: a part that cannot be read is None or empty.
"""

from __future__ import annotations

from typing import Any, Optional

from eitp_bench.hardware.cpu_state import cpu_state


def run_state(nvml_meter: Any = None, cpu_root: Optional[str] = None) -> dict[str, Any]:
    gpus, driver = [], None
    if nvml_meter is not None:
        try:
            gpus = nvml_meter.static_state()
        except Exception:  # the state is a record of facts; a failing read leaves it out
            gpus = []
        try:
            driver = nvml_meter.info().get("driver_version")
        except Exception:
            driver = None
    try:
        cpu = cpu_state(cpu_root)
    except Exception:
        cpu = {}
    return {"driver_version": driver, "gpus": gpus, "cpu": cpu}

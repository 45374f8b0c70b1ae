"""CPU energy from RAPL counters, read straight from the powercap sysfs tree: the `RaplMeter` and what it
stands on. One module per job:

- zones.py: the tree's zones and what each measures (package, core, uncore, dram, psys, die zones),
  their stated maximum power, and the message when the tree cannot be read;
- unwrap.py: the fault rule of one counter step (wraparound, implausible jump);
- meter.py: `RaplMeter`: the poller that never lets two wraps pass, marks, mirrored or summed dies,
  stalled counters, and the window's energy.

May import: energy/base and the shared vocabulary.
"""

from eitp_bench.energy.rapl.zones import (
    CONSTRAINT_FILE, DEFAULT_PMAX_W, DEFAULT_ROOT, DIE_NAME, Discovery, FALLBACK_PMAX_W, PACKAGE_NAME,
    PERMISSION_FIX, ROOT_ENV, Reader, STATED_PMAX_FACTOR, ZONE_DIR, Zone, discover, read_sysfs, resolve_root,
)
from eitp_bench.energy.rapl.unwrap import JUMP_GRACE_S, JUMP_RESOLUTION_J, UPDATE_PERIOD_S, unwrap_step
from eitp_bench.energy.rapl.meter import (
    DEFAULT_HISTORY, MAX_FAULTS, MIRROR_TOL_S, POLL_CAP_S, POLL_FLOOR_S, RaplMark, RaplMeter, STALL_READS,
    STALL_S,
)

__all__ = [
    "CONSTRAINT_FILE", "DEFAULT_HISTORY", "DEFAULT_PMAX_W", "DEFAULT_ROOT", "DIE_NAME", "Discovery",
    "FALLBACK_PMAX_W", "JUMP_GRACE_S", "JUMP_RESOLUTION_J", "MAX_FAULTS", "MIRROR_TOL_S", "PACKAGE_NAME",
    "PERMISSION_FIX", "POLL_CAP_S", "POLL_FLOOR_S", "ROOT_ENV", "RaplMark", "RaplMeter", "Reader", "STALL_READS",
    "STALL_S", "STATED_PMAX_FACTOR", "UPDATE_PERIOD_S", "ZONE_DIR", "Zone", "discover", "read_sysfs",
    "resolve_root", "unwrap_step",
]

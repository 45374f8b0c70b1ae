"""The fault rule of one counter step: `unwrap_step` unwraps a step of a counter that wraps at its range
and refuses a step no real zone can make (above its maximum power × the time, or one wrap cannot explain).
"""

from __future__ import annotations

from typing import Optional

from eitp_bench.flags import Flag, flag


UPDATE_PERIOD_S = 0.001
# Slack added to dt when judging a jump: counters update in ~1 ms steps and a read at either end of
# a step can land just after a late update, so a step may legitimately hold two updates more.
JUMP_GRACE_S = 2 * UPDATE_PERIOD_S
# The smallest forward jump every step is judged able to catch: the poll period is at most this over
# Pmax (4 ms at the 1000 W default), so a jump of JUMP_RESOLUTION_J + Pmax × grace exceeds Pmax × dt.
JUMP_RESOLUTION_J = 4.0


def unwrap_step(prev_raw: int, new_raw: int, dt: float, range_uj: Optional[int], pmax_w: float,
                grace_s: float = JUMP_GRACE_S) -> tuple[int, int, Optional[Flag]]:
    """(delta µJ, wraps, reason). A reason means the step cannot be trusted: the zone turns invalid."""
    wraps = 0
    delta = new_raw - prev_raw
    if delta < 0:
        if range_uj is None:
            return 0, 0, flag("wrap_unrepairable", f"counter went back from {prev_raw} to {new_raw} µJ but "
                              "max_energy_range_uj is unreadable, so the wrap cannot be corrected")
        delta += range_uj
        wraps = 1
    limit_uj = pmax_w * (max(dt, 0.0) + grace_s) * 1e6
    if delta > limit_uj:
        what = (f"counter went back from {prev_raw} to {new_raw} µJ; as one wrap that is" if wraps
                else "counter jumped by")
        return 0, 0, flag("implausible_jump", f"{what} {delta / 1e6:.3f} J in {dt:.3f} s, over the {pmax_w:g} W "
                          "maximum (a counter reset or missed wraps)")
    if range_uj is not None and pmax_w * dt * 1e6 >= delta + range_uj:
        return 0, 0, flag("wrap_unrepairable", f"{dt:.3f} s between reads is long enough for a whole counter "
                          f"range at {pmax_w:g} W ({range_uj / 1e6 / pmax_w:.3f} s): wraps may have been missed")
    return delta, wraps, None

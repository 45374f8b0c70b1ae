"""A GPU's state at a window edge, and what it did in between (docs/hardware-state.md).

Energy depends on more than the work: the enforced power limit, locked clocks and throttling all
move joules. NVML gives, per GPU:
- the clock-event ("throttle") reasons active now: a bitmask (nvmlDeviceGetCurrentClocksEventReasons,
  called ...ThrottleReasons before driver 535);
- violation counters (nvmlDeviceGetViolationStatus): cumulative nanoseconds during which clocks were
  held down by the power cap or by temperature. The difference between two edges over the window's
  length is the share of the window spent throttled: a rate, not a snapshot, so a brief cap between two
  reads is not missed.
Every read is best effort: a call the driver does not support (or that fails) leaves its field None.
A window that spent more than THROTTLE_SHARE of its time power- or thermal-capped gets a coded flag
(`throttled_power`, `throttled_thermal`); the claims judge names and skips such windows.
"""

from __future__ import annotations

from typing import Any, Optional

from eitp_bench.flags import Flag, flag

# A window throttled for more than this share of its time is flagged (10 %: a few % of cap time is
# normal boost behaviour on a busy GPU; past a tenth, the clocks the figure ran at are not the board's).
THROTTLE_SHARE = 0.10

# nvmlPerfPolicyType_t
PERF_POLICY = {"power": 0, "thermal": 1}

# nvmlClocksEventReasons bits (the same values under their older ...ThrottleReason names)
CLOCK_EVENT_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


def decode_reasons(mask: Optional[int]) -> Optional[list[str]]:
    if mask is None:
        return None
    return [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]


def _ask(N: Any, fn: str, *args: Any) -> Any:
    call = getattr(N, fn, None)
    if call is None:
        return None
    try:
        return call(*args)
    except Exception:  # not supported, no permission, a binding fault: the fact is unknown
        return None


def _number(v: Any, scale: float = 1.0) -> Optional[float]:
    try:
        return None if v is None else float(v) / scale
    except (TypeError, ValueError):
        return None


def read_edge(N: Any, handle: Any) -> dict[str, Any]:
    """What changes during a window, read at one edge: limit, clocks, temperature, reasons, violations."""
    clock_sm, clock_mem = getattr(N, "NVML_CLOCK_SM", 1), getattr(N, "NVML_CLOCK_MEM", 2)
    reasons = _ask(N, "nvmlDeviceGetCurrentClocksEventReasons", handle)
    if reasons is None:
        reasons = _ask(N, "nvmlDeviceGetCurrentClocksThrottleReasons", handle)
    violations = {}
    for kind, policy in PERF_POLICY.items():
        v = _ask(N, "nvmlDeviceGetViolationStatus", handle, policy)
        violations[kind] = _number(getattr(v, "violationTime", None))
    return {
        "power_limit_w": _number(_ask(N, "nvmlDeviceGetEnforcedPowerLimit", handle), 1000),
        "sm_clock_mhz": _number(_ask(N, "nvmlDeviceGetClockInfo", handle, clock_sm)),
        "mem_clock_mhz": _number(_ask(N, "nvmlDeviceGetClockInfo", handle, clock_mem)),
        "temperature_c": _number(_ask(N, "nvmlDeviceGetTemperature", handle, getattr(N, "NVML_TEMPERATURE_GPU", 0))),
        "reasons": int(reasons) if isinstance(reasons, int) else None,
        "violation_ns": violations,
    }


def read_edge_temperature(N: Any, handle: Any) -> Optional[float]:
    return _number(_ask(N, "nvmlDeviceGetTemperature", handle, getattr(N, "NVML_TEMPERATURE_GPU", 0)))


def read_static(N: Any, handle: Any) -> dict[str, Any]:
    """What is set once per run: board identity, persistence, ECC, MIG, clocks locked, power profile."""
    clock_sm = getattr(N, "NVML_CLOCK_SM", 1)
    app = _number(_ask(N, "nvmlDeviceGetApplicationsClock", handle, clock_sm))
    default_app = _number(_ask(N, "nvmlDeviceGetDefaultApplicationsClock", handle, clock_sm))
    reasons = _ask(N, "nvmlDeviceGetCurrentClocksEventReasons", handle)
    if reasons is None:
        reasons = _ask(N, "nvmlDeviceGetCurrentClocksThrottleReasons", handle)
    ecc = _ask(N, "nvmlDeviceGetEccMode", handle)
    mig = _ask(N, "nvmlDeviceGetMigMode", handle)
    uuid, serial = _ask(N, "nvmlDeviceGetUUID", handle), _ask(N, "nvmlDeviceGetSerial", handle)
    return {
        "uuid": _text(uuid),
        "serial": _text(serial),
        "persistence_mode": _ask(N, "nvmlDeviceGetPersistenceMode", handle),
        "ecc_mode": _first(ecc),
        "mig_mode": _first(mig),
        "app_sm_clock_mhz": app,
        "default_app_sm_clock_mhz": default_app,
        # NVML has no getter for `nvidia-smi -lgc`; locked or lowered clocks show as application clocks
        # set away from their default, or as the applications-clocks clock-event reason being active.
        "clocks_locked": clocks_locked(app, default_app, reasons),
        "power_profile": power_profile(N, handle),
    }


def clocks_locked(app: Optional[float], default_app: Optional[float], reasons: Any) -> Optional[bool]:
    if isinstance(reasons, int) and reasons & 0x2:
        return True
    if app is None or default_app is None:
        return None if not isinstance(reasons, int) else False
    return app != default_app


def _text(v: Any) -> Optional[str]:
    if v is None:
        return None
    return v.decode() if isinstance(v, bytes) else str(v)


def _first(v: Any) -> Optional[int]:
    """NVML's (current, pending) pairs: the current one."""
    try:
        return int(v[0]) if isinstance(v, (list, tuple)) else (None if v is None else int(v))
    except (TypeError, ValueError):
        return None


def power_profile(N: Any, handle: Any) -> Optional[str]:
    """The enforced workload power profiles (NVML 12.8+, Blackwell/Hopper drivers that have them), as
    their NVML names joined by '+' ("none" for an empty mask); None where the driver has none."""
    struct = getattr(N, "c_nvmlWorkloadPowerProfileCurrentProfiles_v1_t", None)
    call = getattr(N, "nvmlDeviceWorkloadPowerProfileGetCurrentProfiles", None)
    if struct is None or call is None:
        return None
    try:
        import ctypes

        profiles = struct()
        profiles.version = N.nvmlWorkloadPowerProfileCurrentProfiles_v1
        call(handle, ctypes.byref(profiles))
        words = [int(w) for w in profiles.enforcedProfilesMask.mask]
    except Exception:  # not supported, or a binding without the struct
        return None
    names = {getattr(N, k): k.removeprefix("NVML_POWER_PROFILE_") for k in dir(N)
             if k.startswith("NVML_POWER_PROFILE_") and isinstance(getattr(N, k), int)}
    bits = [32 * i + b for i, w in enumerate(words) for b in range(32) if w >> b & 1]
    return "+".join(names.get(b, str(b)) for b in bits) or "none"


def window_state(begin: Optional[dict], end: Optional[dict], duration_s: float,
                 temperatures: tuple[float, ...] = ()) -> Optional[dict[str, Any]]:
    """The window's state summary from its two edge reads (and temperatures polled in between)."""
    if not begin or not end:
        return None
    temps = [t for t in (begin.get("temperature_c"), *temperatures, end.get("temperature_c")) if t is not None]
    throttle = {}
    for kind in PERF_POLICY:
        a, b = (begin.get("violation_ns") or {}).get(kind), (end.get("violation_ns") or {}).get(kind)
        throttle[kind] = (min(1.0, max(0.0, (b - a) / 1e9 / duration_s))
                          if a is not None and b is not None and duration_s > 0 else None)
    reasons = sorted(set(decode_reasons(begin.get("reasons")) or []) | set(decode_reasons(end.get("reasons")) or []))
    return {
        "power_limit_w": _same_or_pair(begin.get("power_limit_w"), end.get("power_limit_w")),
        "sm_clock_mhz": [begin.get("sm_clock_mhz"), end.get("sm_clock_mhz")],
        "mem_clock_mhz": [begin.get("mem_clock_mhz"), end.get("mem_clock_mhz")],
        "temperature_c": {"start": begin.get("temperature_c"), "end": end.get("temperature_c"),
                          "max": max(temps) if temps else None},
        "clock_event_reasons": reasons if begin.get("reasons") is not None or end.get("reasons") is not None else None,
        "throttle_share": throttle,
        "throttle_s": {k: (None if v is None else v * duration_s) for k, v in throttle.items()},
        "duration_s": duration_s,
    }


def _same_or_pair(a: Any, b: Any) -> Any:
    return a if a == b else [a, b]


def throttle_flags(state: Optional[dict], threshold: float = THROTTLE_SHARE) -> list[Flag]:
    """`throttled_power` / `throttled_thermal` for a window capped more than `threshold` of its time."""
    out = []
    for kind, share in ((state or {}).get("throttle_share") or {}).items():
        if share is not None and share > threshold:
            message = (f"{kind} capping held the clocks down {share:.0%} of the window "
                       f"({share * state['duration_s']:.2f} s of {state['duration_s']:.2f} s; "
                       f"limit {threshold:.0%}, NVML violation counters)")
            out.append(flag("throttled_power", message) if kind == "power" else flag("throttled_thermal", message))
    return out


def merge_states(states: list[Optional[dict]]) -> Optional[dict]:
    """One summary for a phase measured in segments: throttled time adds up over the summed duration."""
    states = [s for s in states if s]
    if not states:
        return None
    if len(states) == 1:
        return states[0]
    total = sum(s["duration_s"] for s in states)
    throttle_s = {}
    for kind in PERF_POLICY:
        parts = [(s.get("throttle_s") or {}).get(kind) for s in states]
        throttle_s[kind] = None if any(p is None for p in parts) else sum(parts)
    temps = [s["temperature_c"]["max"] for s in states if s["temperature_c"]["max"] is not None]
    limits = []
    for s in states:
        for v in (s["power_limit_w"] if isinstance(s["power_limit_w"], list) else [s["power_limit_w"]]):
            if v not in limits:
                limits.append(v)
    reasons = [s.get("clock_event_reasons") for s in states]
    return {
        "power_limit_w": limits[0] if len(limits) == 1 else limits,
        "sm_clock_mhz": [states[0]["sm_clock_mhz"][0], states[-1]["sm_clock_mhz"][1]],
        "mem_clock_mhz": [states[0]["mem_clock_mhz"][0], states[-1]["mem_clock_mhz"][1]],
        "temperature_c": {"start": states[0]["temperature_c"]["start"], "end": states[-1]["temperature_c"]["end"],
                          "max": max(temps) if temps else None},
        "clock_event_reasons": None if all(r is None for r in reasons) else sorted({x for r in reasons for x in r or []}),
        "throttle_share": {k: (None if v is None or total <= 0 else min(1.0, v / total)) for k, v in throttle_s.items()},
        "throttle_s": throttle_s,
        "duration_s": total,
    }

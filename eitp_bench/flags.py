"""Coded reasons attached to an energy entry: every flag code is declared here, once.

A flag is a code (a short snake_case identifier that readers group and filter on) plus a message
(for people: the numbers, the sensor's own words). Messages may contain any character, `;` included
(NVML's errors do), so flags travel as lists, never as joined strings.

    flag("short_window", "window shorter than the counter update period (~1 ms)")

Writers call `flag()`, which refuses an undeclared code; `Flag` itself accepts any snake_case code,
so records written by a newer eitp-bench with codes this one does not know still load.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# code -> what it means. Add a code here before a meter uses it.
CODES: dict[str, str] = {
    # the domain could not be read: joules are None
    "unreadable": "the sensor or counter could not be read (I/O error, no counter and no power reading)",
    "permission_denied": "reading the counter needs privileges (RAPL energy_uj is root-only since CVE-2020-8694)",
    "nvml_error": "an NVML call failed during or at the edge of the window",
    "wrap_unrepairable": "the counter wrapped and the wrap cannot be corrected (range unknown, or reads too far apart)",
    "implausible_jump": "the counter stepped by more than the zone's maximum power allows (a reset or missed wraps)",
    "reset": "a counter went backwards (driver reload, GPU reset) inside the window",
    # joules are kept, with a caveat
    "short_window": "window shorter than the counter's update period: 0 or 1 steps, or the sampled integral instead",
    "few_updates": "window under 10 counter updates: quantisation error up to one update's energy",
    "stalled": "the counter did not move for longer than its update period allows (RAPL: whole window -> joules "
               "null, part of it -> kept with the span; NVML: the sampled integral is reported instead)",
    "sampled_fallback": "no usable energy counter: power samples are integrated over time",
    "crosscheck_mismatch": "the energy counter and the integrated power samples disagree beyond the tolerance",
    "averaged_power": "power samples are the driver's 1-s average: they lag changes in power",
    "module_scope": "power read at module scope (Grace Hopper: GPU + CPU + memory), not the GPU alone",
    "mig_whole_gpu": "MIG: the figure is the whole GPU's, not one MIG instance's (energy claims refused)",
    "grace_hopper": "Grace Hopper superchip: whether the counter covers the GPU alone or the module is not stated",
    # what a window's measured total covers (energy/coverage.py)
    "cpu_not_measured": "the measured total covers the GPUs only: no CPU sensor (RAPL) reads here",
    "cpu_work_not_measured": "the work ran on the CPU, which no sensor measured: the total is the GPUs' draw only",
    "die_sum": "package energy summed from per-die zones (no plain package zone)",
    "die_mirror": "per-die zones advance identically (one socket counter mirrored per die, AMD): counted once",
    "history_truncated": "older reads fell out of the ring buffer: max_gap_s covers only the reads kept",
    "slow_read": "a sensor read took longer than its bound: its values were dropped, the window kept its own edges",
    "few_readings": "a polled meter (node power) took fewer than 2 readings inside the window: the readings "
                    "nearest its edges are held",
    "read_failed": "some readings of a polled power meter failed inside the window: the others are integrated "
                   "(max_gap_s shows the hole)",
    "layers_mismatch": "the node's meter read less than GPU + CPU package + DRAM together, beyond the meters' "
                       "stated uncertainties: one of the readings is wrong (energy/layers.py)",
    "not_steady": "energy window shorter than the steady-state minimum (5 s and 50 counter updates, energy/steady.py)",
    # the board's state over the window (energy/gpu_state.py, NVML violation counters)
    "throttled_power": "the GPU's clocks were held down by its power cap for more than 10 % of the window "
                       "(gpu_state.THROTTLE_SHARE): energy and speed claims skip the window and name it",
    "throttled_thermal": "the GPU's clocks were held down by temperature for more than 10 % of the window "
                         "(gpu_state.THROTTLE_SHARE): energy and speed claims skip the window and name it",
    # run conditions (isolation check at the start of a repetition, in provenance.hardware.isolation)
    "gpu_shared": "another process was running on a measured GPU when the repetition started",
    "cpu_busy": "another process was using over half a CPU core when the repetition started",
    # estimates
    "estimated": "estimated (CPU time × TDP ÷ cores), not measured",
    "tdp_default": "no hardware profile: the estimate's TDP is a per-core default",
    "children_cpu_time": "a child's CPU time counts only once it has been waited for",
    # numbers that are not numbers
    "not_finite": "the value was NaN or an infinity: stored as null (missing), never as a number",
    # quality targets
    "target_not_below_zero_shot": "the quality target is at or above the untrained model's (zero-shot) validation "
                                  "loss: reaching it says nothing, so no time or energy to target is recorded",
    "negative": "an energy below zero (no meter reads one: a broken or edited record): stored as null",
    # record upgrades
    "legacy": "a plain-text flag from a schema-1 record whose reason could not be recognised",
}

# Caveats that make a kept figure unfit to judge an energy claim on: such windows are skipped (and
# counted) by the claims judge. Scope notes (die_sum, die_mirror, averaged_power …) do not disqualify.
FAULT_CODES = frozenset({"stalled", "slow_read", "short_window", "few_updates", "crosscheck_mismatch", "not_steady",
                         "layers_mismatch"})

# The GPU was capped (energy/gpu_state.py): energy and speed claims skip these windows and name them.
THROTTLE_CODES = frozenset({"throttled_power", "throttled_thermal"})

CODE_PATTERN = r"^[a-z][a-z0-9_]*$"


class Flag(BaseModel):
    """One coded reason: `code` from CODES, `message` for people."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=CODE_PATTERN)
    message: str


def flag(code: str, message: str) -> Flag:
    """A Flag with a declared code; ValueError for an undeclared one (a typo in a writer)."""
    if code not in CODES:
        raise ValueError(f"undeclared flag code {code!r}: declare it in eitp_bench/flags.py")
    return Flag(code=code, message=message)


# Schema-1 records carried messages only. These substrings of the messages eitp-bench wrote then
# recover their codes; the first match wins, so the more specific patterns come first.
_LEGACY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("during or at the edge of this window", "nvml_error"),  # our suffix on any NVML error text
    ("PermissionError", "permission_denied"),
    ("permission denied", "permission_denied"),
    ("max_energy_range_uj is unreadable", "wrap_unrepairable"),
    ("W maximum", "implausible_jump"),  # "counter jumped by … over the 1000 W maximum (… missed wraps)"
    ("wrap", "wrap_unrepairable"),
    ("went backwards", "reset"),
    ("window shorter than", "short_window"),
    ("window under 10 counter updates", "few_updates"),
    ("did not move", "stalled"),
    ("no energy counter", "sampled_fallback"),
    ("energy counter unreadable at start", "sampled_fallback"),
    ("cross-check", "crosscheck_mismatch"),
    ("1-s average", "averaged_power"),
    ("NVML_POWER_SCOPE_MODULE", "module_scope"),
    ("MIG mode", "mig_whole_gpu"),
    ("sum of die zones", "die_sum"),
    ("history buffer", "history_truncated"),
    ("timeline capacity exceeded", "history_truncated"),
    ("estimated from CPU time", "estimated"),
    ("TDP default", "tdp_default"),
    ("children's CPU time", "children_cpu_time"),
    ("unreadable", "unreadable"),
    ("read failed", "unreadable"),
    ("not readable", "unreadable"),
    ("neither an energy counter nor power", "unreadable"),
    ("no power reading", "unreadable"),
)


def infer_code(message: str) -> str:
    """The code of a schema-1 plain-text flag, or "legacy" when it is not one eitp-bench wrote."""
    for needle, code in _LEGACY_PATTERNS:
        if needle in message:
            return code
    return "legacy"


def legacy_flag(message: str) -> Flag:
    """A schema-1 flag string as a Flag; the message is kept exactly as it was."""
    return Flag(code=infer_code(message), message=message)

"""The whole node's input power from the BMC over IPMI DCMI: `ipmitool dcmi power reading`.

ipmitool prints, among other lines, `Instantaneous power reading:   220 Watts` and
`Power reading state is:   activated`; a deactivated state means the BMC has no valid reading.
Only the local (in-band) interface is used: no host or password ever reaches a command line.
Available when ipmitool is on PATH and the reading answers; `EITP_BENCH_IPMI=0` switches it off.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any, Optional

from eitp_bench.energy.base import MeterStatus
from eitp_bench.energy.node_power import NODE_DEVICE, NODE_DOMAIN, NodePowerMeter, NodeReadError, node_info

COMMAND = ("dcmi", "power", "reading")
TIMEOUT_S = 5.0  # a BMC that does not answer in this long is not polled at 1 Hz
_READING = re.compile(r"Instantaneous power reading:\s*([0-9]+(?:\.[0-9]+)?)\s*Watts", re.IGNORECASE)
_STATE = re.compile(r"Power reading state is:\s*(\w+)", re.IGNORECASE)
_PERIOD = re.compile(r"Sampling period:\s*([0-9]+)\s*Seconds", re.IGNORECASE)

FIX_TOOL = ("install ipmitool (e.g. apt install ipmitool) and load the ipmi_devintf and ipmi_si kernel modules; "
            "reading /dev/ipmi0 needs root or a group with access to it")


def parse_reading(text: str) -> float:
    """Watts from `ipmitool dcmi power reading` output; NodeReadError when there is no valid reading."""
    state = _STATE.search(text)
    if state and state.group(1).lower() != "activated":
        raise NodeReadError(f"the BMC's power reading state is {state.group(1)!r} (no valid reading)")
    found = _READING.search(text)
    if not found:
        raise NodeReadError("no 'Instantaneous power reading: N Watts' line in ipmitool's output")
    return float(found.group(1))


def run_ipmitool(tool: str) -> str:
    """The command's stdout; NodeReadError naming the failure (its last stderr line) otherwise."""
    try:
        done = subprocess.run([tool, *COMMAND], capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise NodeReadError(f"ipmitool dcmi power reading did not answer within {TIMEOUT_S:g} s") from None
    except OSError as err:
        raise NodeReadError(f"cannot run {tool}: {err.strerror}") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise NodeReadError(f"ipmitool dcmi power reading failed: {last}")
    return done.stdout


class IpmiDcmiMeter(NodePowerMeter):
    name = "ipmi"

    def __init__(self, *, tool: Optional[str] = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.tool = tool or shutil.which("ipmitool") or "ipmitool"
        self._period: Optional[int] = None

    def read_watts(self) -> float:
        text = run_ipmitool(self.tool)
        period = _PERIOD.search(text)
        if period:
            self._period = int(period.group(1))
        return parse_reading(text)

    def info(self) -> dict[str, Any]:
        return node_info(self, source="ipmitool dcmi power reading", bmc_sampling_period_s=self._period)

    @classmethod
    def probe(cls, env: Optional[dict[str, str]] = None, **_: Any) -> list[MeterStatus]:
        env = os.environ if env is None else env
        status = dict(meter=cls.name, device=NODE_DEVICE, domain=NODE_DOMAIN)
        if env.get("EITP_BENCH_IPMI", "").strip().lower() in ("0", "off", "no", "false"):
            return [MeterStatus(**status, available=False, reason="switched off by EITP_BENCH_IPMI=0",
                                fix="unset EITP_BENCH_IPMI to read the node's power over IPMI DCMI")]
        tool = shutil.which("ipmitool")
        if tool is None:
            return [MeterStatus(**status, available=False, reason="ipmitool is not on PATH (node power over IPMI DCMI)",
                                fix=FIX_TOOL)]
        try:
            watts = parse_reading(run_ipmitool(tool))
        except NodeReadError as err:
            return [MeterStatus(**status, available=False, reason=str(err),
                                fix="the BMC must support DCMI power readings (`ipmitool dcmi power reading` "
                                    "answers); " + FIX_TOOL)]
        return [MeterStatus(**status, available=True,
                            reason=f"ipmitool dcmi power reading: {watts:g} W now (whole node, sampled)",
                            details={"method": "sampled", "tool": tool})]

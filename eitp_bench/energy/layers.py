"""Does the node's meter add up? node ≥ GPU + CPU package + DRAM, within the meters' stated uncertainties.

The wall (or BMC) reading of a node contains everything the component meters read plus fans, PSU
conversion loss, NICs and disks, so in every window node joules ≥ the measured parts. When they do
not, even after giving every reading its stated error in the direction that would reconcile them,
one of the readings is wrong: every entry of that check (the node's and the parts') gets a
`layers_mismatch` flag (a fault code: energy claims skip the window). The remainder is shown.

Stated relative uncertainties per meter (what a vendor documents for its reading, not a measurement
of this machine): NVML ±5 % (NVIDIA's documented board power accuracy), RAPL ±5 % (a model-based
counter, validated within a few per cent against wall meters), BMC readings ±5 % (NodePowerMeter).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

from eitp_bench.energy.base import ADDITIVE_DOMAINS
from eitp_bench.flags import flag
from eitp_bench.records import EnergyEntry

NODE_DOMAIN = "node"
STATED_UNCERTAINTY = {"nvml": 0.05, "rapl": 0.05, "pyrapl": 0.05, "ipmi": 0.05, "redfish": 0.05}
DEFAULT_UNCERTAINTY = 0.05


@dataclass
class Layers:
    node_meter: str
    node_joules: float
    parts_joules: float  # GPU + CPU package + DRAM (valid measured entries)
    remainder_joules: float  # node − parts: fans, PSU loss, NICs, disks …
    tolerance_joules: float  # the stated uncertainties, all in the direction that reconciles
    adds_up: bool
    host: Optional[str] = None  # multi-node repetitions: the host whose node and parts these are

    def as_dict(self) -> dict:
        return asdict(self)


def _u(entry: EnergyEntry) -> float:
    return STATED_UNCERTAINTY.get(entry.meter, DEFAULT_UNCERTAINTY)


def _parts(energy: list[EnergyEntry], host: Optional[str]) -> list[EnergyEntry]:
    """The valid measured gpu/package/dram entries read on `host` (a multi-node window has each host's)."""
    return [e for e in energy if e.valid and e.method in ("counter", "sampled") and e.domain in ADDITIVE_DOMAINS
            and e.host == host]


def layers_of(energy: list[EnergyEntry]) -> list[Layers]:
    """One check per valid node entry against its host's valid measured parts; [] without both."""
    out = []
    for node in [e for e in energy if e.valid and e.domain == NODE_DOMAIN]:
        parts = _parts(energy, node.host)
        if not parts:
            continue
        parts_j = sum(e.joules for e in parts)  # type: ignore[misc]
        tolerance = _u(node) * node.joules + sum(_u(e) * e.joules for e in parts)  # type: ignore[operator]
        remainder = node.joules - parts_j  # type: ignore[operator]
        out.append(Layers(node.meter, node.joules, parts_j, remainder, tolerance, remainder >= -tolerance,  # type: ignore[arg-type]
                          node.host))
    return out


def check_layers(energy: list[EnergyEntry]) -> list[EnergyEntry]:
    """The window's entries, with `layers_mismatch` on the node and the parts where they do not add up."""
    for c in layers_of(energy):
        if c.adds_up:
            continue
        message = (f"{c.node_meter} node {c.node_joules:.4g} J < GPU + CPU package + DRAM {c.parts_joules:.4g} J "
                   f"by {-c.remainder_joules:.4g} J, beyond the stated uncertainties ({c.tolerance_joules:.4g} J)")
        bad = flag("layers_mismatch", message)
        nodes = [e for e in energy if e.valid and e.domain == NODE_DOMAIN and e.host == c.host and e.meter == c.node_meter]
        for e in nodes + _parts(energy, c.host):
            if bad not in e.flags:
                e.flags.append(bad)
    return energy


def summary(energy: list[EnergyEntry]) -> Optional[list[dict]]:
    """The checks as JSON rows (`measure --json`'s `layers`), None when there is no node meter."""
    checks = layers_of(energy)
    return [c.as_dict() for c in checks] if checks else None

"""Landauer's bound per inference (Tkachenko, arXiv:2503.09980): count neuron state transitions.

Linear operations can run reversibly (cost 0); a nonlinearity that maps many inputs to one
erases information. The neuron's state is the gate s = 1[z > 0] of its pre-activation z.
We count, per inference (for an LLM: per token):
  (a) reset:   N = Σ s_i                       every active unit must return to rest (v2)
  (b) flips:   N = Σ s_i(t) XOR s_i(t−1)       same unit, consecutive inferences
  (c) entropy: N = Σ_i H_b(p_i), p_i = P(s_i=1) over the data   [our operationalisation]
Module activations are seen by forward hooks; functional calls (F.relu, F.gelu …) by a
TorchFunctionMode, skipped while inside a hooked module so nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from eitp_bench.theory.constants import DEFAULT_TEMPERATURE_K, LN2, check_temperature, landauer_j_per_bit
from eitp_bench.theory.quantity import Quantity

SOURCE = "Tkachenko, arXiv:2503.09980 (v1–v3)"

# kind: "exact" = a true gate (ReLU); "proxy" = sign gate of a smooth activation (soft-ReLU
# proxy, our operationalisation); "injective" = erases nothing in exact arithmetic, counts 0.
_MODULE_KINDS = {
    "ReLU": "exact", "ReLU6": "exact",
    "GELU": "proxy", "SiLU": "proxy", "Mish": "proxy", "Hardswish": "proxy",
    "NewGELUActivation": "proxy", "GELUActivation": "proxy", "FastGELUActivation": "proxy",
    "QuickGELUActivation": "proxy", "GELUTanh": "proxy", "PytorchGELUTanh": "proxy",
    "SiLUActivation": "proxy", "MishActivation": "proxy", "AccurateGELUActivation": "proxy",
    "Sigmoid": "injective", "Tanh": "injective", "Softplus": "injective", "LeakyReLU": "injective",
    "ELU": "injective", "CELU": "injective", "SELU": "injective",
}
_FUNCTION_KINDS = {
    F.relu: ("relu", "exact"), torch.relu: ("relu", "exact"), torch.Tensor.relu: ("relu", "exact"),
    F.relu6: ("relu6", "exact"),
    F.gelu: ("gelu", "proxy"), F.silu: ("silu", "proxy"), F.mish: ("mish", "proxy"),
    torch.sigmoid: ("sigmoid", "injective"), torch.Tensor.sigmoid: ("sigmoid", "injective"),
    torch.tanh: ("tanh", "injective"), torch.Tensor.tanh: ("tanh", "injective"),
    F.softplus: ("softplus", "injective"), F.leaky_relu: ("leaky_relu", "injective"),
    F.elu: ("elu", "injective"),
}
PROXY_NOTE = ("GELU/SiLU-type activations are smooth; their sign gate 1[z>0] is used as a "
              "'soft-ReLU' proxy for the neuron state (our operationalisation)")


def _binary_entropy_bits(p: torch.Tensor) -> torch.Tensor:
    p = p.double().clamp(0.0, 1.0)
    q = 1.0 - p
    h = -(torch.xlogy(p, p) + torch.xlogy(q, q)) / LN2
    return h


class _Site:
    """Running counts for one activation site (a module, or the k-th functional call)."""

    def __init__(self, name: str, activation: str, kind: str):
        self.name, self.activation, self.kind = name, activation, kind
        self.units = 0
        self.inferences = 0
        self.active = 0
        self.flips = 0
        self.flip_pairs = 0  # consecutive pairs compared
        self.ones: Optional[torch.Tensor] = None  # per unit: how often s_i = 1
        self.prev: Optional[torch.Tensor] = None  # last pattern of a 2-D stream

    def add(self, z: torch.Tensor) -> None:
        z = z.detach()
        if z.dim() == 3:  # (batch, sequence, features): one inference = one token
            s = z > 0
            self.flips += int((s[:, 1:] ^ s[:, :-1]).sum())
            self.flip_pairs += s.shape[0] * (s.shape[1] - 1)
            s = s.reshape(-1, s.shape[-1])
        else:  # (inferences, ...) one stream, order = row order, carried across calls
            s = (z.reshape(z.shape[0], -1) if z.dim() > 1 else z.reshape(1, -1)) > 0
            if self.prev is not None and self.prev.shape[-1] == s.shape[-1]:
                s_all = torch.cat([self.prev, s])
            else:
                s_all = s
            self.flips += int((s_all[1:] ^ s_all[:-1]).sum())
            self.flip_pairs += s_all.shape[0] - 1
            self.prev = s[-1:].clone()
        self.units = s.shape[-1]
        self.inferences += s.shape[0]
        self.active += int(s.sum())
        ones = s.sum(0, dtype=torch.int64).cpu()
        self.ones = ones if self.ones is None or self.ones.shape != ones.shape else self.ones + ones

    def counts(self) -> "SiteCounts":
        if self.kind == "injective" or self.inferences == 0:
            return SiteCounts(self.name, self.activation, self.kind, self.units, 0.0, 0.0, 0.0)
        p = self.ones.double() / self.inferences
        return SiteCounts(
            self.name, self.activation, self.kind, self.units,
            active_per_inference=self.active / self.inferences,
            flips_per_inference=self.flips / self.flip_pairs if self.flip_pairs else 0.0,
            entropy_bits_per_inference=float(_binary_entropy_bits(p).sum()),
        )


@dataclass
class SiteCounts:
    name: str
    activation: str
    kind: str  # exact | proxy | injective
    units: int
    active_per_inference: float
    flips_per_inference: float
    entropy_bits_per_inference: float


@dataclass
class TransitionCounts:
    inferences: int  # tokens (3-D inputs) or rows (2-D inputs) seen by the first site
    sites: list[SiteCounts]
    notes: list[str] = field(default_factory=list)

    @property
    def gated_units(self) -> int:
        return sum(s.units for s in self.sites if s.kind != "injective")

    @property
    def reset(self) -> float:
        return sum(s.active_per_inference for s in self.sites)

    @property
    def flips(self) -> float:
        return sum(s.flips_per_inference for s in self.sites)

    @property
    def entropy_bits(self) -> float:
        return sum(s.entropy_bits_per_inference for s in self.sites)

    def as_dict(self) -> dict[str, Any]:
        return {
            "inferences": self.inferences, "gated_units": self.gated_units,
            "reset_per_inference": self.reset, "flips_per_inference": self.flips,
            "entropy_bits_per_inference": self.entropy_bits,
            "sites": [asdict(s) for s in self.sites], "notes": list(self.notes),
        }


class _FunctionalCounter(TorchFunctionMode):
    """Sees functional activation calls that module hooks cannot."""

    def __init__(self, recorder: "_Recorder"):
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        known = _FUNCTION_KINDS.get(func)
        if known is not None and self.recorder.module_depth == 0 and args and torch.is_tensor(args[0]):
            name, kind = known
            self.recorder.functional(name, kind, args[0])
        return func(*args, **kwargs)


class _Recorder:
    def __init__(self) -> None:
        self.sites: dict[str, _Site] = {}
        self.module_depth = 0
        self.call_index = 0  # k-th functional activation within one forward: its identity

    def site(self, name: str, activation: str, kind: str) -> _Site:
        if name not in self.sites:
            self.sites[name] = _Site(name, activation, kind)
        return self.sites[name]

    def functional(self, fname: str, kind: str, z: torch.Tensor) -> None:
        self.site(f"functional:{fname}#{self.call_index}", fname, kind).add(z)
        self.call_index += 1


def _activation_modules(model: nn.Module) -> list[tuple[str, nn.Module, str]]:
    return [(n or type(m).__name__, m, _MODULE_KINDS[type(m).__name__])
            for n, m in model.named_modules() if type(m).__name__ in _MODULE_KINDS]


def _as_batches(inputs) -> list:
    if torch.is_tensor(inputs) or isinstance(inputs, dict):
        return [inputs]
    return list(inputs)


@torch.no_grad()
def count_transitions(model: nn.Module, inputs) -> TransitionCounts:
    """Run `inputs` (a tensor, a dict of model kwargs, or a list of either) and count transitions."""
    rec = _Recorder()
    handles = []
    for name, module, kind in _activation_modules(model):
        def pre(_m, _inp):
            rec.module_depth += 1

        def post(_m, inp, _out, name=name, module=module, kind=kind):
            rec.module_depth -= 1
            if rec.module_depth == 0 and inp and torch.is_tensor(inp[0]):
                rec.site(name, type(module).__name__, kind).add(inp[0])

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    was_training = model.training
    model.eval()  # dropout off: the pattern is the network's, not the noise's
    try:
        with _FunctionalCounter(rec):
            for batch in _as_batches(inputs):
                rec.call_index = 0
                model(**batch) if isinstance(batch, dict) else model(batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    sites = [s.counts() for s in rec.sites.values()]
    inferences = next((s.inferences for s in rec.sites.values() if s.inferences), 0)
    notes = ["linear operations (matmul, bias, residual add, QKᵀ, AV) count zero: they can run reversibly",
             "injective activations (sigmoid, tanh, softplus, leaky-ReLU, ELU) count zero in exact arithmetic"]
    if any(s.kind == "proxy" for s in sites):
        notes.append(PROXY_NOTE)
    if not sites:
        notes.append("no activation module or functional activation call was seen")
    return TransitionCounts(inferences=inferences, sites=sites, notes=notes)


def landauer_bound_per_inference(counts: TransitionCounts, temperature_k: float = DEFAULT_TEMPERATURE_K) -> list[Quantity]:
    """E ≥ k_B·T·ln2·N_tr per inference, one Quantity per counting convention."""
    t = check_temperature(temperature_k)
    e_l = landauer_j_per_bit(t)
    proxy = [PROXY_NOTE] if any(s.kind == "proxy" for s in counts.sites) else []
    common = dict(unit="J/inference", temperature_k=t, source=SOURCE)
    return [
        Quantity("landauer_reset_j_per_inference", e_l * counts.reset,
                 definition="k_B·T·ln2 · Σ_i s_i, s = 1[z>0] (reset convention: every active unit returns to rest)",
                 operationalisation=False, notes=proxy + [f"N_tr = {counts.reset:.6g} active units per inference"], **common),
        Quantity("landauer_flips_j_per_inference", e_l * counts.flips,
                 definition="k_B·T·ln2 · Σ_i s_i(t) XOR s_i(t−1) (flips between consecutive inferences/tokens, same unit)",
                 operationalisation=False, notes=proxy + [f"N_tr = {counts.flips:.6g} flips per inference"], **common),
        Quantity("landauer_entropy_j_per_inference", e_l * counts.entropy_bits,
                 definition="k_B·T·ln2 · Σ_i H_b(p_i), p_i = P(s_i = 1) over the data (entropy refinement, ≤ 1 bit per gated unit)",
                 operationalisation=True, notes=proxy + [f"Σ H_b = {counts.entropy_bits:.6g} bits per inference"], **common),
    ]


def compare_measured(joules_per_inference: float, bound: Quantity) -> Quantity:
    """R = E_measured / E_bound: how many times above the Landauer floor the hardware runs."""
    ratio = joules_per_inference / bound.value if bound.value else float("inf")
    return Quantity(
        f"measured_over_{bound.name}", ratio, unit="1",
        definition=f"measured J per inference ÷ {bound.name}",
        source=bound.source, operationalisation=bound.operationalisation, temperature_k=bound.temperature_k,
        notes=[f"measured {joules_per_inference:.6g} J per inference"],
    )


def heat_sink_temperature(configured: Optional[float] = None) -> Quantity:
    """The T used for Landauer: configured or 300 K. A GPU's NVML temperature is its die, not the sink."""
    t = check_temperature(DEFAULT_TEMPERATURE_K if configured is None else configured)
    return Quantity(
        "heat_sink_temperature", t, unit="K",
        definition="temperature of the heat sink (ambient air or coolant) into which erasure heat flows",
        source="Landauer 1961", operationalisation=False, temperature_k=t,
        notes=["default 300 K when not configured" if configured is None else "configured",
               "NVML's temperature is the GPU die (≈40–85 °C), not the heat sink: it is not used here"],
    )

"""Which domains a window's measured total covers, said on the entries themselves.

A measured total adds the valid counter/sampled entries of the additive domains (gpu, package, dram).
On a machine where NVML reads but RAPL does not (most containers and cloud VMs), that total is the
GPUs' energy alone. For GPU work that is the usual convention, yet still not the machine's energy;
for work that ran on the CPU (int8 generation, compression, distillation on the CPU) it is the idle
GPUs' draw while the unmeasured CPU did the work. Neither may pass as a complete measured total, so
the GPU entries of such a window carry a note:

- `cpu_not_measured`: the total covers the GPUs only (GPU work: the claim's figure is "GPU only; CPU
  not measured");
- `cpu_work_not_measured`: the work ran on the CPU, which nothing measured (the judge makes energy
  claims over such windows INCONCLUSIVE: the figure says nothing about the work).

The entries are copies; nothing is flagged twice.
"""

from __future__ import annotations

from eitp_bench.energy.monitor import measured_entries
from eitp_bench.flags import flag
from eitp_bench.records import EnergyEntry

CPU_DOMAINS = ("package", "dram")
CODES = ("cpu_not_measured", "cpu_work_not_measured")


def covered_domains(entries: list[EnergyEntry]) -> list[str]:
    """The additive domains a measured total over these entries covers (sorted): e.g. ["gpu"]."""
    return sorted({e.domain for e in measured_entries(entries)})


def mark_coverage(entries: list[EnergyEntry], *, cpu_work: bool = False) -> list[EnergyEntry]:
    """Copies of `entries`; where a window's measured total has GPUs but no CPU domain, its GPU entries
    carry `cpu_work_not_measured` (the work ran on the CPU) or `cpu_not_measured`."""
    by_window: dict[object, list[EnergyEntry]] = {}
    for e in entries:
        by_window.setdefault(e.window, []).append(e)
    short = {w: "gpu" in (d := covered_domains(es)) and not set(d) & set(CPU_DOMAINS) for w, es in by_window.items()}
    out = []
    for e in entries:
        if short[e.window] and measured_entries([e]) and not any(f.code in CODES for f in e.flags):
            if cpu_work:
                note = flag("cpu_work_not_measured", "GPU only; CPU not measured: the work of this window ran on the "
                            "CPU, which no sensor read here (no RAPL); this total is the GPUs' draw, not the work's")
            else:
                note = flag("cpu_not_measured", "GPU only; CPU not measured: no CPU sensor (RAPL) reads here, so "
                            "this total covers the GPUs alone")
            e = e.model_copy(update={"flags": [*e.flags, note]})
        out.append(e)
    return out

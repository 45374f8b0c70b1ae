"""`eitp-bench doctor`: every meter, available or not, with the reason and the fix."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import typer


def collect_statuses() -> list[Any]:
    from eitp_bench.energy.estimate import CpuTimeEstimateMeter
    from eitp_bench.energy.ipmi import IpmiDcmiMeter
    from eitp_bench.energy.nvml import NvmlMeter
    from eitp_bench.energy.pyrapl_meter import PyRaplMeter
    from eitp_bench.energy.rapl import RaplMeter
    from eitp_bench.energy.redfish import RedfishMeter

    statuses = []
    for meter in (RaplMeter, NvmlMeter, PyRaplMeter, CpuTimeEstimateMeter, IpmiDcmiMeter, RedfishMeter):
        statuses.extend(meter.probe())
    statuses.extend(_co2_status())
    return statuses


def _co2_status() -> list[Any]:
    from eitp_bench.energy.base import MeterStatus

    from importlib.metadata import PackageNotFoundError, version

    try:  # its version from the package metadata: importing codecarbon prints third-party warnings
        installed = version("codecarbon")
    except PackageNotFoundError:
        return [
            MeterStatus(
                meter="codecarbon",
                available=False,
                reason="codecarbon is not installed (optional: CO2 figures only)",
                fix="pip install 'eitp-bench[co2]'",
            )
        ]
    return [
        MeterStatus(
            meter="codecarbon",
            available=True,
            reason=f"codecarbon {installed}: offline CO2 figures (its energy is a peer's figure)",
        )
    ]


def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    qualify: bool = typer.Option(False, "--qualify", help="Also qualify every sensor that reads here: a few "
                                 "seconds of an on/off load (CPU busy loop; GPU matmuls where NVML reads) to "
                                 "measure its update period, averaging window, delay and window uncertainty."),
) -> None:
    """List every meter, whether it can read here, and for those that cannot, why and how to fix it.

    Exit 0 when at least one sensor measures real joules, 1 when only estimates are possible.
    """
    statuses = collect_statuses()
    measured = [s for s in statuses if s.available and s.meter in ("rapl", "nvml", "pyrapl")]
    qualification = None
    if qualify and measured:
        from eitp_bench.energy.qualify import qualify_here

        qualification = qualify_here(gpu=any(s.available and s.meter == "nvml" for s in statuses))
    if as_json:
        out = {"meters": [asdict(s) for s in statuses], "can_measure": bool(measured)}
        if qualify:
            out["qualification"] = qualification
        print(json.dumps(out, default=str))
    else:
        _print(statuses, bool(measured))
        if qualify:
            _print_qualification(qualification)
    raise typer.Exit(0 if measured else 1)


def _print_qualification(q) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if q is None:
        console.print("[yellow]Nothing to qualify: no sensor can read here.[/yellow]")
        return

    def sec(x):
        return "?" if x is None else f"{x * 1000:.3g} ms" if x < 1 else f"{x:.3g} s"

    def pct(x):
        return "?" if x is None else f"±{100 * x:.2g} %"

    table = Table(title="sensor qualification (square-wave load)", show_lines=True)
    for col in ("meter", "device/domain", "source", "update period", "averaging", "delay",
                "u(5 s)", "u(60 s)", "window for ±1 %", "note"):
        table.add_column(col, overflow="fold")
    for s in q["sensors"]:
        edge = s.get("edge_s")
        table.add_row(escape(s["meter"]), escape(f"{s['device']}/{s['domain']}"),
                      escape(s["source"] + ("" if s["windows"] else " (not used for windows)")),
                      sec(s["update_period_s"]), sec(s["averaging_window_s"]), sec(s["delay_s"]),
                      pct(None if edge is None else 2 * edge / 5), pct(None if edge is None else 2 * edge / 60),
                      sec(s.get("min_window_s_1pct")), escape(s.get("note") or ""))
    console.print(table)
    console.print(f"uncertainty of a window of T seconds: {q['uncertainty_formula']}")
    for problem in q["problems"]:
        console.print(f"[yellow]{escape(problem)}[/yellow]")


def _print(statuses, can_measure: bool) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    table = Table(title="eitp-bench doctor: meters on this machine", show_lines=True)
    for col in ("meter", "device", "domain", "status", "reason", "fix"):
        table.add_column(col, overflow="fold")
    for s in statuses:
        table.add_row(
            escape(s.meter),
            escape(s.device or ""),
            escape(s.domain or ""),
            "[green]available[/green]" if s.available else "[red]unavailable[/red]",
            escape(s.reason),
            escape(s.fix or ""),
        )
    console.print(table)
    if can_measure:
        console.print("[green]Real joules can be measured here.[/green]")
    else:
        console.print(
            "[yellow]No sensor can read here: energy will be ESTIMATED from CPU time × TDP "
            "and energy claims will be NOT MEASURED.[/yellow]"
        )


def register(app) -> None:
    app.command("doctor")(doctor)

"""`eitp-bench profile`: the detected machine, its matched hardware profiles and its stable id."""

from __future__ import annotations

import typer


def profile(json_output: bool = typer.Option(False, "--json", help="print one JSON object instead of tables")) -> None:
    """Show this machine, the matched hardware profile(s) and the stable hardware profile id."""
    import json

    from eitp_bench.hardware import describe, detect
    from eitp_bench.hardware.profiles import match_machine

    machine = detect()
    info = describe(machine)
    matched = match_machine(machine)
    if json_output:
        info["profiles"] = {
            "gpus": [p.model_dump() if p else None for p in matched["gpus"]],
            "cpu": matched["cpu"].model_dump() if matched["cpu"] else None,
        }
        print(json.dumps(info, indent=2))
        return
    _print_tables(machine, matched, info)


def _print_tables(machine, matched, info) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"hardware profile id: [bold]{info['profile_id']}[/bold]  ({info['alias']})")
    devices = Table(title="detected devices")
    for column in ("device", "model", "memory", "power limit", "matched profile"):
        devices.add_column(column)
    for gpu, prof in zip(machine.gpus, matched["gpus"]):
        devices.add_row(
            f"gpu:{gpu.index}",
            gpu.name,
            f"{gpu.memory_bytes / 1e9:.0f} GB" if gpu.memory_bytes else "?",
            f"{gpu.power_limit_w:.0f} W" if gpu.power_limit_w else "?",
            prof.name if prof else "none (add a profile)",
        )
    cpu = machine.cpu
    devices.add_row(
        "cpu",
        f"{cpu.model} ({cpu.sockets or '?'} socket(s), {cpu.cores or '?'} cores, {cpu.threads or '?'} threads)",
        f"{machine.memory_bytes / 1e9:.0f} GB" if machine.memory_bytes else "?",
        "",
        matched["cpu"].name if matched["cpu"] else "none",
    )
    console.print(devices)
    software = f"{machine.os} {machine.kernel} {machine.arch}, python {machine.python}, torch {machine.torch or '-'}"
    console.print(f"software: {software}, CUDA {machine.cuda or '-'}, driver {machine.driver or '-'}")
    for note in machine.notes:
        console.print(f"note: {note}")


def register(app) -> None:
    app.command("profile")(profile)

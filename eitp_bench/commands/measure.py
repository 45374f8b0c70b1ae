"""`eitp-bench measure -- COMMAND [ARGS...]`: a `perf stat` for joules.

The report goes to stderr (like perf stat) so the command's own output stays
clean; with --json, stdout is exactly one JSON object and the command's stdout
is sent to stderr.

SIGTERM, SIGINT and SIGHUP are passed on to the command's whole process group (it leads its own, so
what it started in the background gets them too); we wait for it to end, close the window then,
print the report all the same and exit with its code (128 + the signal when it died of one). When
the command has ended, whatever it left running in its group is killed; if eitp-bench itself is
killed, the command and its group die with it (eitp_bench/process_tree.py).
`measured_joules_flags` lists the flag codes on the readings summed into `measured_joules`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Optional

import typer

from eitp_bench.errors import UserError


def measure(
    command: Optional[list[str]] = typer.Argument(None, help="The command to run, after `--`."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
    interval: float = typer.Option(0.1, "--interval", help="Sampling interval for power samplers, seconds."),
    idle: Optional[float] = typer.Option(None, "--idle", help="Measure an idle baseline of S seconds first."),
    timeline: bool = typer.Option(False, "--timeline", help="Include the power timeline in --json output."),
    co2: Optional[str] = typer.Option(
        None, "--co2", help="Also run codecarbon's offline tracker for a CO2 figure (ISO country code, e.g. FRA)."
    ),
) -> None:
    """Run COMMAND and report the energy it used, per device and domain."""
    if not command:
        raise UserError("no COMMAND given", fix="eitp-bench measure [OPTIONS] -- COMMAND [ARGS...]")
    if interval <= 0:
        raise UserError(f"--interval must be positive, got {interval}")
    if idle is not None and idle <= 0:
        raise UserError(f"--idle must be a positive number of seconds, got {idle}")

    from eitp_bench.energy.monitor import EnergyMonitor

    from contextlib import nullcontext

    tracker = None
    if co2:
        from eitp_bench.energy.carbon import Co2Tracker

        tracker = Co2Tracker(country_iso_code=co2)
    monitor = EnergyMonitor(interval=interval, timeline=timeline)
    try:
        baseline = monitor.measure_idle(idle) if idle else None
        with tracker if tracker is not None else nullcontext():
            exit_code, result = _run_measured(monitor, command, quiet_stdout=as_json)
    finally:
        monitor.close()

    payload = _payload(command, exit_code, result, baseline, monitor, timeline)
    if tracker is not None:
        payload["co2"] = tracker.result  # codecarbon's figures, labelled as theirs
    if as_json:
        sys.stdout.write(json.dumps(payload) + "\n")
    else:
        _print_table(payload)
    raise typer.Exit(exit_code)


def _run_measured(monitor, command: list[str], *, quiet_stdout: bool):
    from eitp_bench.process_tree import child_setup, guard_group, start_watchdog

    stdout = sys.stderr if quiet_stdout else None
    start_watchdog()  # outside the window: its start is not the command's energy
    window = monitor.begin("command")
    with _forwarding_signals() as forward_to:  # before the start: a signal in between is not lost
        try:
            proc = subprocess.Popen(command, stdout=stdout, process_group=0, preexec_fn=child_setup())
        except FileNotFoundError:
            window.end()
            raise UserError(f"command not found: {command[0]}", fix="check the name and your PATH", exit_code=127)
        except PermissionError:
            window.end()
            raise UserError(f"command is not executable: {command[0]}", fix=f"chmod +x {command[0]}", exit_code=126)
        except OSError as err:  # e.g. a file that is not a program (ENOEXEC), a directory
            window.end()
            raise UserError(f"cannot run {command[0]}: {err.strerror or err}",
                            fix="give a program or script with a #! line", exit_code=126)
        give_back = _hand_over_the_terminal(proc.pid)
        try:
            guard_group(proc.pid)
            forward_to(proc.pid)
            exit_code = proc.wait()
        finally:
            if give_back is not None:
                give_back()
            _end_group(proc.pid)
    result = window.end()
    if exit_code < 0:  # killed by a signal: report it the way shells do
        exit_code = 128 - exit_code
    return exit_code, result


FORWARDED_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, n))


def _hand_over_the_terminal(pgid: int):
    """When we are the terminal's foreground job, make the command's group the foreground instead, so it
    can read the terminal and gets Ctrl-C directly (as when it shared our group). Returns the call that
    takes the terminal back, or None when there was nothing to hand over."""
    try:
        fd = sys.stdin.fileno()
        if threading.current_thread() is not threading.main_thread() or not os.isatty(fd) \
                or os.tcgetpgrp(fd) != os.getpgrp():
            return None
    except (OSError, ValueError, AttributeError):  # no stdin, or not a terminal we own
        return None

    def foreground(group: int) -> None:
        quiet = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background tcsetpgrp would stop us
        try:
            os.tcsetpgrp(fd, group)
        except OSError:
            pass
        finally:
            signal.signal(signal.SIGTTOU, quiet)

    foreground(pgid)
    try:
        os.killpg(pgid, signal.SIGCONT)  # a read before the hand-over stopped it (SIGTTIN): go on
    except OSError:
        pass
    return lambda: foreground(os.getpgrp())


def _end_group(pgid: int) -> None:
    """Kill what the command left running in its group, then let the watchdog forget the group."""
    from eitp_bench.process_tree import release

    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass  # nothing left
    release(pgid=pgid)


@contextmanager
def _forwarding_signals():
    """While the command runs, pass SIGTERM, SIGINT and SIGHUP on to its group (like `timeout`).

    Yields `forward_to(pgid)`, called once the command has started; a signal that came before is
    passed on then. We do not die of them ourselves: the command decides when to stop, its window
    closes when it has, and the JSON is still printed. (The command leads its own process group, so
    a terminal's Ctrl-C reaches it through us.) Only the main thread can set handlers.
    """
    state: dict[str, Any] = {"pgid": None, "pending": []}

    def send(signum: int) -> None:
        try:
            os.killpg(state["pgid"], signum)  # the whole group: its background children too
        except OSError:  # the group has already ended
            pass

    def forward(signum, _frame) -> None:
        if state["pgid"] is None:
            state["pending"].append(signum)
        else:
            send(signum)

    def forward_to(pgid: int) -> None:
        state["pgid"] = pgid
        for signum in state["pending"]:
            send(signum)

    if threading.current_thread() is not threading.main_thread():
        yield forward_to
        return
    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        yield forward_to
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _energy_row(e) -> dict[str, Any]:
    """One `energy` object of the JSON schema: idle fields only when an idle baseline was taken."""
    row = e.as_dict()
    if e.idle_watts is None:
        del row["idle_watts"], row["net_joules"]
    return row


def _payload(command, exit_code, result, baseline, monitor, timeline: bool) -> dict[str, Any]:
    from eitp_bench.energy.layers import summary as layers_summary

    payload: dict[str, Any] = {
        "command": list(command),
        "exit_code": exit_code,
        "duration_s": result.duration_s,
        "energy": [_energy_row(e) for e in result.energy],
        "measured_joules": result.measured_joules,
        "measured_joules_flags": result.measured_joules_flags,
        "covered_domains": result.covered_domains,  # e.g. ["gpu"]: no CPU sensor read (energy/coverage.py)
        "net_measured_joules": result.net_measured_joules,
        "estimated_joules": result.estimated_joules,
        "layers": layers_summary(result.energy),  # node vs GPU + CPU + DRAM (None without a node meter)
        "unavailable": [
            {"meter": s.meter, "device": s.device, "domain": s.domain, "reason": s.reason, "fix": s.fix}
            for s in monitor.statuses
            if not s.available
        ],
    }
    if baseline is not None:
        payload["idle"] = {"duration_s": baseline.duration_s, "watts": baseline.as_list()}
    if timeline:
        payload["timeline"] = [
            {"t": p.t, "device": p.device, "domain": p.domain, "watts": p.watts}
            for p in result.timeline_points(result.start)
        ]
    return payload


def _fmt(x: Optional[float], spec: str) -> str:
    return "—" if x is None else format(x, spec)


def _print_table(payload: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(stderr=True)
    cmd = " ".join(payload["command"])
    table = Table(title=f"energy of: {cmd}  ({payload['duration_s']:.3f} s, exit {payload['exit_code']})")
    for col in ("device", "domain", "joules", "watts", "method", "samples", "net J", "flags"):
        table.add_column(col)
    notes: list[str] = []
    for row in payload["energy"]:
        marks = []
        for flag in row["flags"]:  # {code, message}
            note = f"{flag['code']}: {flag['message']}"
            if note not in notes:
                notes.append(note)
            marks.append(f"[{notes.index(note) + 1}]")
        table.add_row(
            row["device"],
            row["domain"],
            _fmt(row["joules"], ".3f"),
            _fmt(row["watts"], ".2f"),
            row["method"],
            str(row["samples"]),
            _fmt(row.get("net_joules"), ".3f"),
            escape(" ".join(marks)),
        )
    console.print(table)
    for i, note in enumerate(notes, 1):
        console.print(escape(f"[{i}] {note}"), soft_wrap=True)
    measured = payload["measured_joules"]
    caveats = payload.get("measured_joules_flags") or []
    covered = payload.get("covered_domains") or []
    console.print(f"measured total ({'+'.join(covered) or 'nothing measured'}): {_fmt(measured, '.3f')} J"
                  + (escape(f"  (flagged: {', '.join(caveats)})") if caveats else "")
                  + ("  (GPU only; CPU not measured)" if covered == ["gpu"] else ""))
    for c in payload.get("layers") or []:
        console.print(f"node ({c['node_meter']}): {c['node_joules']:.3f} J = measured parts {c['parts_joules']:.3f} J "
                      f"+ remainder {c['remainder_joules']:.3f} J (fans, PSU loss, NICs, disks)"
                      + ("" if c["adds_up"] else f"  [red]does not add up (tolerance {c['tolerance_joules']:.3f} J)[/red]"))
    if payload["estimated_joules"] is not None:
        console.print(f"estimated (not measured): {_fmt(payload['estimated_joules'], '.3f')} J")
    if payload.get("co2"):
        c = payload["co2"]
        console.print(escape(f"CO2: {c['emissions_kg'] * 1000:.4g} g ({c['country']}; {c['source']}; "
                             f"its own energy figure {c['energy_kwh_codecarbon'] * 3.6e6:.4g} J is a peer's, not ours)"))
    for s in payload["unavailable"]:
        where = " ".join(x for x in (s["meter"], s["device"], s["domain"]) if x)
        console.print(f"[dim]unavailable: {escape(where)}: {escape(s['reason'])}[/dim]")


def register(app) -> None:
    app.command(
        "measure",
        context_settings={"allow_interspersed_args": False},
    )(measure)

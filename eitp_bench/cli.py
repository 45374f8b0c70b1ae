"""The `eitp-bench` command: every command is thin (parse, call, print).

Each command lives in `eitp_bench/commands/<name>.py` and exposes `register(app)`.
Command modules import heavy libraries (torch, pandas, matplotlib) inside the
command body, so `eitp-bench --help` and `doctor` start fast.
"""

from __future__ import annotations

import sys

import typer

from eitp_bench.errors import UserError, terminal_line

try:  # typer >= 0.24 vendors click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer on real click
    from click.exceptions import ClickException, UsageError

app = typer.Typer(
    name="eitp-bench",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Measure real joules and judge claimed speed/energy gains (EIT-P vs GPT-2).",
)


@app.callback()
def _root() -> None:
    """Measure real joules and judge claimed speed/energy gains (EIT-P vs GPT-2)."""


@app.command("version")
def version() -> None:
    """Print the eitp-bench version."""
    from eitp_bench import __version__

    print(__version__)


def _register_commands() -> None:
    from eitp_bench.commands import (
        bounds,
        calibrate,
        compare,
        doctor,
        history,
        measure,
        prepare,
        profile,
        regress,
        report,
        run,
        store_io,
        verify,
    )

    for module in (measure, doctor, run, prepare, report, compare, regress, store_io, profile, bounds, calibrate,
                   verify, history):
        module.register(app)


_register_commands()


def _arrow_allocates_from_the_process_heap() -> None:
    """pandas' text columns live in Arrow, whose default allocator (mimalloc) keeps what a read's temporary
    arrays freed for Arrow alone; the system allocator hands it back to the heap Python and numpy draw from,
    so the next stage reuses it. `report` at 1 000 000 records peaked at 350 MiB with it, 408 MiB without
    (docs/scale.md). Set before pyarrow makes its default pool; a user's own choice is kept."""
    import os

    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def main(argv: list[str] | None = None) -> int:
    """Entry point: turns every expected failure into one clear message and an exit code."""
    _arrow_allocates_from_the_process_heap()
    if argv is None:  # the eitp-bench program itself: what it starts dies with it (process_tree.py)
        from eitp_bench.process_tree import own_the_tree

        own_the_tree()
    try:
        result = app(args=argv, prog_name="eitp-bench", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except UserError as err:
        print(f"eitp-bench: error: {terminal_line(err.message)}", file=sys.stderr)
        if err.fix:
            print(f"  fix: {terminal_line(err.fix)}", file=sys.stderr)
        code = err.exit_code
    except UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # bare `eitp-bench`: just the help
            print(err.format_message())
            return _exit(0, argv)
        # One line naming the problem, then the usage line; exit 2 like every CLI.
        print(f"eitp-bench: error: {terminal_line(err.format_message())}", file=sys.stderr)
        if err.ctx is not None:
            print(err.ctx.get_usage(), file=sys.stderr)
        code = 2
    except typer.Exit as err:
        code = err.exit_code
    except typer.Abort:
        print("eitp-bench: interrupted", file=sys.stderr)
        code = 130
    except KeyboardInterrupt:
        print("eitp-bench: interrupted", file=sys.stderr)
        code = 130
    except ClickException as err:
        print(f"eitp-bench: error: {terminal_line(err.format_message())}", file=sys.stderr)
        code = err.exit_code
    except OSError as err:  # a path the user gave that the system refused (a file where a folder goes …)
        where = f"{err.filename}: " if err.filename else ""
        print(f"eitp-bench: error: {terminal_line(where + (err.strerror or str(err)))}", file=sys.stderr)
        print("  fix: check the paths given (files, folders, permissions, free space)", file=sys.stderr)
        code = 2
    return _exit(code, argv)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()

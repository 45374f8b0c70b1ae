"""`eitp-bench verify FILE.tar.gz`: re-judge an evidence bundle offline and confirm its report.

Exit 0 when every file matches its manifest hash and every finding is recomputed identically,
1 when anything differs (each difference named), 2 when the bundle cannot be read.
"""

from __future__ import annotations

import typer

from eitp_bench.allocator import reads_a_store


def verify(
    bundle: str = typer.Argument(..., help="an evidence bundle written by `eitp-bench report --bundle`"),
    rel_tol: float = typer.Option(1e-9, "--rel-tol", help="relative tolerance for numbers (strings, verdicts and "
                                  "counts are compared exactly)"),
) -> None:
    """Re-run the analysis from the bundle alone and confirm every verdict, effect, interval and figure."""
    from eitp_bench.errors import UserError
    from eitp_bench.report.verify import verify_bundle

    if not rel_tol >= 0:
        raise UserError(f"--rel-tol must be zero or positive, got {rel_tol}")
    check = verify_bundle(bundle, rel_tol=rel_tol)
    for note in check.notes:
        print(f"note: {note}")
    for problem in check.hash_problems:
        print(f"HASH MISMATCH {problem}")
    for difference in check.differences:
        print(f"DIFFERS {difference}")
    if check.ok:
        print(f"{bundle}: verified: every file matches its SHA-256 and all {check.compared} values of the findings "
              f"were recomputed from the bundled records (numbers within a relative {rel_tol:g})")
        raise typer.Exit(0)
    print(f"{bundle}: NOT verified: {len(check.hash_problems)} file(s) differ from the manifest, "
          f"{len(check.differences)} finding value(s) differ when recomputed")
    raise typer.Exit(1)


def register(app) -> None:
    app.command("verify")(reads_a_store(verify))

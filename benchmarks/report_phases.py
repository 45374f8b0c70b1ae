"""Wall time of each phase of one `report`, in one process: where a large report's seconds go.

    python benchmarks/report_phases.py STORE [--out report.html]

STORE is a store path or URL (benchmarks/report_scale.py --keep DIR builds the fleet stores). Each phase is a
function of the report's path, timed with perf_counter around every call (nested phases count inside their
callers; `calls` says how often each ran), with how far the process's peak resident memory rose while
it ran (`peak +MiB`: what that phase added on top of the peak before it). Run it twice and read the second:
the first reads the file cold.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (module, function or Class.method): reads, then analysis, then drawing
PHASES = [
    ("eitp_bench.analysis.frames", "_stored_groups"),
    ("eitp_bench.store.database", "Store.runs_and_seqs"),
    ("eitp_bench.store.database", "Store.provenance_frame"),
    ("eitp_bench.analysis.stored_rounds", "read_rounds"),
    ("eitp_bench.store.queries", "metric_values"),
    ("eitp_bench.store.database", "Store.energy_frame"),
    ("eitp_bench.analysis.rounds", "energy_state_key"),
    ("eitp_bench.analysis.findings", "analyse"),
    ("eitp_bench.analysis.findings", "_verdict_groups"),
    ("eitp_bench.analysis.claims.judge", "judge_claims"),
    ("eitp_bench.analysis.training_view", "arm_energy"),
    ("eitp_bench.analysis.findings", "_page_sections"),
    ("eitp_bench.analysis.findings", "_environment"),
    ("eitp_bench.analysis.runtime", "estimate_vs_actual"),
    ("eitp_bench.report.build", "render_report"),
    ("eitp_bench.report.plots", "to_svg"),
]


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _timed(seconds: dict, calls: dict, grown: dict, label: str, fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        t0, peak0 = time.perf_counter(), _peak_kib()
        try:
            return fn(*args, **kwargs)
        finally:
            seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - t0
            calls[label] = calls.get(label, 0) + 1
            grown[label] = grown.get(label, 0) + _peak_kib() - peak0
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store")
    parser.add_argument("--out", help="where the page goes (default: a temporary file)")
    args = parser.parse_args()
    out = args.out or str(Path(tempfile.mkdtemp(prefix="report_phases_")) / "report.html")
    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}
    grown: dict[str, int] = {}
    t0 = time.perf_counter()
    for module_name, name in PHASES:
        owner = importlib.import_module(module_name)
        *path, attr = name.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, attr)
        wrapped = _timed(seconds, calls, grown, name, original)
        setattr(owner, attr, wrapped)
        for module in list(sys.modules.values()):  # names imported `from … import` elsewhere, before this
            if getattr(module, "__name__", "").startswith("eitp_bench") and getattr(module, attr, None) is original:
                setattr(module, attr, wrapped)
    seconds["importing"] = time.perf_counter() - t0
    imported = _peak_kib()
    from eitp_bench.report.build import write_report

    started = time.perf_counter()
    write_report(args.store, out)
    total = time.perf_counter() - started
    print(f"{'phase':34s} {'wall s':>7s} {'calls':>6s} {'peak +MiB':>9s}")
    grown["importing"] = imported
    for label in ["importing", *(name for _, name in PHASES)]:
        if label in seconds:
            print(f"{label:34s} {seconds[label]:7.2f} {calls.get(label, 1):6d} {grown[label] / 1024:9.0f}")
    print(f"{'report (after importing)':34s} {total:7.2f} {'':6s} {(_peak_kib() - imported) / 1024:9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

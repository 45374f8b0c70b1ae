"""The HTML report: `build_report` (a string) and `write_report` (a file).

One job: render what analysis decided; it judges nothing and computes no verdict.
May import: analysis, store, theory (constants and curves it draws) and the shared vocabulary. Nothing
below it imports report/ (tests/test_architecture.py).
"""

from eitp_bench.report.build import Frames, build_report, load_frames, write_report

__all__ = ["Frames", "build_report", "load_frames", "write_report"]

"""The HTML report: `build_report` (a string) and `write_report` (a file)."""

from eitp_bench.report.build import Frames, build_report, load_frames, write_report

__all__ = ["Frames", "build_report", "load_frames", "write_report"]

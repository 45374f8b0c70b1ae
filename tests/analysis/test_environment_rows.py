"""The report's environment rows: each provenance field's distinct values with how many runs hold them."""

import pandas as pd

from eitp_bench.analysis.findings import _environment
from eitp_bench.analysis.frames import load_frames


def test_values_are_counted_per_run_whether_runs_share_the_object_or_hold_equal_copies():
    shared = {"gpu_processes": 0, "cpu_load": 0.1}
    twin = dict(shared)  # equal, another object: counted with `shared`
    busy = {"gpu_processes": 2, "cpu_load": 0.1}
    prov = pd.DataFrame({
        "run_id": [f"r{i}" for i in range(7)],
        "python": ["3.11.7"] * 6 + ["3.12.1"],
        "hardware.isolation": pd.Series([shared, shared, twin, busy, shared, None, busy], dtype=object),
    })
    rows = {r["field"]: r for r in _environment(load_frames({"runs": prov[["run_id"]], "provenance": prov}))}
    assert rows["python"]["seen"] == [("3.11.7", 6), ("3.12.1", 1)]
    assert rows["hardware.isolation.gpu_processes"]["seen"] == [("0", 4), ("2", 2), ("—", 1)]
    assert rows["hardware.isolation.cpu_load"]["seen"] == [("0.1", 6), ("—", 1)]

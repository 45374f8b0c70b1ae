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


def test_the_sensors_are_those_any_run_read_and_any_run_could_not():
    from eitp_bench.analysis.findings import _sensors

    both, gpu_only = ["nvml", "rapl"], ["nvml"]
    prov = pd.DataFrame({
        "run_id": ["r0", "r1", "r2", "r3"],
        "hardware.meters": pd.Series([both, gpu_only, both, float("nan")], dtype=object),
        "hardware.meters_unavailable": pd.Series([[], ["rapl: no powercap"], None, ["ipmi: no BMC"]], dtype=object),
    })
    frames = load_frames({"runs": prov[["run_id"]], "provenance": prov})
    assert _sensors(frames) == {"present": ["nvml", "rapl"], "missing": ["ipmi: no BMC", "rapl: no powercap"]}

"""Every reader of flags keeps a message whole: NVML's messages contain ';', so nothing may split on it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))
from synthetic_store import eitp_records, frames_from_records  # noqa: E402
from test_store import NVML_MESSAGE, make_record  # noqa: E402

from eitp_bench.store import Store  # noqa: E402


def test_report_warnings_count_flags_by_code_with_whole_messages(tmp_path):
    from eitp_bench.analysis.findings import _warnings
    from eitp_bench.analysis.frames import load_frames

    with Store.open(tmp_path / "s.sqlite") as store:
        store.add_many([make_record(i) for i in range(3)])
        rows = _warnings(load_frames(store))["flags"]
    assert {(r["code"], r["flag"], r["n"]) for r in rows} == {
        ("wrap_unrepairable", "wrapped past repair", 3), ("nvml_error", NVML_MESSAGE, 3)}
    assert all(r["domain"] == "package" and r["meter"] == "rapl" for r in rows)


def test_claims_explain_missing_joules_with_whole_messages():
    from eitp_bench.analysis.claims import judge_claims, load_claims

    f = frames_from_records(eitp_records(n_reps=4, energy_method="estimated"))
    energy = f["energy"]
    energy["flag_messages"] = [[m + "; retry later" for m in ms] for ms in energy["flag_messages"]]
    claim = next(c for c in load_claims("eitp").claims if c.id == "training-energy-per-step")
    (v,) = judge_claims(f["metrics"], energy, [claim], n_resamples=100)
    assert "rapl: energy_uj not readable (permission denied); retry later" in v.reason


def test_measure_table_prints_each_flag_whole_with_its_code(capsys):
    from eitp_bench.commands.measure import _print_table

    flags = [{"code": "nvml_error", "message": NVML_MESSAGE}]
    row = {"device": "gpu:0", "domain": "gpu", "joules": None, "watts": None, "method": "counter", "samples": 3,
           "flags": flags}
    _print_table({"command": ["true"], "duration_s": 1.0, "exit_code": 0, "energy": [row, dict(row)],
                  "measured_joules": None, "estimated_joules": None, "unavailable": []})
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert f"[1] nvml_error: {NVML_MESSAGE}" in err and "[2]" not in err  # one note, shared by both rows

"""The record schema: one energy type, coded flags, and the upgrade chain for older records."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from eitp_bench.flags import CODES, Flag, flag, infer_code
from eitp_bench.records import SCHEMA_VERSION, UPGRADES, EnergyEntry, Provenance, RunRecord, upgrade_record

PACKAGE = Path(__file__).resolve().parents[1] / "eitp_bench"


def v1_record(flags: list[str]) -> dict:
    """A record as eitp-bench wrote it under schema 1 (flags as strings, net_joules stored)."""
    return {
        "schema_version": 1, "run_id": "0123456789abcdef0123456789abcdef", "suite": "smoke", "suite_config_hash": "h", "arm": "baseline",
        "task": "train", "size": "tiny", "seed": 0, "repetition": 0, "device": "cpu",
        "started_at": "2026-01-01T00:00:00.000+00:00", "finished_at": None, "status": "ok", "error": None,
        "config": {}, "provenance": {"eitp_bench_version": "0.1.0", "python": "3.11.7", "platform": "Linux"},
        "metrics": [{"name": "train_joules", "value": 12.0, "unit": "J", "window": "train"}],
        "energy": [{"window": "train", "device": "cpu:0", "domain": "package", "joules": 12.0, "method": "counter",
                    "meter": "rapl", "duration_s": 2.0, "samples": 3, "max_gap_s": 0.5, "wraps": 0, "flags": flags,
                    "idle_watts": 5.0, "net_joules": 2.0}],
        "timeline": [],
    }  # fmt: skip


# Every plain-text flag the schema-1 meters wrote (their exact wording), and the code each carries now.
V1_MESSAGES = {
    "window shorter than the counter update period (~1 ms): 0 or 1 counter steps": "short_window",
    "window under 10 counter updates (~1 ms each): quantisation error up to ~1 ms of energy": "few_updates",
    "max_gap_s covers only the last 50000 reads (history buffer)": "history_truncated",
    "sum of die zones (package-0-die-0, package-0-die-1): no plain package zone": "die_sum",
    "unavailable: energy_uj unreadable (PermissionError: root-only since CVE-2020-8694)": "permission_denied",
    "unavailable: energy_uj unreadable (OSError: [Errno 5] Input/output error)": "unreadable",
    "invalid: energy_uj read failed at t=101.000: OSError: [Errno 5] Input/output error": "unreadable",
    "invalid: energy_uj read failed at t=101.000: PermissionError: root-only since CVE-2020-8694": "permission_denied",
    "invalid: counter went back from 900 to 100 µJ but max_energy_range_uj is unreadable, so the wrap cannot be "
    "corrected": "wrap_unrepairable",
    "invalid: counter jumped by 11.000 J in 0.100 s, over the 100 W maximum (a counter reset or missed wraps)":
        "implausible_jump",
    "invalid: counter went back from 9 to 1 µJ; as one wrap that is 21.000 J in 0.100 s, over the 100 W maximum "
    "(a counter reset or missed wraps)": "implausible_jump",
    "invalid: 0.210 s between reads is long enough for a whole counter range at 100 W (0.200 s): wraps may have "
    "been missed": "wrap_unrepairable",
    "invalid: counter wrapped inside the window (pyRAPL has no wraparound handling)": "wrap_unrepairable",
    "estimated from CPU time × TDP/cores, not measured": "estimated",
    "children's CPU time counts only once they have been waited for": "children_cpu_time",
    "TDP default: no hardware profile (4 W per logical core × 8 = 32 W, CodeCarbon's fallback)": "tdp_default",
    "invalid: CPU time went backwards (-1.000000 s)": "reset",
    "timeline capacity exceeded: max gap is over the last 10 samples only": "history_truncated",
    "MIG mode: NVML reports energy for the whole GPU, not for one MIG instance": "mig_whole_gpu",
    "power read at NVML_POWER_SCOPE_MODULE (Grace Hopper: GPU + CPU + memory), not the GPU alone": "module_scope",
    "power samples are NVML's 1-s average (Ampere+): they lag changes in power": "averaged_power",
    "invalid: NVML error on gpu:1: NVMLError_GpuIsLost: GPU is lost; wrap (during or at the edge of this window)":
        "nvml_error",
    "invalid: the energy counter went backwards (driver reload or GPU reset) in this window": "reset",
    "invalid: gpu:0 reports neither an energy counter nor power": "unreadable",
    "no energy counter (pre-Volta): power is sampled and integrated": "sampled_fallback",
    "energy counter unreadable at start (Unknown Error): power is sampled and integrated": "sampled_fallback",
    "window shorter than the energy counter's update period (~100 ms): counter read 0.000 J, power samples "
    "5.000 J; reporting the sampled integral": "short_window",
    "the energy counter did not move in 1.000 s (update period ~100 ms) while power samples show 200.000 J; "
    "reporting the sampled integral": "stalled",
    "invalid: gpu:0 has no power reading to fall back on": "unreadable",
    "cross-check: counter 90.000 J vs sampled power integral 100.000 J are 11.1 % apart (> 5 %)":
        "crosscheck_mismatch",
    "rapl: energy_uj not readable (permission denied)": "permission_denied",
    "somebody's own note; with a semicolon": "legacy",
}  # fmt: skip


@pytest.mark.parametrize("message", list(V1_MESSAGES))
def test_schema_1_flag_strings_get_their_codes(message):
    assert infer_code(message) == V1_MESSAGES[message]


def test_upgrade_chain_converts_v1_flags_and_leaves_its_input_alone():
    old = v1_record(list(V1_MESSAGES))
    before = copy.deepcopy(old)
    new = upgrade_record(old)
    assert old == before
    assert new["schema_version"] == SCHEMA_VERSION == 6
    assert new["world_size"] == new["nnodes"] == 1  # v3: every older record was one process, one machine
    assert new["energy"][0]["flags"] == [{"code": c, "message": m} for m, c in V1_MESSAGES.items()]
    assert upgrade_record(new) == new  # current records pass through
    assert upgrade_record(old, to=1) == old
    assert sorted(UPGRADES) == list(range(1, SCHEMA_VERSION))  # one step per version, none missing


def test_records_validate_through_the_chain_from_dicts_and_json():
    # The runner reads per-record JSON with model_validate_json; import and the store with model_validate.
    old = v1_record(["invalid: counter wrapped inside the window (pyRAPL has no wraparound handling)", "a;b"])
    expected = [Flag(code="wrap_unrepairable", message=old["energy"][0]["flags"][0]), Flag(code="legacy", message="a;b")]
    for record in (RunRecord.model_validate(old), RunRecord.model_validate_json(json.dumps(old))):
        assert record.schema_version == SCHEMA_VERSION and record.energy[0].flags == expected
        assert record.energy[0].net_joules == 2.0  # recomputed: 12 J − 5 W × 2 s
    again = RunRecord.model_validate_json(record.model_dump_json())
    assert again == record and again.energy[0].flags[1].message == "a;b"


def test_a_record_from_a_newer_eitp_bench_is_refused_with_the_reason():
    data = v1_record([])
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValidationError, match="newer eitp-bench"):
        RunRecord.model_validate(data)


def test_flag_codes_are_declared_once_and_checked():
    assert flag("reset", "x") == Flag(code="reset", message="x")
    with pytest.raises(ValueError, match="undeclared flag code 'resett'"):
        flag("resett", "x")
    Flag(code="from_a_newer_version", message="x")  # a newer eitp-bench's code still loads
    with pytest.raises(ValidationError):
        Flag(code="Not A Code", message="x")
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c) and meaning for c, meaning in CODES.items())


def test_every_code_a_writer_uses_is_declared_and_every_declared_code_is_used():
    writers = [*(PACKAGE / "energy").rglob("*.py"), *(PACKAGE / "workloads").glob("*.py"), PACKAGE / "hardware" / "isolation.py",
               PACKAGE / "records.py"]
    source = "\n".join(p.read_text(encoding="utf-8") for p in writers)
    used = set(re.findall(r'flag\(\s*"([a-z0-9_]+)"', source))
    used |= set(re.findall(r'code = "([a-z0-9_]+)" if .* else "([a-z0-9_]+)"', source)[0])
    assert used <= set(CODES)
    assert set(CODES) - used == {"legacy"}  # only the upgrade chain's own code is written elsewhere


def test_energy_entry_derives_its_rates_and_net_joules():
    e = EnergyEntry(device="gpu:0", domain="gpu", joules=30.0, method="counter", meter="nvml", duration_s=3.0,
                    samples=30, idle_watts=4.0)
    assert e.window is None and e.valid and (e.watts, e.sample_rate_hz, e.net_joules) == (10.0, 10.0, 18.0)
    e.idle_watts = 5.0  # the monitor fills idle watts in after the meter made the entry
    assert e.net_joules == 15.0
    assert e.as_dict()["net_joules"] == 15.0 and e.as_dict()["watts"] == 10.0
    bad = EnergyEntry(device="cpu:0", domain="dram", joules=None, method="counter", meter="rapl", duration_s=1.0)
    assert not bad.valid and bad.watts is None and bad.net_joules is None


def test_a_record_needs_every_energy_entry_to_name_its_window():
    e = EnergyEntry(device="cpu:0", domain="package", joules=1.0, method="counter", meter="rapl", duration_s=1.0)
    prov = Provenance(eitp_bench_version="0.1.0", python="3.11", platform="Linux")
    ids = dict(suite="s", suite_config_hash="h", arm="a", task="t", size="tiny", seed=0, repetition=0, provenance=prov)
    with pytest.raises(ValidationError, match="window"):
        RunRecord(**ids, energy=[e])
    assert RunRecord(**ids, energy=[e.model_copy(update={"window": "w"})]).energy[0].window == "w"

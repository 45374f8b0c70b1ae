"""The evidence bundle (`report --bundle`) and `verify`: an untouched bundle re-judges to the same
findings; one changed joule is caught, by the manifest (bytes changed) and by the re-judged verdict
(content changed, manifest re-hashed to match)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_store import eitp_records

from eitp_bench.cli import main
from eitp_bench.report.bundle import FIGURES, FINDINGS, MANIFEST, RECORDS, manifest, read_tar, write_tar
from eitp_bench.report.verify import compare
from eitp_bench.store import Store


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle of a synthetic EIT-P store (6 rounds; EIT-P uses 1.3× the baseline's training energy)."""
    tmp = tmp_path_factory.mktemp("bundle")
    with Store.open(str(tmp / "results.sqlite")) as store:
        store.add_many(eitp_records(n_reps=10))
    out = tmp / "evidence.tar.gz"
    code = main(["report", "--store", str(tmp / "results.sqlite"), "--out", str(tmp / "report.html"),
                 "--bundle", str(out)])
    assert code == 0 and out.is_file()
    return out


def verify(path: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["verify", str(path)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def tampered(bundle: Path, out: Path, edit, *, rehash: bool) -> Path:
    """A copy of the bundle with `edit(record_dict) -> bool` applied to the first record it accepts."""
    files = read_tar(bundle)
    lines = files[RECORDS].decode().splitlines()
    for i, line in enumerate(lines):
        record = json.loads(line)
        if edit(record):
            lines[i] = json.dumps(record)
            break
    else:
        raise AssertionError("no record edited")
    files[RECORDS] = ("\n".join(lines) + "\n").encode()
    if rehash:
        files[MANIFEST] = manifest(files)
    write_tar(out, files)
    return out


def cheaper_training_step(record: dict) -> bool:
    """One EIT-P repetition's joules per training step divided by 3."""
    if record["arm"] != "eitp-paper" or record["task"] != "train" or record["status"] != "ok":
        return False
    [metric] = [m for m in record["metrics"] if m["name"] == "train_joules_per_step"]
    metric["value"] /= 3
    return True


def test_bundle_holds_every_piece_with_its_hash(bundle):
    files = read_tar(bundle)
    expected = {"records.jsonl", "timelines.csv", "claims.yaml", "findings.json", "figures.json", "report.html",
                "environment.json", "suites/cfg1.json", MANIFEST}
    assert set(files) == expected
    assert set(json.loads(files[MANIFEST])["sha256"]) == expected - {MANIFEST}
    assert len(files[RECORDS].decode().splitlines()) == len(eitp_records(n_reps=10))
    env = json.loads(files["environment.json"])
    assert env["report_settings"]["claims"] == "eitp" and env["packages"]["numpy"]
    verdicts = {v["claim"]: v["verdict"] for g in json.loads(files[FINDINGS])["groups"] for v in g["verdicts"]}
    assert verdicts["training-energy-per-step"] == "REFUTED"  # 1.3× the energy, claimed ≤ 0.75×
    assert b"training-energy-per-step" in files["report.html"]


def test_untouched_bundle_verifies(bundle, capsys):
    code, out = verify(bundle, capsys)
    assert code == 0, out
    assert "verified" in out and "DIFFERS" not in out and "HASH MISMATCH" not in out


def test_a_changed_joule_rehashed_is_named_by_the_verdict_it_changes(bundle, tmp_path, capsys):
    code, out = verify(tampered(bundle, tmp_path / "t.tar.gz", cheaper_training_step, rehash=True), capsys)
    assert code == 1
    assert "HASH MISMATCH" not in out  # the manifest matches the changed content: only re-judging catches it
    first = next(line for line in out.splitlines() if line.startswith("DIFFERS"))
    assert "claim training-energy-per-step" in first and ".verdict: bundled 'REFUTED', recomputed 'INCONCLUSIVE'" in first


def test_a_changed_joule_not_rehashed_names_the_file(bundle, tmp_path, capsys):
    code, out = verify(tampered(bundle, tmp_path / "t.tar.gz", cheaper_training_step, rehash=False), capsys)
    assert code == 1
    assert "HASH MISMATCH records.jsonl" in out
    assert "claim training-energy-per-step" in out


def test_a_changed_energy_entry_changes_the_energy_figures(bundle, tmp_path, capsys):
    def more_package_joules(record: dict) -> bool:
        if not record["energy"]:
            return False
        record["energy"][0]["joules"] += 1.0
        return True

    code, out = verify(tampered(bundle, tmp_path / "t.tar.gz", more_package_joules, rehash=True), capsys)
    assert code == 1 and f"DIFFERS {FIGURES}: energy_table" in out


def test_unreadable_bundle_is_one_line_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    code, out = verify(junk, capsys)
    assert code == 2 and "cannot read the bundle" in out and "Traceback" not in out
    code, out = verify(tmp_path / "missing.tar.gz", capsys)
    assert code == 2 and "Traceback" not in out


def test_a_bundle_without_its_manifest_is_unreadable(bundle, tmp_path, capsys):
    files = read_tar(bundle)
    del files[MANIFEST]
    write_tar(tmp_path / "t.tar.gz", files)
    code, out = verify(tmp_path / "t.tar.gz", capsys)
    assert code == 2 and "no MANIFEST.json" in out


def test_compare_names_claim_field_and_both_values_and_tolerates_last_bits():
    bundled = {"source": "a", "groups": [{"verdicts": [{"claim": "c1", "verdict": "VERIFIED", "ci": [1.0, 2.0]}]}]}
    same = {"source": "b", "groups": [{"verdicts": [{"claim": "c1", "verdict": "VERIFIED", "ci": [1.0, 2.0 + 1e-15]}]}]}
    assert compare(bundled, same) == ([], 4)  # claim, verdict, 2 bounds; the store's path is no finding; 1e-15 is within 1e-9
    changed = {"groups": [{"verdicts": [{"claim": "c1", "verdict": "REFUTED", "ci": [1.0, 2.5]}], "new": 1}]}
    found, _ = compare(bundled, changed)
    assert found == ["claim c1: groups[0].verdicts[c1].verdict: bundled 'VERIFIED', recomputed 'REFUTED'",
                     "groups[0].new: recomputed, not in the bundle",
                     "claim c1: groups[0].verdicts[c1].ci[1]: bundled 2.0, recomputed 2.5"]

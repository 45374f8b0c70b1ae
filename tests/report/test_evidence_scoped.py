"""`report --bundle` of a store with more groups than a report judges (bundle.MAX_GROUPS): it reads the
store as the HTML report does (frames.load_report: the newest groups' runs only), bundles only those
runs' records and timelines, and `verify` still re-judges every verdict and figure from them, stating
(not re-judging) what the report said of the runs it did not read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic_store import eitp_records
from test_evidence import cheaper_training_step, tampered, verify

from eitp_bench.analysis.frames import load_frames, load_report, only_runs
from eitp_bench.cli import main
from eitp_bench.report.bundle import ENVIRONMENT, FINDINGS, MAX_GROUPS, RECORDS, TIMELINES, read_tar, timelines_csv
from eitp_bench.store import Store

PAIRS = [(f"cfg-{k}", f"hp-{k % 3}") for k in range(MAX_GROUPS + 2)]  # two groups more than judged


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("scoped") / "results.sqlite"
    records = []
    for k, (config, profile) in enumerate(PAIRS):  # the later pairs are the newer groups
        records += [r.model_copy(update={"suite_config_hash": config})
                    for r in eitp_records(n_reps=6, seed=k, profile=profile, started0=600 * k, timeline=k % 2 == 0)]
    with Store.open(str(path)) as st:
        st.add_many(records)
    return str(path)


@pytest.fixture(scope="module")
def bundle(store, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("scoped-bundle")
    out = tmp / "evidence.tar.gz"
    assert main(["report", "--store", store, "--out", str(tmp / "report.html"), "--bundle", str(out)]) == 0
    return out


def test_the_bundle_holds_the_judged_groups_runs_only(store, bundle):
    files = read_tar(bundle)
    judged = load_report(store, max_groups=MAX_GROUPS)
    assert judged.scope is not None  # the store holds more groups than a report judges
    ids = judged.runs["run_id"].tolist()
    bundled = [json.loads(line)["run_id"] for line in files[RECORDS].decode().splitlines()]
    assert bundled == ids  # the judged groups' runs, in store order
    with Store.open(store, read_only=True) as st:
        assert len(ids) < st.count()
    # the timelines of those runs, as the frames of those runs give them
    assert files[TIMELINES].decode() == timelines_csv(only_runs(load_frames(store), set(ids)))
    findings = json.loads(files[FINDINGS])
    assert len(findings["groups"]) == MAX_GROUPS and len(findings["omitted_groups"]) == 2
    scope = json.loads(files[ENVIRONMENT])["report_settings"]["scope"]
    assert scope == {"omitted_groups": findings["omitted_groups"], "runs_not_read": 2 * len(ids) // MAX_GROUPS}


def test_the_scoped_bundle_verifies_and_says_what_it_did_not_re_judge(bundle, capsys):
    code, text = verify(bundle, capsys)
    assert code == 0, text
    assert "2 other groups" in text and "not in the bundle" in text


def test_a_changed_joule_in_a_scoped_bundle_is_still_caught(bundle, tmp_path, capsys):
    code, text = verify(tampered(bundle, tmp_path / "t.tar.gz", cheaper_training_step, rehash=True), capsys)
    assert code == 1
    assert "verdict" in text

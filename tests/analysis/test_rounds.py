"""The round is the unit of replication: copies of one round stored by several batches add no evidence;
to-target energy figures are judged on the span of the training window they rest on."""

import json
from datetime import datetime, timedelta

import pytest
from synthetic_store import eitp_records, frames_from_records, record

from eitp_bench import cli
from eitp_bench.analysis.claims import INCONCLUSIVE, VERIFIED, judge_claims, load_claims
from eitp_bench.analysis.resultset import ResultSet
from eitp_bench.analysis.rounds import combine_rounds
from eitp_bench.flags import flag
from eitp_bench.records import new_run_id


def copies(records, batch: int, jitter: float = 0.0):
    """The same records stored again by another batch: new run_ids, a day later, values moved by `jitter`."""
    out = []
    for r in records:
        started = (datetime.fromisoformat(r.started_at) + timedelta(days=batch)).isoformat()
        finished = (datetime.fromisoformat(r.finished_at) + timedelta(days=batch)).isoformat()
        metrics = [m.model_copy(update={"value": m.value * (1 + jitter * batch)}) for m in r.metrics]
        out.append(r.model_copy(update={"run_id": new_run_id(), "started_at": started, "finished_at": finished,
                                        "metrics": metrics}))
    return out


def report_json(tmp_path, name, batches, capsys) -> dict:
    store = tmp_path / f"{name}.sqlite"
    for i, batch in enumerate(batches):
        path = tmp_path / f"{name}-{i}.jsonl"
        path.write_text("".join(r.model_dump_json() + "\n" for r in batch))
        assert cli.main(["import", str(path), "--store", str(store)]) == 0
    capsys.readouterr()
    assert cli.main(["report", "--store", str(store), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def verdict_rows(data) -> dict:
    [group] = data["groups"]
    return {v["claim"]: v for v in group["verdicts"]}


@pytest.mark.parametrize("rounds", [2, 6])
def test_five_copies_of_one_batch_give_one_batchs_verdicts(tmp_path, capsys, rounds):
    """A nightly job storing the same suite five times (or one batch imported five times) is one batch's
    evidence: the same verdicts, n and intervals, with 5 batches and `rounds` distinct rounds behind them."""
    batch = eitp_records(n_reps=rounds, seed=3, speedup=5.0, energy_ratio=0.5, failed=0)
    one = verdict_rows(report_json(tmp_path, "one", [batch], capsys))
    five = verdict_rows(report_json(tmp_path, "five", [batch] + [copies(batch, i) for i in range(1, 5)], capsys))
    assert one.keys() == five.keys()
    for claim, v in one.items():
        w = five[claim]
        assert (w["verdict"], w["n"], w["ci"], w["effect"]) == (v["verdict"], v["n"], v["ci"], v["effect"]), claim
        if v["metric"] and v["n"][0]:
            assert (v["rounds"], v["batches"]) == (rounds, 1), claim
            assert (w["rounds"], w["batches"]) == (rounds, 5), claim
    assert five["inference-speedup"]["n"] == [rounds, rounds]  # not 5 × rounds
    if rounds == 2:  # too few rounds for any verdict, however often they are stored
        assert {v["verdict"] for v in five.values()} <= {"NO DATA", "NOT MEASURED", "NOT COMPARABLE", "INCONCLUSIVE"}
        assert all(max(v["n"]) <= 2 for v in five.values())


def test_copies_that_differ_are_combined_with_their_spread_kept():
    """Re-measured copies of a round (machine noise on identical work) give one value, the median, and the
    within-round spread; a deterministic metric stored three times with the same seed is one observation."""
    batch = eitp_records(n_reps=6, seed=4, failed=0)
    stored = batch + copies(batch, 1, jitter=0.01) + copies(batch, 2, jitter=0.01)
    [group] = ResultSet(frames_from_records_frames(stored)).groups()
    rounds = group.rounds
    speed = rounds[(rounds["name"] == "tokens_per_s") & (rounds["arm"] == "baseline")]
    assert len(speed) == 6 and set(speed["copies"]) == {3}
    original = {r.repetition: m.value for r in batch if r.arm == "baseline" and r.task == "generate"
                for m in r.metrics if m.name == "tokens_per_s"}
    for rep, value, sd in zip(speed["repetition"], speed["value"], speed["round_sd"]):
        assert value == pytest.approx(original[rep] * 1.01)  # the median of ×1, ×1.01, ×1.02
        assert sd == pytest.approx(original[rep] * 0.01)
    size = rounds[(rounds["name"] == "model_bytes") & (rounds["arm"] == "baseline")]
    assert len(size) == 6  # 18 stored values of a deterministic metric: 6 rounds


def test_a_store_without_copies_is_unchanged():
    frames = frames_from_records_frames(eitp_records(n_reps=5, seed=5, failed=0))
    m = frames.metrics
    combined = combine_rounds(m)
    assert combined.drop(columns=["copies", "round_sd"]).equals(m) and set(combined["copies"]) == {1}


def test_a_flag_on_any_copy_stays_on_the_round():
    recs = [record("baseline", "train", 0, {"joules_to_target": 100.0})]
    recs.append(recs[0].model_copy(update={"run_id": new_run_id(), "metrics": [recs[0].metrics[0].model_copy(
        update={"value": 110.0, "flags": [flag("not_steady", "short segments")]})]}))
    combined = combine_rounds(frames_from_records_frames(recs).metrics)
    assert len(combined) == 1 and combined["flags"].iloc[0] == ["not_steady"]
    assert combined["value"].iloc[0] == pytest.approx(105.0)


def test_energy_to_target_on_unsteady_spans_is_inconclusive_with_the_reason():
    """joules_to_target is read on the training window up to the evaluation after the crossing; when that
    span is too short to be steady (flagged by the workload), the claim is INCONCLUSIVE, whatever the whole
    training window says."""
    claim = next(c for c in load_claims("eitp").claims if c.id == "training-energy")
    recs = eitp_records(n_reps=8, seed=6, energy_ratio=0.5, failed=0)
    f = frames_from_records(recs)
    assert judge_claims(f["metrics"], f["energy"], [claim])[0].verdict == VERIFIED  # steady: a clear gain

    short = flag("not_steady", "the training window up to the evaluation at step 60, which the figure rests on, "
                               "is shorter than the steady-state minimum (fake gpu:0/gpu 0.8 s < 5 s)")

    def flagged(r):
        ms = [m.model_copy(update={"flags": [short]}) if m.name == "joules_to_target" else m for m in r.metrics]
        return r.model_copy(update={"metrics": ms})

    f = frames_from_records([flagged(r) for r in recs])
    v = judge_claims(f["metrics"], f["energy"], [claim])[0]
    assert v.verdict == INCONCLUSIVE
    assert "not_steady" in v.reason and "0 steady, 8 skipped" in v.reason


def frames_from_records_frames(records):
    from eitp_bench.analysis.frames import load_frames

    return load_frames(frames_from_records(records))


def test_the_html_says_how_many_batches_stored_the_rounds(tmp_path):
    from eitp_bench.analysis.claims import load_claims
    from eitp_bench.analysis.findings import analyse
    from eitp_bench.report.build import render_report

    batch = eitp_records(n_reps=5, seed=9, failed=0, timeline=False)
    findings = analyse(frames_from_records_frames(batch + copies(batch, 1)), load_claims("eitp"), n_resamples=200)
    assert "5 rounds stored by 2 batches" in render_report(findings)


def test_energy_per_arm_counts_rounds_not_copies():
    """The energy picture's bars: a round stored by five batches is one repetition, with the median of its
    copies' joules; its whisker is no narrower than one batch's."""
    from eitp_bench.analysis.training_view import arm_energy

    batch = eitp_records(n_reps=4, seed=3, failed=0)
    one = arm_energy(ResultSet(frames_from_records_frames(batch)).energy)
    five = arm_energy(ResultSet(frames_from_records_frames(batch + [r for i in range(1, 5) for r in copies(batch, i)])).energy)
    assert [p["title"] for p in five] == [p["title"] for p in one]
    for p, q in zip(one, five):
        for bar, same in zip(p["bars"], q["bars"]):
            assert (same["n"], same["total"], same["low"], same["high"]) == (bar["n"], bar["total"], bar["low"], bar["high"])
            assert bar["n"] == 4
    jittered = arm_energy(ResultSet(frames_from_records_frames(batch + copies(batch, 1, jitter=0.5) + copies(batch, 2, jitter=0.5))).energy)
    assert all(bar["n"] == 4 for p in jittered for bar in p["bars"])


def test_ok_rows_of_all_ok_rows_shares_them_and_a_write_stays_its_own():
    import numpy as np
    import pandas as pd

    from eitp_bench.analysis.rounds import ok_rows

    entries = pd.DataFrame({"run_id": ["a", "b"], "status": ["ok", "ok"], "joules": [1.0, 2.0]})
    ok = ok_rows(entries)
    assert ok is not entries and ok.equals(entries)
    assert np.shares_memory(ok["joules"].to_numpy(), entries["joules"].to_numpy())  # not a second copy
    ok.loc[0, "joules"] = 9.0  # copy-on-write: the frame it came from keeps its value
    assert entries["joules"].tolist() == [1.0, 2.0]
    with_failed = entries.assign(status=["ok", "failed"])
    assert ok_rows(with_failed)["run_id"].tolist() == ["a"]

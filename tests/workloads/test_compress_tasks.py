"""Compression arms through the task layer: generate and compress share one artefact, built once."""

import copy
import json
import math
import time
from dataclasses import asdict

import pytest
import torch

from eitp_bench.energy.base import Channel, Meter, PowerSample
from eitp_bench.records import EnergyEntry
from eitp_bench.suite.arms import objective_arm
from eitp_bench.energy.monitor import EnergyMonitor
from eitp_bench.records import RunRecord
from eitp_bench.runner import plan, worker_main
from eitp_bench.suite import load_suite
from eitp_bench.workloads import compress as Z
from eitp_bench.workloads import tasks as T
from eitp_bench.workloads.train import lm_quality

FAST = ["train.steps=2", "train.eval_every=2", "train.eval_batches=1", "data.train_tokens=3000",
        "data.val_tokens=512", "generate.new_tokens=4", "generate.runs=1", "generate.warmups=0",
        "generate.batch_sizes=[1]", "compress.calib_batches=1", "compress.eval_blocks=4"]


def by_name(metrics):
    return {m.name: m for m in metrics}


def old_compress_metrics(ctx) -> dict:
    """The compress task as it was before the artefact was shared (a regression oracle)."""
    model, _ = ctx.trained_lm()
    data, t = ctx.lm_data(), ctx.suite.train
    model = copy.deepcopy(model).to("cpu").eval()
    blocks = data.val_blocks(ctx.suite.compress.eval_blocks)
    loss_before, acc_before = lm_quality(model, blocks, batch_size=t.batch_size, device="cpu")
    bytes_before = Z.serialized_bytes(model)
    if ctx.arm == "baseline-int8":
        model = Z.quantize_int8_dynamic(model)
    elif ctx.arm == "eitp-compressed":
        calib = [torch.as_tensor(b) for b in T._calibration_batches(data, ctx)]
        model = Z.compress_eitp(model, calib_batches=calib, seed=ctx.seed)
    loss, acc = lm_quality(model, blocks, batch_size=t.batch_size, device="cpu")
    size = Z.serialized_bytes(model)
    return {m.name: (m.value, m.unit) for m in T._perplexity_metrics(loss, acc, data)} | {
        "model_bytes": (size, "B"), "model_bytes_uncompressed": (bytes_before, "B"),
        "compression_ratio": (bytes_before / size, "1"), "val_loss_uncompressed": (loss_before, "nats/token"),
        "val_ppl_uncompressed": (math.exp(loss_before), "1"), "val_accuracy_uncompressed": (acc_before, "1"),
        "accuracy_drop": ((acc_before - acc) / acc_before if acc_before else 0.0, "1"),
        "ppl_increase": (math.exp(loss) / math.exp(loss_before) - 1.0, "1"),
    }


@pytest.fixture(scope="module")
def trained():
    """One trained tiny model per base arm, shared by the tests' contexts (training is not under test)."""
    suite = load_suite("smoke", FAST)
    out = {}
    for arm in ("baseline", "eitp-paper"):
        c = T.TaskContext(suite=suite, arm=arm, size="tiny", seed=0, repetition=0, device="cpu")
        c.trained_lm()
        out[arm] = c.cache
    return suite, out


def context(trained, arm, monitor=None):
    suite, caches = trained
    base = caches[objective_arm(arm)]
    cache = {"lm_data": base["lm_data"], "trained_lm": base["trained_lm"]}  # fresh compression state
    return T.TaskContext(suite=suite, arm=arm, size="tiny", seed=0, repetition=0, device="cpu",
                         monitor=monitor, cache=cache)


def test_compression_arms_run_generate_and_compress_in_task_order():
    from eitp_bench.suite.arms import TASK_ORDER, tasks_for_arm

    tasks = list(TASK_ORDER)
    assert tasks_for_arm("eitp-compressed", tasks) == tasks_for_arm("baseline-int8", tasks) == ["generate", "compress"]
    assert tasks_for_arm("baseline-int8", ["compress", "train", "generate"]) == ["generate", "compress"]
    assert tasks_for_arm("baseline", tasks) == tasks


@pytest.mark.parametrize("arm", ["eitp-compressed", "baseline-int8", "baseline"])
def test_compress_metrics_mean_what_they_meant_before_the_artefact_was_shared(trained, arm):
    monitor = EnergyMonitor()
    try:
        ctx = context(trained, arm, monitor)
        if arm in T.COMPRESSION_ARMS:
            ctx.energy = []
            T.generate_task(ctx)  # generate asks first: the artefact is built (and metered) here
            assert not any(e.window == "compress" for e in ctx.energy)
        ctx.energy = []
        got = T.compress_task(ctx)
        compress_entries = [e for e in ctx.energy if e.window == "compress"]
        windows = [w.name for w in monitor.results].count("compress")
    finally:
        monitor.close()
    expected = old_compress_metrics(context(trained, arm))
    names = set(expected) | ({"compress_s", "lr"} if arm in T.COMPRESSION_ARMS else set())
    assert {m.name for m in got} == names
    if arm in T.COMPRESSION_ARMS:  # the lr of the model it compresses (a compressed arm has no train record)
        assert by_name(got)["lr"].value == ctx.trained_lm()[1].lr > 0
    for m in got:
        if m.name not in ("compress_s", "lr"):
            assert m.unit == expected[m.name][1] and m.value == pytest.approx(expected[m.name][0], rel=1e-9), m.name
    assert ctx.task_device == "cpu"  # every arm's compress task measures on CPU
    if arm in T.COMPRESSION_ARMS:
        # one compression, metered once, reported by the compress task
        assert windows == 1 and compress_entries and by_name(got)["compress_s"].value > 0
        assert by_name(got)["model_bytes"].value < 0.6 * by_name(got)["model_bytes_uncompressed"].value
    else:
        assert windows == 0 and not compress_entries and by_name(got)["compression_ratio"].value == 1.0


def test_a_compressed_arm_generates_on_cpu_and_says_so_when_the_suite_is_not(trained):
    ctx = context(trained, "baseline-int8")
    ctx.device = "cuda"  # the suite's device; the int8 artefact cannot follow it there
    got = by_name(T.generate_task(ctx))
    assert ctx.task_device == "cpu"
    assert got["generate_device_cpu_only"].value == 1.0 and got["generate_device_cpu_only"].unit == "bool"
    assert got["tokens_per_s"].value > 0
    assert isinstance(ctx.cache["compressed"].transformer.wte, Z.Int8Embedding)  # the artefact, not the fp32 model
    plain = context(trained, "baseline")
    assert "generate_device_cpu_only" not in by_name(T.generate_task(plain)) and plain.task_device == plain.device


def test_the_worker_records_where_each_task_ran(tmp_path, monkeypatch):
    def elsewhere(ctx):
        ctx.task_device = "elsewhere"
        return []

    monkeypatch.setitem(T.TASKS, "train", elsewhere)
    monkeypatch.setitem(T.TASKS, "lm", lambda ctx: [])
    recs = run_worker(tmp_path, "baseline", ["arms=[baseline]", "tasks=[train, lm]"])
    assert {r.task: r.device for r in recs} == {"train": "elsewhere", "lm": "cpu"}  # reset per task


def run_worker(tmp_path, arm, overrides):
    suite = load_suite("smoke", FAST + ["repetitions=1"] + overrides)
    [spec] = [s for s in plan(suite) if s.arm == arm]
    spec.staging = str(tmp_path / "staging")
    (tmp_path / "staging").mkdir()
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(asdict(spec)))
    assert worker_main(str(path)) == 0
    return [RunRecord.model_validate_json(p.read_text()) for p in sorted((tmp_path / "staging").glob("*.json"))]


class ConstantPowerMeter(Meter):
    """A fake counter: 10 W × elapsed seconds, with a power sample at each end of every window."""

    name = "fake"

    def channels(self):
        return [Channel("fake", "cpu:0", "package")]

    def mark(self):
        return time.monotonic()

    def energy_between(self, begin, end):
        return [EnergyEntry(meter="fake", device="cpu:0", domain="package", joules=10.0 * (end - begin), method="counter",
                            duration_s=end - begin)]

    def power_samples(self, t0, t1):
        return [PowerSample(t, "cpu:0", "package", 10.0) for t in (t0, t1)]


def test_a_compressed_arm_through_the_worker_meters_compression_once(tmp_path, monkeypatch):
    import eitp_bench.energy.monitor as M

    class FakeMonitor(M.EnergyMonitor):
        def __init__(self, **kw):
            super().__init__([ConstantPowerMeter()], **kw)

    monkeypatch.setattr(M, "EnergyMonitor", FakeMonitor)  # the worker imports it when it starts
    recs = run_worker(tmp_path, "eitp-compressed", ["arms=[eitp-compressed]", "meters.timeline=true"])
    by = {r.task: r for r in recs}
    assert set(by) == {"generate", "compress"} and all(r.status == "ok" for r in recs), [r.error for r in recs]
    gen, comp = by["generate"], by["compress"]
    assert gen.device == comp.device == "cpu" and gen.metric("tokens_per_s") > 0
    assert gen.metric("generate_device_cpu_only") == 0.0  # a CPU suite: nothing had to move
    # the compression ran during generate, yet its joules and power timeline are the compress record's
    [entry] = comp.energy
    assert entry.window == "compress" and entry.joules > 0
    assert entry.duration_s == pytest.approx(comp.metric("compress_s"), abs=0.05)
    assert "compress" not in {e.window for e in gen.energy}
    assert [p.window for p in comp.timeline] == ["compress", "compress"]
    # (the arm trains inside its first task, generate, and that window's timeline stays there, as in
    # any suite without the train task)
    assert {p.window for p in gen.timeline} == {e.window for e in gen.energy} | {"train"}
    assert comp.metric("model_bytes") < comp.metric("model_bytes_uncompressed")

def test_the_shipped_artefact_has_its_own_speed_claim_with_a_quality_gate():
    from synthetic_store import frames_from_records, record

    from eitp_bench.analysis.claims import REFUTED, VERIFIED, judge_claims, load_claims

    claim = next(c for c in load_claims("eitp").claims if c.id == "inference-speedup-compressed")
    assert (claim.candidate, claim.baseline, claim.task) == ("eitp-compressed", "baseline", "generate")

    def recs(compressed_loss):
        out = []
        for rep in range(10):  # enough rounds for Holm across the paper's headline claims
            for arm, tps, loss in (("baseline", 100.0 + rep, 3.0), ("eitp-compressed", 500.0 + rep, compressed_loss)):
                out.append(record(arm, "generate", rep, {"tokens_per_s": tps}))
                out.append(record(arm, "compress", rep, {"val_loss": loss}))
        return frames_from_records(out)

    f = recs(3.0 * 1.02)  # 5× the tokens/s, 2 % more validation loss: within the 3 % gate
    v = judge_claims(f["metrics"], f["energy"], [claim], n_resamples=2000)[0]
    assert v.verdict == VERIFIED and v.ratio == pytest.approx(5.0, rel=0.05)
    f = recs(3.0 * 1.05)  # 5 % worse: the gate fails, however fast
    v = judge_claims(f["metrics"], f["energy"], [claim], n_resamples=2000)[0]
    assert v.verdict == REFUTED and "quality gate failed" in v.reason


def test_the_compressed_speed_row_says_when_the_arms_ran_on_different_devices():
    from synthetic_store import frames_from_records, record

    from eitp_bench.analysis.claims import judge_claims, load_claims

    claim = next(c for c in load_claims("eitp").claims if c.id == "inference-speedup-compressed")
    out = []
    for rep in range(10):
        out.append(record("baseline", "generate", rep, {"tokens_per_s": 100.0 + rep}).model_copy(update={"device": "cuda"}))
        out.append(record("eitp-compressed", "generate", rep, {"tokens_per_s": 50.0 + rep}))
        for arm in ("baseline", "eitp-compressed"):
            out.append(record(arm, "compress", rep, {"val_loss": 3.0}))
    f = frames_from_records(out)
    v = judge_claims(f["metrics"], f["energy"], [claim])[0]
    assert "eitp-compressed on cpu" in v.reason and "baseline on cuda" in v.reason
    assert "CPU kernels only" in v.reason

"""The cost model (eitp_bench/analysis/cost_model.py): arithmetic against hand-computed values, the measured source read
from a store, the bundled suites it prices, and what a run records for it (precision, idle once per round)."""

import json
import os
from dataclasses import asdict
from datetime import datetime, timedelta, timezone

import pytest
import torch

from eitp_bench.analysis import cost_model as C
from eitp_bench.cli import main
from eitp_bench.records import Metric, Provenance, RunRecord
from eitp_bench.runner import plan, worker_main
from eitp_bench.suite import load_suite, suite_config_hash
from eitp_bench.workloads.sizes import gpt2_parameters

# ----------------------------------------------------------------------------- arithmetic, by hand

ONE_CORE = C.Hardware("test cpu", C.DeviceRates("test cpu", {"fp32": 1e9}, 1e9, cores=1))
TINY = ["arms=[baseline]", "tasks=[train]", "repetitions=2", "threads=1", "train.steps=10", "train.batch_size=4",
        "data.block_size=16", "retrieval.seq_len=16", "generate.prompt_len=4", "generate.new_tokens=8",
        "train.eval_every=10", "train.eval_batches=1", "meters.idle_s=3", "data.vocab_size=16"]


def test_gpt2_small_has_its_published_parameter_count():
    assert gpt2_parameters(12, 768, 50257, 1024) == 124_439_808  # GPT-2 small, tied head counted once


def test_forward_flops_per_token_by_hand():
    shape = C.ModelShape(n_layer=2, n_embd=64, vocab_size=32, n_positions=64, source="test")
    # 2·12·L·d² (blocks) + 2·L·ctx·d (attention) + 2·d·V (output head)
    assert shape.forward_flops_per_token(32) == 2 * 12 * 2 * 64 * 64 + 2 * 2 * 32 * 64 + 2 * 64 * 32 == 208_896


def test_generation_keeps_calling_until_the_window_is_long_enough():
    assert C._generation_s(0.5, warmups=2, runs=8, min_window_s=5.0) == (2 + 10) * 0.5  # 10 calls reach 5 s
    assert C._generation_s(0.5, warmups=2, runs=8, min_window_s=0.0) == (2 + 8) * 0.5


def test_whole_estimate_by_hand(monkeypatch):
    """One arm training 10 steps on one 1 GFLOP/s core, two rounds, an idle baseline of 3 s per round."""
    monkeypatch.setattr(C, "CPU_MATMUL_EFFICIENCY", 1.0)
    monkeypatch.setattr(C, "TRAIN_STEP_OVERHEAD", {"cpu": (0.01, 0.0), "cuda": (0.0, 0.0)})
    monkeypatch.setattr(C, "FORWARD_OVERHEAD", {"cpu": (0.001, 0.0), "cuda": (0.0, 0.0)})
    monkeypatch.setattr(C, "ENTROPY_S_PER_PARAM", 0.0)
    monkeypatch.setattr(C, "MODEL_BUILD_S_PER_PARAM", 1e-6)
    suite = load_suite("smoke", TINY)
    e = C.estimate(suite, ONE_CORE)
    per_token = 2 * 12 * 2 * 64 * 64 + 2 * 2 * 16 * 64 + 2 * 64 * 16  # tiny (L 2, d 64), vocab 16, context 16
    assert per_token == 202_752
    step = 3 * per_token * 4 * 16 / 1e9 + 0.01  # forward + backward on 4 × 16 tokens, plus the step's overhead
    evaluation = per_token * 4 * 16 / 1e9 + 0.001  # one evaluation: eval_batches 1 × batch 4 × 16 tokens
    # the model: embeddings (16 tokens, 16 positions, d 64), 2 blocks of 12·d² + 13·d, the final LayerNorm
    params = 16 * 64 + 16 * 64 + 2 * (12 * 64 * 64 + 13 * 64) + 2 * 64
    assert params == 102_144
    warm = suite.train.warmup_untimed_steps  # untimed warm-up steps run (and are undone) before the 10
    assert warm == 3
    # building it, the steps, two evaluations: before the first step (smoke has a target) and at the end
    train = 1e-6 * params + (warm + 10) * step + 2 * evaluation
    assert e.phases["train"] == pytest.approx(2 * train, rel=1e-12)
    assert e.phases["start_idle"] == pytest.approx(2 * C.PROCESS_START_S + 2 * 3.0)  # 2 processes, 2 rounds of idle
    assert e.total_s == pytest.approx(2 * train + 2 * C.PROCESS_START_S + 6.0, rel=1e-12)
    assert e.source == "profile" and e.uncertainty["kind"] == "factor"
    assert (e.uncertainty["low"], e.uncertainty["high"]) == C.PROFILE_FACTOR
    # the factor applies to the work, not to the idle seconds the suite fixes
    assert e.low_s == pytest.approx(0.5 * (2 * train + 2 * C.PROCESS_START_S) + 6.0, rel=1e-12)
    assert e.high_s == pytest.approx(2.0 * (2 * train + 2 * C.PROCESS_START_S) + 6.0, rel=1e-12)
    assert e.idle_measurements == 2 and e.repetitions == 2


def test_the_planted_arm_is_priced_with_its_products_and_its_ab(monkeypatch):
    """The planted arm: its products (planted_fraction of each step's and each pass's arithmetic) inside
    the steps and calls, plus its A/B outside the windows, PLANTED_AB_PAIRS × (1 + PLANTED_AB_TIMED) units with
    the products on and as many off; the baseline and the A/A arm carry neither."""
    monkeypatch.setattr(C, "CPU_MATMUL_EFFICIENCY", 1.0)
    suite = load_suite("smoke", [*TINY, "tasks=[train, generate]", "generate.modes=[sample]",
                                 "generate.batch_sizes=[1]", "self_check.aa=true", "self_check.planted=true",
                                 "self_check.planted_fraction=0.5"])
    c = C._Costs(suite, C.model_shape(suite, suite.sizes[0]), ONE_CORE)
    per_token = 2 * 12 * 2 * 64 * 64 + 2 * 2 * 16 * 64 + 2 * 64 * 16
    step_flops = 3 * per_token * 4 * 16
    plain, planted = (c.train_step_s(a, 4, 16) for a in ("baseline", "baseline-planted"))
    assert planted - plain == pytest.approx(0.5 * step_flops / 1e9, rel=1e-12)
    assert c.train_step_s("baseline-aa", 4, 16) == plain
    params = c.shape.parameters
    call_plain, call_planted = (c.generate_call_s(a, 1) for a in ("baseline", "baseline-planted"))
    assert call_planted - call_plain == pytest.approx(0.5 * 2 * params * (8 + 4) / 1e9, rel=1e-12)
    runs = C.PLANTED_AB_PAIRS * (1 + C.PLANTED_AB_TIMED)  # per state: a lead-in and the timed runs
    assert runs == 20
    assert call_plain < C.PLANTED_AB_LONG_CALL_S  # short calls: lead-in and repeats, as training steps
    ab = C._planted_ab_s(suite, c, ["train", "generate"])
    assert ab == {"train": pytest.approx(runs * (plain + planted)), "generate": pytest.approx(runs * (call_plain + call_planted))}
    # a call of PLANTED_AB_LONG_CALL_S or more is a unit alone: one call per state and pair
    monkeypatch.setattr(C, "PLANTED_AB_LONG_CALL_S", call_plain)
    assert C._planted_ab_s(suite, c, ["generate"]) == {"generate": pytest.approx(C.PLANTED_AB_PAIRS * (call_plain + call_planted))}
    monkeypatch.setattr(C, "PLANTED_AB_LONG_CALL_S", 1e9)
    e = C.estimate(suite, ONE_CORE)
    prof = {a: C._profile_phases(suite, c, a) for a in ("baseline", "baseline-aa", "baseline-planted")}
    assert prof["baseline-aa"] == prof["baseline"]
    steps = suite.train.warmup_untimed_steps + suite.train.steps
    e_min = C.ENTROPY_S_PER_PARAM * c.shape.parameters  # the planted arm skips E_min (its weights are the baseline's)
    assert e_min > 0
    assert prof["baseline-planted"]["train"] - prof["baseline"]["train"] == pytest.approx(steps * (planted - plain) - e_min)
    for phase in ("train", "generate"):  # the A/B is in the plan's total, every round
        assert e.phases[phase] == pytest.approx(suite.repetitions * (sum(p[phase] for p in prof.values()) + ab[phase]))
    start = C._start_s(suite, c)
    assert e.per_repetition_s["baseline-planted"] == pytest.approx(
        sum(prof["baseline-planted"][p] for p in C.PHASES[1:]) + ab["train"] + ab["generate"] + start)


def test_denser_evaluations_are_priced_one_by_one_with_their_weight_copies(monkeypatch):
    """eval_every 5 of 10 steps: one more evaluation, and its snapshot (taken, loaded; the final weights
    kept aside and put back: 4 copies of the weights) and one read of the training window."""
    monkeypatch.setattr(C, "CPU_MATMUL_EFFICIENCY", 1.0)
    monkeypatch.setattr(C, "BANDWIDTH_EFFICIENCY", 1.0)
    monkeypatch.setattr(C, "FORWARD_OVERHEAD", {"cpu": (0.001, 0.0), "cuda": (0.0, 0.0)})
    sparse = C.estimate(load_suite("smoke", TINY), ONE_CORE)
    dense = C.estimate(load_suite("smoke", TINY + ["train.eval_every=5"]), ONE_CORE)
    evaluation = 202_752 * 4 * 16 / 1e9 + 0.001
    copy = 2 * 4.0 * 102_144 / 1e9  # fp32 weights read and written at the one core's 1 GB/s
    extra = evaluation + 4 * copy + C.SO_FAR_READ_S
    assert dense.phases["train"] - sparse.phases["train"] == pytest.approx(2 * extra, rel=1e-9)  # 2 repetitions


def test_decode_step_is_bandwidth_or_flop_bound_plus_the_loop(monkeypatch):
    monkeypatch.setattr(C, "BANDWIDTH_EFFICIENCY", 1.0)
    monkeypatch.setattr(C, "GPU_MATMUL_EFFICIENCY", 1.0)
    monkeypatch.setattr(C, "DECODE_OVERHEAD", {"cuda": (0.002, 0.0), "cpu": (0.0, 0.0)})
    gpu = C.DeviceRates("g", {"fp32": 1e12, "bf16": 1e13}, 1e11)
    hw = C.Hardware("g", C.DeviceRates("c", {"fp32": 1e9}, 1e9, cores=1), gpu)
    suite = load_suite("smoke", ["device=cuda", "train.precision=bf16"])
    shape = C.ModelShape(2, 64, 32, 64, "test")
    costs = C._Costs(suite, shape, hw)
    n = shape.parameters
    # bf16 weights (2 bytes) streamed at 1e11 B/s against 2·N FLOP at 1e13: the stream is slower
    assert costs.decode_step_s(1) == pytest.approx(max(2 * n / 1e11, 2 * n / 1e13) + 0.002)
    # int8 on the CPU: 1 byte per weight at 1e9 B/s (one thread's bandwidth is 12e9, the CPU's 1e9)
    assert costs.decode_step_s(1, int8_cpu=True) == pytest.approx(max(n / 1e9, 2 * n / (1e9 * C.CPU_MATMUL_EFFICIENCY)))


def test_a_named_profile_and_its_host_cpu():
    hw = C.hardware_from_profile("nvidia-h100-sxm")
    assert hw.gpu.flops["bf16"] == 989.4e12 and hw.gpu.bandwidth == 3.35e12
    assert hw.cpu.cores == 112 and hw.assumed == ()  # DGX H100: 2 × 56-core Xeon
    assert C.hardware_from_profile("NVIDIA H100 SXM5 80GB").gpu == hw.gpu  # the display name works too
    from eitp_bench.errors import UserError

    with pytest.raises(UserError, match="no hardware profile named"):
        C.hardware_from_profile("nvidia-h1000")


# ----------------------------------------------------------------------------- the bundled suites


def dry_run(capsys, *args):
    assert main(["run", *args, "--dry-run", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_standard_fits_30_minutes_on_an_h100_with_every_headline_claim_judged(capsys):
    plan_ = dry_run(capsys, "standard", "--profile", "nvidia-h100-sxm")
    e = plan_["estimate"]
    assert e["total_s"] <= 1800 and e["source"] == "profile" and e["uncertainty"]["kind"] == "factor"
    assert set(e["phases"]) == set(C.PHASES) and e["phases"]["theory"] == 0  # theory and derivation are in full
    assert e["warnings"] == []  # the training window is long enough to be judged
    t = load_suite("standard").train
    assert t.eval_every <= 0.05 * t.steps  # dense evaluations: every 5 % of the step budget or more often
    short = dry_run(capsys, "standard", "--profile", "nvidia-h100-sxm", "--set", "train.steps=100",
                    "--set", "train.eval_every=10")["estimate"]
    assert any("training window of train.steps = 100 steps" in w and "raise train.steps" in w for w in short["warnings"])
    headline = plan_["claims"]["groups"]["headline"]
    from eitp_bench.analysis.claims import load_claims

    every = [c.id for c in load_claims("eitp").claims if c.group == "headline"]
    assert headline["judged"] == every and headline["not_judged"] == {}
    # Holm across k claims: the smallest one-sided p of n rounds, 2^-n, must be below 0.025 / k
    assert 2.0 ** -headline["rounds"] < 0.025 / len(every) and headline["enough"]
    assert plan_["claims"]["unjudged_named"] == []
    # on this CPU machine it still works and names what a run would need
    if not torch.cuda.is_available():
        assert {"CUDA GPU"} <= {m["what"] for m in plan_["missing"]}
    suite = load_suite("standard")
    assert suite.train.precision == "bf16"
    assert (suite.generate.modes, suite.generate.batch_sizes) == (["sample"], [1])  # names.HEADLINE_GENERATE


def test_full_holds_the_ablation_and_states_its_own_cost(capsys):
    plan_ = dry_run(capsys, "full", "--profile", "nvidia-h100-sxm")
    suite = load_suite("full")
    assert {"eitp-paper-thermo", "eitp-paper-chaos", "eitp-paper-coherence"} <= set(suite.arms)
    assert {"theory", "derivation"} <= set(suite.tasks)
    assert plan_["estimate"]["total_s"] > 1800 and plan_["estimate"]["phases"]["theory"] > 0
    assert plan_["claims"]["groups"]["ablation"]["judged"]  # the ablation table is judged there


def test_a_gpu_suite_on_a_machine_without_a_gpu_says_why_there_is_no_estimate(capsys, monkeypatch):
    monkeypatch.setattr(C, "hardware_here", lambda: ONE_CORE)
    plan_ = dry_run(capsys, "standard")
    assert "total_s" not in plan_["estimate"] and "--profile" in plan_["estimate"]["fix"]


def test_smoke_is_priced_on_this_machine(capsys):
    e = dry_run(capsys, "smoke")["estimate"]
    assert e["total_s"] > 0 and e["hardware"].startswith("this machine")


# ----------------------------------------------------------------------------- the measured source

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _records(suite, profile_id: str, step_s: list, other_s: float, decode_s: list):
    """Stored repetitions of one arm with known step and per-token times (train + generate records)."""
    config, digest = suite.model_dump(mode="json"), suite_config_hash(suite)
    out, t = [], T0
    for rep, (step, decode) in enumerate(zip(step_s, decode_s)):
        prov = Provenance(eitp_bench_version="0", python="3", platform="test", hardware_profile_id=profile_id,
                          hardware={"setup_s": 4.0 + rep, "idle_baseline": {"measured_here": True, "duration_s": 3.0}})
        train_wall = suite.train.steps * step + other_s
        common = dict(suite=suite.name, suite_config_hash=digest, arm="baseline", size="tiny", seed=rep,
                      repetition=rep, config=config, provenance=prov)
        out.append(RunRecord(task="train", started_at=t.isoformat(), finished_at=(t + timedelta(seconds=train_wall)).isoformat(),
                             metrics=[Metric(name="step_s", value=step, unit="s"),
                                      Metric(name="steps", value=suite.train.steps, unit="steps")], **common))
        t += timedelta(seconds=train_wall)
        out.append(RunRecord(task="generate", started_at=t.isoformat(), finished_at=(t + timedelta(seconds=1)).isoformat(),
                             metrics=[Metric(name="tokens_per_s@sample-b1", value=1.0 / decode, unit="tokens/s")],
                             **common))
        t += timedelta(seconds=60)
    return out


def test_rates_for_a_named_profile_come_from_the_runs_that_name_it(tmp_path):
    """--profile NAME: runs whose GPU profiles list it, or whose CPU profile is it; a run that recorded neither
    field (NaN in the provenance frame) is passed over, never an error."""
    from eitp_bench.analysis.runtime import measured_rates, rate_frames
    from eitp_bench.store import Store

    suite = load_suite("smoke", ["arms=[baseline]", "tasks=[train, generate]", "repetitions=2"])
    gpu = _records(suite, "hp-a", step_s=[0.1], other_s=2.0, decode_s=[0.01])
    cpu = _records(suite, "hp-b", step_s=[0.3], other_s=2.0, decode_s=[0.03])
    neither = _records(suite, "hp-c", step_s=[9.0], other_s=9.0, decode_s=[9.0])
    for r in gpu:
        r.provenance = r.provenance.model_copy(update={"hardware": {**r.provenance.hardware, "gpu_profiles": ["nvidia-h100-sxm"]}})
    for r in cpu:
        r.provenance = r.provenance.model_copy(update={"hardware": {**r.provenance.hardware, "cpu_profile": "amd-epyc-9654"}})
    with Store.open(str(tmp_path / "r.sqlite")) as store:
        store.add_many(gpu + cpu + neither)
    frames = rate_frames(str(tmp_path / "r.sqlite"), open_read_only=True)
    on_gpu = measured_rates(frames, suite, profile_name="nvidia-h100-sxm")
    on_cpu = measured_rates(frames, suite, profile_name="amd-epyc-9654")
    assert on_gpu.runs == len(gpu) and on_gpu.train_step_s == {"baseline": [0.1]}
    assert on_cpu.runs == len(cpu) and on_cpu.train_step_s == {"baseline": [0.3]}
    assert on_gpu.setup_s == [4.0] and on_gpu.setup_idle_s == [3.0]  # the recorded set-up and its measured idle
    assert measured_rates(frames, suite, profile_name="nvidia-t4") is None


def test_an_estimate_from_measured_step_and_token_times(tmp_path, capsys):
    from eitp_bench.hardware import describe
    from eitp_bench.store import Store

    sets = ["arms=[baseline]", "tasks=[train, generate]", "generate.modes=[sample]", "generate.batch_sizes=[1]",
            "generate.warmups=1", "generate.runs=2", "generate.new_tokens=10", "meters.min_window_s=0",
            "meters.idle_s=3", "repetitions=4"]
    suite = load_suite("smoke", sets)
    here = describe()["profile_id"]
    store_path = tmp_path / "r.sqlite"
    with Store.open(str(store_path)) as store:
        store.add_many(_records(suite, here, step_s=[0.1, 0.2, 0.3], other_s=2.0, decode_s=[0.01, 0.02, 0.04]))
        # another machine's runs are not this machine's rates
        store.add_many(_records(suite, "elsewhere", step_s=[9.0], other_s=9.0, decode_s=[9.0]))
    sets_args = sum((["--set", s] for s in sets), [])
    e = dry_run(capsys, "smoke", *sets_args, "--store", str(store_path))["estimate"]
    steps = suite.train.steps
    # train: steps × the median step time + the rest of the train task as measured (median); 4 repetitions
    assert e["phases"]["train"] == pytest.approx(4 * (steps * 0.2 + 2.0), abs=0.05)
    assert e["phase_range"]["train"] == pytest.approx([4 * (steps * 0.1 + 2.0), 4 * (steps * 0.3 + 2.0)], abs=0.05)
    # generate: (1 warm-up + 2 runs) calls of 10 tokens at the median per-token time
    assert e["phases"]["generate"] == pytest.approx(4 * 3 * 10 * 0.02, abs=0.05)
    # start: the measured set-up without its idle (4, 5, 6 s less 3 s of idle: median 2 s) per process,
    # plus the measured idle once per round
    assert e["phases"]["start_idle"] == pytest.approx(4 * 2.0 + 4 * 3.0, abs=0.05)
    assert e["source"] == "measured" and e["uncertainty"]["kind"] == "spread" and e["uncertainty"]["runs"] == 6
    # a suite that changes a rate-setting value (the precision) is priced from the profile again
    e2 = dry_run(capsys, "smoke", *sets_args, "--set", "train.precision=bf16", "--store", str(store_path))["estimate"]
    assert e2["source"] == "profile"


def test_estimate_against_actual_per_phase():
    from eitp_bench.analysis.frames import load_frames
    from eitp_bench.analysis.runtime import estimate_vs_actual
    from synthetic_store import frames_from_records

    suite = load_suite("smoke", ["arms=[baseline]", "tasks=[train, generate]", "repetitions=2"])
    recs = _records(suite, "hp", step_s=[0.1, 0.3], other_s=2.0, decode_s=[0.01, 0.02])
    estimate = {"total_s": 50.0, "phases": {"train": 20.0, "generate": 5.0, "start_idle": 25.0}, "source": "profile"}
    for r in recs:
        r.provenance.hardware["cost_estimate"] = estimate
    table = estimate_vs_actual(load_frames(frames_from_records(recs)))
    rows = {r["phase"]: r for r in table["rows"]}
    steps = suite.train.steps
    assert rows["train"]["actual_s"] == pytest.approx(steps * 0.1 + 2 + steps * 0.3 + 2)
    assert rows["generate"]["actual_s"] == pytest.approx(2.0) and rows["generate"]["estimated_s"] == 5.0
    assert rows["start_idle"]["actual_s"] == pytest.approx(4.0 + 5.0)  # the recorded set-up of each repetition
    assert rows["total"]["estimated_s"] == 50.0


@pytest.mark.parametrize("stretch", [None, 1, 3])
def test_on_a_nightly_store_the_estimate_is_set_against_the_newest_run_of_the_suite_only(stretch, monkeypatch):
    """Every night stores the suite again with its estimate: the actual is one night's, not the nights' sum,
    and a run that failed and was retried within the night does not cut the night short. The walk back
    from the newest run reads the runs a stretch at a time: stretches shorter than a night find it too."""
    from eitp_bench.analysis import runtime
    from eitp_bench.analysis.frames import load_frames
    from eitp_bench.analysis.runtime import estimate_vs_actual

    if stretch:
        monkeypatch.setattr(runtime, "_SLICE", stretch)
    from eitp_bench.report.runtime_section import runtime_sections
    from synthetic_store import frames_from_records

    suite = load_suite("smoke", ["arms=[baseline]", "tasks=[train, generate]", "repetitions=2"])
    estimate = {"total_s": 50.0, "phases": {"train": 20.0, "generate": 5.0}, "source": "profile"}
    nights = []
    for night in range(3):
        recs = _records(suite, "hp", step_s=[0.1, 0.3], other_s=2.0 + night, decode_s=[0.01, 0.02])
        for r in recs:
            r.provenance.hardware["cost_estimate"] = dict(estimate)  # equal, not one shared object
        nights.append(recs)
    failed = nights[2][0].model_copy(update={"status": "failed", "error": "killed", "run_id": "night-2-failed"})
    unpriced = nights[2][-1].model_copy(deep=True, update={"run_id": "no-estimate"})
    del unpriced.provenance.hardware["cost_estimate"]  # the newest record recorded none: NaN in its frame
    stored = nights[0] + nights[1] + [failed] + nights[2] + [unpriced]
    table = estimate_vs_actual(load_frames(frames_from_records(stored)))
    rows = {r["phase"]: r for r in table["rows"]}
    # the last night's two trainings, and its failed one
    last_trains = [r for r in nights[2] if r.task == "train"]
    assert len(last_trains) == 2
    assert rows["train"]["actual_s"] == pytest.approx(sum(map(_wall, last_trains)) + _wall(failed))
    assert rows["train"]["actual_s"] == pytest.approx(2 * (suite.train.steps * 0.1 + 4) + suite.train.steps * 0.3 + 4)
    assert rows["generate"]["actual_s"] == pytest.approx(2.0)
    assert table["repetitions"] == 2 and table["earlier_runs"] == len(nights[0]) + len(nights[1])
    html = runtime_sections(load_frames(frames_from_records(stored)))[0][1]
    assert "of the newest run of the suite (8 task records of its earlier runs" in html
    assert "Estimated before the run (source: profile, range" in html  # no hardware named: no "on"
    one_night = estimate_vs_actual(load_frames(frames_from_records(nights[2])))
    assert one_night["earlier_runs"] == 0 and {r["phase"]: r["actual_s"] for r in one_night["rows"]}["generate"] == 2.0


def _wall(record) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(record.finished_at) - datetime.fromisoformat(record.started_at)).total_seconds()


def test_estimate_against_actual_is_the_same_read_a_slice_of_runs_at_a_time(monkeypatch):
    from eitp_bench.analysis import runtime
    from eitp_bench.analysis.frames import load_frames
    from synthetic_store import frames_from_records

    suite = load_suite("smoke", ["arms=[baseline]", "tasks=[train, generate]", "repetitions=3"])
    recs = _records(suite, "hp", step_s=[0.1, 0.3, 0.2], other_s=2.0, decode_s=[0.01, 0.02, 0.03])
    for r in recs:
        r.provenance.hardware["cost_estimate"] = {"total_s": 50.0, "phases": {"train": 20.0}, "source": "profile"}
    frames = load_frames(frames_from_records(recs))
    whole = runtime.estimate_vs_actual(frames)
    monkeypatch.setattr(runtime, "_SLICE", 2)  # slices that split the repetitions
    assert runtime.estimate_vs_actual(frames) == whole and whole["rows"][0]["actual_s"] > 0


# ----------------------------------------------------------------------------- what a run records

FAST = ["train.steps=2", "train.eval_every=2", "train.eval_batches=1", "data.train_tokens=3000", "data.val_tokens=512",
        "generate.new_tokens=4", "generate.runs=1", "generate.warmups=0", "generate.batch_sizes=[1]",
        "generate.modes=[sample]", "arms=[baseline]", "tasks=[train, lm, generate]"]


@pytest.mark.parametrize("precision, dtype", [("bf16", "bfloat16"), ("fp32", "float32")])
def test_precision_applies_to_training_evaluation_and_generation_and_is_recorded(tmp_path, precision, dtype):
    suite = load_suite("smoke", FAST + [f"train.precision={precision}"])
    [spec] = plan(suite)[:1]
    spec.staging = str(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(asdict(spec)))
    assert worker_main(str(tmp_path / "spec.json")) == 0
    rec = {t: RunRecord.model_validate_json((tmp_path / f"{t}.json").read_text()) for t in ("train", "lm", "generate")}
    assert all(r.status == "ok" for r in rec.values()), [r.error for r in rec.values()]
    seen = {t: r.provenance.hardware["precision"] for t, r in rec.items()}
    assert seen["train"]["observed"] == {"train": [dtype], "eval": [dtype]}  # steps and the evaluations between
    assert seen["lm"]["observed"] == {"eval": [dtype]}
    assert seen["generate"]["observed"] == {"generate": [dtype]}
    assert {s["setting"] for s in seen.values()} == {precision}
    assert {s["autocast"] for s in seen.values()} == {None if precision == "fp32" else dtype}


def test_compression_quality_stays_fp32_on_cpu_under_bf16(tmp_path):
    suite = load_suite("smoke", FAST[:-2] + ["arms=[baseline-int8]", "tasks=[generate, compress]", "train.precision=bf16",
                                             "compress.calib_batches=1", "compress.eval_blocks=2"])
    [spec] = plan(suite)[:1]
    spec.staging = str(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps(asdict(spec)))
    assert worker_main(str(tmp_path / "spec.json")) == 0
    gen = RunRecord.model_validate_json((tmp_path / "generate.json").read_text()).provenance.hardware["precision"]
    cmp = RunRecord.model_validate_json((tmp_path / "compress.json").read_text()).provenance.hardware["precision"]
    assert gen["observed"]["train"] == ["bfloat16"]  # the base arm's training, inside generate
    assert gen["observed"]["generate"] == ["float32"]  # the int8 artefact on CPU, no autocast
    assert cmp["observed"] == {"compress-eval": ["float32"]}


def test_the_idle_baseline_is_measured_once_per_round(tmp_path):
    """The first repetition of each round measures the idle; the round's others use it and say whose it is."""
    from eitp_bench.runner import Runner

    suite = load_suite("smoke", ["arms=[baseline, eitp-paper]", "tasks=[train]", "repetitions=2", "meters.idle_s=0.2",
                                 *FAST[:5]])
    assert C.idle_measurements(suite) == 2
    summary = Runner(suite, tmp_path / "out", progress="off").run()
    by_round: dict = {}
    for r in summary.records:
        assert r.status == "ok", r.error
        by_round.setdefault(r.repetition, []).append(r.provenance.hardware["idle_baseline"])
    for rnd, idles in by_round.items():
        measured = [i for i in idles if i["measured_here"]]
        assert len(measured) == 1 and len(idles) == 2
        [other] = [i for i in idles if not i["measured_here"]]
        assert other["measured_by"] == measured[0]["measured_by"] and other["round"] == rnd
        assert other["channels"] == measured[0]["channels"]


def test_the_report_sets_the_estimate_against_the_actual_times():
    from eitp_bench.report.build import build_report
    from synthetic_store import frames_from_records

    suite = load_suite("smoke", ["arms=[baseline]", "tasks=[train, generate]", "repetitions=2"])
    recs = _records(suite, "hp", step_s=[0.1, 0.3], other_s=2.0, decode_s=[0.01, 0.02])
    estimate = {"total_s": 50.0, "low_s": 25.0, "high_s": 100.0, "phases": {"train": 20.0, "generate": 5.0},
                "source": "profile", "hardware": "nvidia-h100-sxm (profile)"}
    for r in recs:
        r.provenance.hardware["cost_estimate"] = estimate
    html = build_report(frames_from_records(recs), theory=False)
    steps = suite.train.steps
    train = steps * 0.1 + 2 + steps * 0.3 + 2
    assert "Time: estimated and actual" in html and f"{train / 20.0:.2f}×" in html
    assert "Estimated before the run on nvidia-h100-sxm (profile) (source: profile, range 25 s – 100 s)" in html
    assert "Time: estimated and actual" not in build_report(frames_from_records(_records(suite, "hp", [0.1], 2.0, [0.01])),
                                                            theory=False)  # no recorded estimate: no section


def test_profile_prices_a_dry_run_only(tmp_path, capsys):
    assert main(["run", "smoke", "--profile", "nvidia-h100-sxm", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--profile" in err and "--dry-run" in err and not (tmp_path / "o").exists()
    assert main(["run", "standard", "--dry-run", "--profile", "no-such-gpu"]) == 2
    assert "no hardware profile named 'no-such-gpu'" in capsys.readouterr().err


def test_a_run_records_its_estimate_and_set_up_time(tmp_path, capsys):
    out = tmp_path / "out"
    sets = sum((["--set", s] for s in FAST[:5] + ["arms=[baseline]", "tasks=[train]", "repetitions=1"]), [])
    assert main(["run", "smoke", "--out", str(out), "--store", str(tmp_path / "r.sqlite"), "--no-report", *sets]) == 0
    assert "eitp-bench: estimated" in capsys.readouterr().err
    recorded = json.loads((out / "suite.json").read_text())["estimate"]
    assert recorded["source"] == "profile" and set(recorded["phases"]) == set(C.PHASES)
    [rec] = [RunRecord.model_validate_json(p.read_text()) for p in out.glob("*-train.json")]
    assert rec.provenance.hardware["cost_estimate"] == recorded
    assert rec.provenance.hardware["setup_s"] > 0


def test_every_named_host_cpu_is_a_cpu_profile_with_cores():
    from eitp_bench.hardware.profiles import profiles_by_stem

    profiles = profiles_by_stem()
    hosts = {stem: p.typical_host_cpu for stem, p in profiles.items() if p.typical_host_cpu}
    assert hosts  # the reference GPUs name their host
    for stem, host in hosts.items():
        assert profiles[host].kind == "cpu" and profiles[host].cores and profiles[host].peak_flops.fp32, (stem, host)
        assert profiles[stem].typical_host_sockets

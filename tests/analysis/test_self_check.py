"""The suite's own proof: the A/A control, the planted effect, and the demotion a failed A/A check causes."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from eitp_bench.analysis.claims import INCONCLUSIVE, VERIFIED, load_claims
from eitp_bench.analysis.findings import analyse
from eitp_bench.analysis.frames import load_frames
from eitp_bench.analysis.self_check import aa_metrics
from eitp_bench.records import RunRecord
from eitp_bench.suite.arms import AA_ARM, PLANTED_ARM
from tests.synthetic_store import eitp_records, frames_from_records, record


def _copy_arm(records, arm: str, scale: dict[str, float] | None = None, noise: float = 0.0, seed: int = 1):
    """The baseline's records under another arm name, same rounds; `scale` multiplies named metrics,
    `noise` adds a lognormal wobble per value (an honest second run of the same thing)."""
    rng = np.random.default_rng(seed)
    out = []
    for r in records:
        if r.arm != "baseline" or r.status != "ok":
            continue
        data = r.model_dump()
        data.pop("run_id")
        data["arm"] = arm
        for m in data["metrics"]:
            factor = (scale or {}).get(m["name"], 1.0)
            if noise and m["name"] not in ("model_bytes", "target_reached", "target_val_loss", "lr", "e_min_j@bf16",
                                           "retrieval_chance") and not m["name"].startswith("retrieval_n"):
                factor *= float(rng.lognormal(0.0, noise))
            m["value"] = m["value"] * factor
        out.append(RunRecord.model_validate(data))
    return out


def _group(records):
    return analyse(load_frames(frames_from_records(records)), load_claims("eitp"), n_resamples=300).to_json()["groups"][0]


def test_the_registry_reads_eight_metrics_against_the_baseline():
    found = {(task, metric) for task, metric, _ in aa_metrics(load_claims("eitp"))}
    assert found == {("generate", "tokens_per_s"), ("train", "joules_to_target"), ("train", "train_joules_per_step"),
                     ("compress", "model_bytes"), ("lm", "val_ppl"), ("retrieval", "retrieval_acc_long"),
                     ("train", "time_to_target_s"), ("lm", "val_accuracy")}


def test_an_identical_copy_passes_and_leaves_the_verdicts_alone():
    recs = eitp_records(n_reps=10, speedup=6.0)
    g = _group(recs + _copy_arm(recs, AA_ARM, noise=0.01))
    aa = g["self_check"]["aa"]
    assert aa["status"] == "passed", aa
    assert aa["text"].startswith(f"A/A check: no difference on {aa['checked']}/{aa['checked']} metrics (as expected)")
    verdicts = {v["claim"]: v for v in g["verdicts"]}
    assert verdicts["inference-speedup"]["verdict"] == VERIFIED
    assert "A/A" not in verdicts["inference-speedup"]["why"]


def test_a_differing_aa_arm_demotes_every_decided_verdict_of_its_group():
    recs = eitp_records(n_reps=10, speedup=6.0)
    without = {v["claim"]: v["verdict"] for v in _group(recs)["verdicts"]}
    assert without["inference-speedup"] == VERIFIED  # the verdict the demotion must overturn
    decided = [c for c, v in without.items() if v in (VERIFIED, "REFUTED")]
    assert len(decided) >= 2

    g = _group(recs + _copy_arm(recs, AA_ARM, scale={"tokens_per_s": 1.25}, noise=0.01))
    aa = g["self_check"]["aa"]
    assert aa["status"] == "failed" and aa["differs"] == ["tokens_per_s"], aa
    row = next(r for r in aa["rows"] if r["metric"] == "tokens_per_s")
    assert row["ci"][0] > 1 and row["p_adjusted"] < 0.05
    verdicts = {v["claim"]: v for v in g["verdicts"]}
    for claim in decided:
        assert verdicts[claim]["verdict"] == INCONCLUSIVE, verdicts[claim]
        assert verdicts[claim]["why"].startswith("this machine's A/A check failed: tokens_per_s (generate), effect ratio")
    assert "A/A check FAILED" in aa["text"]
    json.dumps(g["self_check"])  # plain JSON


def _planted_records(n: int, share: float, seed: int = 0, cv: float = 0.03):
    """Baseline and planted training/generation runs: the planted run's time is its own baseline-like
    time plus `share` of the total (recorded as planted_*_share, as the workloads do)."""
    rng = np.random.default_rng(seed)
    out = []
    for rep in range(n):
        for arm in ("baseline", AA_ARM, PLANTED_ARM):
            t = 10.0 * rng.lognormal(0, cv)  # the round's own noise, per arm
            gen = 100.0 * rng.lognormal(0, cv)
            train, generate = {"train_s": t}, {"tokens_per_s": gen}
            if arm == PLANTED_ARM:
                total = t / (1 - share)  # planted seconds = share × total
                # the products' own seconds: 90 % of the whole planted cost (the A/B's share)
                train = {"train_s": total, "planted_train_s": 0.9 * share * total, "planted_train_share": share,
                         "planted_train_product_share": 0.9 * share}
                generate = {"tokens_per_s": gen * (1 - share), "planted_generate_share": share,
                            "planted_generate_product_share": 0.9 * share}
            out.append(record(arm, "train", rep, train))
            out.append(record(arm, "generate", rep, generate))
    return out


def test_a_planted_share_is_detected_within_its_interval():
    g = _group(_planted_records(10, share=0.2))
    planted = g["self_check"]["planted"]
    assert planted["status"] == "detected", planted
    rows = {r["metric"]: r for r in planted["rows"]}
    assert rows["train_s"]["planted"] == pytest.approx(1.25)  # from the whole share, not the products' own
    assert rows["tokens_per_s"]["planted"] == pytest.approx(0.8)
    assert rows["train_s"]["product_share"] == pytest.approx(0.18)  # shown beside it
    for m in ("train_s", "tokens_per_s"):
        lo, hi = rows[m]["ci"]
        assert lo <= rows[m]["planted"] <= hi and rows[m]["result"] == "detected within its interval"
    assert rows["train_joules"]["result"] == "not checked"  # no joules recorded here
    assert planted["text"].startswith("Planted effect detected: train_s planted +25.0 %")


def test_a_planted_cost_that_the_timings_overstate_is_not_within_its_interval():
    recs = _planted_records(10, share=0.2)
    for r in recs:  # the record claims twice the planted seconds the run really carried
        for m in r.metrics:
            if m.name in ("planted_train_share", "planted_generate_share"):
                m.value = 0.4
    planted = _group(recs)["self_check"]["planted"]
    assert planted["status"] == "detected, size off"
    assert planted["text"].startswith("Planted effect detected, but not at its planted size: train_s planted +66.7 %")
    assert {r["result"] for r in planted["rows"] if r["result"] != "not checked"} == {
        "detected, but its interval misses the planted ratio"}


@pytest.mark.parametrize("share, overstated, covered", [(0.2, 1.005, True), (0.2, 1.03, False),
                                                      (0.85, 1.04, True), (0.85, 1.07, False)])
def test_the_planted_interval_allows_the_ab_method_error_and_no_more(share, overstated, covered):
    """The A/B may miss up to 6 % of a baseline step (per-step costs the same with and without the planted
    work), which overstates a ratio R of times by 1.06·R / (R + 0.06): ±1.1 % at a share of 20 % (R = 1.25),
    ±5 % at 85 % (R = 6.7). Within that the size holds; beyond it the check says "size off"."""
    from eitp_bench.analysis.self_check import PLANTED_AB_MISSED_STEP, ab_error

    truth = 1 / (1 - share)
    assert PLANTED_AB_MISSED_STEP == 0.06 and ab_error(truth, "time") == pytest.approx(1.06 * truth / (truth + 0.06))
    assert ab_error(1 - share, "rate") == pytest.approx(ab_error(truth, "time"))  # a rate's ratio inverted
    recs = _planted_records(10, share=share, cv=0.001)  # the judge sees the truth to within ±0.1 %
    for r in recs:  # every run's A/B reads the ratio `overstated` times too high
        for m in r.metrics:
            if m.name == "planted_train_share":
                m.value = 1 - 1 / (truth * overstated)
    row = next(r for r in _group(recs)["self_check"]["planted"]["rows"] if r["metric"] == "train_s")
    planted = truth * overstated
    assert row["planted"] == pytest.approx(planted) and row["planted_ci"] == pytest.approx([planted] * 2)
    error = ab_error(planted, "time")
    assert row["planted_allowed"] == pytest.approx([planted / error, planted * error])
    assert row["ci"][1] < planted  # outside the bare planted interval either way
    assert row["covered"] is covered


def test_a_planted_ratio_measured_with_spread_is_judged_with_its_own_interval():
    from eitp_bench.analysis.self_check import median_interval

    assert median_interval([5, 1, 3, 2, 4, 7, 6]) == (1, 7)  # 7 runs: the range covers the median 98.4 %
    assert median_interval(range(1, 10)) == (2, 8)  # 9 runs: x(2)..x(8), 96.1 %
    assert median_interval([3.0]) == (3.0, 3.0)
    recs = _planted_records(10, share=0.2)
    spread = iter(np.linspace(0.16, 0.24, 10))  # each run's measured share wobbles around the true 0.2
    for r in recs:
        if r.arm == PLANTED_ARM and r.task == "train":
            value = float(next(spread))
            for m in r.metrics:
                if m.name == "planted_train_share":
                    m.value = value
    row = next(r for r in _group(recs)["self_check"]["planted"]["rows"] if r["metric"] == "train_s")
    step = 0.08 / 9  # x(2) and x(9) of the 10 runs' ratios (97.9 %)
    assert row["planted_ci"] == pytest.approx([1 / (1 - 0.16 - step), 1 / (1 - 0.24 + step)])
    assert row["covered"] and row["result"] == "detected within its interval"


def test_a_planted_effect_lost_in_noise_is_missed():
    planted = _group(_planted_records(6, share=0.02, cv=0.2))["self_check"]["planted"]
    assert planted["status"] == "missed" and planted["text"].startswith("Planted effect MISSED")


def test_no_control_arm_no_self_check():
    assert _group(eitp_records(n_reps=6))["self_check"] == {}


# ----------------------------------------------------------------------------- the workload


def test_planted_work_is_real_timed_and_leaves_training_unchanged():
    import torch

    from eitp_bench.workloads.models import build_model
    from eitp_bench.workloads.planted import PlantedWork, planted_repeats

    assert planted_repeats(124_000_000, 768, 0.1, training=True) == 63
    assert planted_repeats(124_000_000, 768, 0.1, training=False) == 21
    assert planted_repeats(1000, 768, 0.1, training=False) == 1  # never zero work

    def trained(plant: bool):
        model = build_model("tiny", vocab_size=32, n_positions=32, seed=0)
        work = PlantedWork.attach(model, 0.5) if plant else None
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        torch.manual_seed(0)
        for _ in range(3):
            ids = torch.randint(0, 32, (4, 16))
            loss = model(ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            model(torch.randint(0, 32, (2, 8)))
        return model, work

    plain, _ = trained(False)
    planted, work = trained(True)
    for a, b in zip(plain.parameters(), planted.parameters()):
        assert torch.equal(a, b)  # the planted products draw no random numbers and touch no weight
    assert len(work.calls) == 4 and all(d > 0 for _, d in work.calls)

    class Window:  # what seconds_within reads of a monitor WindowResult
        def __init__(self, start, end):
            self.start, self.end = start, end

    times = [t for t, _ in work.calls]
    assert work.seconds_within([Window(times[0], times[2])]) == pytest.approx(sum(d for _, d in work.calls[:3]))
    assert work.seconds_within([Window(times[-1] + 1, times[-1] + 2)]) == 0.0
    work.detach()
    planted(torch.randint(0, 32, (1, 4)))
    assert len(work.calls) == 4


def test_the_ab_pairs_alternate_take_the_median_and_put_the_hook_back():
    from eitp_bench.workloads.planted import PlantedWork, paired_ratio

    work = PlantedWork(width=4, train_repeats=1, eval_repeats=1)
    seen = []
    seconds = iter([3.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 90.0, 2.0, 1.0])  # on/off times; a load spike in pair 4

    def unit():
        seen.append(work.enabled)
        return next(seconds)

    assert paired_ratio(work, unit, pairs=5) == 2.0  # ratios 3, 2, 2, 90, 2: the median
    assert seen == [True, False, False, True, True, False, False, True, True, False]  # adjacent, order alternating
    assert work.enabled

    def broken():
        raise RuntimeError("a unit failed")

    with pytest.raises(RuntimeError):
        paired_ratio(work, broken)
    assert work.enabled  # never left off


def test_the_ab_runs_real_units_and_leaves_the_model_and_rng_untouched():
    import torch

    from eitp_bench.workloads.generate import GenerationSetting
    from eitp_bench.workloads.models import build_model
    from eitp_bench.workloads.objectives import make_objective
    from eitp_bench.workloads.planted import PlantedWork, generation_ratio, train_step_ratio
    from eitp_bench.workloads.train import OptimSettings

    model = build_model("tiny", vocab_size=32, n_positions=32, seed=0)
    work = PlantedWork.attach(model, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    ids = torch.randint(0, 32, (2, 8), generator=torch.Generator().manual_seed(1))
    ratio = train_step_ratio(work, model, make_objective("baseline"), (ids, ids), settings=OptimSettings(lr=0.1),
                             device="cpu", pairs=2)
    assert math.isfinite(ratio) and ratio > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # every A/B step undone
    assert torch.equal(torch.get_rng_state(), rng) and all(p.grad is None for p in model.parameters())
    assert len(work.calls) == 2 * 4  # the planted work ran in the "on" units only: 2 × (lead-in + 3 timed steps)
    setting = GenerationSetting("greedy", 1, 3, 1.0, 1.0)
    ratio = generation_ratio(work, model.eval(), ids[:1], setting, device="cpu", precision="fp32", pairs=2)
    assert math.isfinite(ratio) and ratio > 0
    assert len(work.calls) == 8 + 2 * 4 * 3  # 2 "on" units × 4 calls × 3 forward passes (one per new token)


# ----------------------------------------------------------------------------- the suite switch


def test_the_switches_add_the_control_arms_and_need_the_baseline():
    from eitp_bench.suite import Suite, load_suite
    from eitp_bench.suite.problems import SuiteInvalid

    smoke = load_suite("smoke")
    assert AA_ARM not in smoke.arms and PLANTED_ARM not in smoke.arms  # off in smoke's default
    on = load_suite("smoke", overrides=["self_check.aa=true", "self_check.planted=true"])
    assert on.arms[-2:] == [AA_ARM, PLANTED_ARM]
    assert Suite.model_validate(on.model_dump()).arms == on.arms  # a stored suite.json reads back the same
    for name in ("standard", "full"):
        assert {AA_ARM, PLANTED_ARM} <= set(load_suite(name).arms)
    from eitp_bench.runner.plan import plan

    tasks = {spec.arm: spec.tasks for spec in plan(on, "hp")}
    assert tasks[AA_ARM] == tasks["baseline"]  # the baseline under a second name: every task
    assert tasks[PLANTED_ARM] == ["train", "generate"]  # what the planted check reads, nothing more
    with pytest.raises(SuiteInvalid, match="add baseline to arms"):
        load_suite("smoke", overrides=["arms=[eitp-paper]", "self_check.aa=true"])
    with pytest.raises(SuiteInvalid, match="trains exactly as baseline"):
        load_suite("smoke", overrides=["self_check.aa=true", "objectives.baseline-aa={}"])


# ----------------------------------------------------------------------------- a real run


def _smoke_self_check(out) -> dict:
    """A smoke run of the tiny model on CPU with both control arms on, 7 rounds (about 50-60 s on a
    shared 2-core machine), and its report's self_check. The planted work is sized large
    (planted_fraction 20: +~400 % training time and −~34 % tokens/s on the machine it was sized on, +755-767 %
    and −44-45 % on a later one) because a shared CPU's
    run-to-run noise is tens of per cent (at 10, −22 % tokens/s, a loaded machine's interval reached
    past 1 in 4 of 14 runs); generation is timed over 10 calls so its windows see through it."""
    store = out / "results.sqlite"
    run = [sys.executable, "-m", "eitp_bench.cli", "run", "smoke", "--out", str(out / "run"), "--store", str(store),
           "--quiet", "--no-report", "--set", "arms=[baseline]", "--set", "self_check.aa=true",
           "--set", "self_check.planted=true", "--set", "self_check.planted_fraction=20",
           "--set", "repetitions=7", "--set", "tasks=[train,lm,generate]",
           "--set", "generate.runs=10", "--set", "generate.batch_sizes=[1]", "--set", "generate.modes=[sample]"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = subprocess.run([sys.executable, "-m", "eitp_bench.cli", "report", "--store", str(store), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    doc = json.loads(report.stdout)
    checks = doc["groups"][0]["self_check"]
    assert doc["self_check"] == checks  # the first screen's: the most recent group's
    # What holds in every run, whatever the noise:
    aa_rows = {r["metric"]: r for r in checks["aa"]["rows"]}
    for m in ("val_ppl", "val_accuracy"):  # same settings and seed in a fresh process: bit-identical on CPU
        assert aa_rows[m]["why"] == "identical in every round", aa_rows[m]
    assert aa_rows["tokens_per_s"]["result"] in ("no difference", "differs")  # a measured speed: judged
    rows = {r["metric"]: r for r in checks["planted"]["rows"]}
    assert rows["train_s"]["planted"] > 1.5 and 0 < rows["tokens_per_s"]["planted_share"] < 1
    for m in ("train_s", "tokens_per_s"):  # the A/B's whole share, and the products' own share beside it
        assert rows[m]["ci"] is not None and 0 < rows[m]["product_share"] < 1, rows[m]
        (lo, hi), (p_lo, p_hi), (a_lo, a_hi) = rows[m]["ci"], rows[m]["planted_ci"], rows[m]["planted_allowed"]
        assert a_lo < p_lo <= rows[m]["planted"] <= p_hi < a_hi and rows[m]["covered"] == (lo <= a_hi and a_lo <= hi)
    return checks


def _passes(checks: dict) -> bool:
    """The issue's "done when": the A/A check passes, and every planted time metric is detected with
    the right sign and an interval that covers the ratio the run's own A/B measured."""
    rows = [r for r in checks["planted"]["rows"] if r["kind"] != "energy"]
    return (checks["aa"]["status"] == "passed" and checks["planted"]["status"] == "detected"
            and len(rows) == 2 and all(r["detected"] and r["covered"] for r in rows))


@pytest.mark.slow
def test_a_smoke_run_with_the_control_arms_passes_its_aa_check_and_sees_its_planted_effect(tmp_path):
    """The issue's "done when" on a real run. Its statistics fail a healthy run now and then: a 95 %
    interval misses its truth 1 time in 20, the A/A check may fail up to 5 %, and a load spike in a few
    rounds' generation windows can widen tokens/s's interval past 1 (9 of 10 runs passed on this
    shared 2-core machine at load 2-4.7, docs/self-checks.md). So when the first run fails, a second,
    independent run is judged, and the test fails only if both do (≈ 1 % at that rate). A planted cost
    the runs mismeasure fails both: with the products' own seconds as the planted cost (before the
    A/B), 3 of 4 runs failed, two of them "size off" on training time."""
    first = _smoke_self_check(tmp_path / "first")
    if _passes(first):
        return
    second = _smoke_self_check(tmp_path / "second")
    assert _passes(second), (f"two smoke runs in a row failed the self-checks: first {first['aa']['text']} "
                             f"{first['planted']['text']}; second {second['aa']['text']} {second['planted']['text']}")


def test_the_report_shows_the_self_checks_on_its_first_screen():
    from eitp_bench.report.build import render_report

    recs = eitp_records(n_reps=10, speedup=6.0)
    recs += _copy_arm(recs, AA_ARM, scale={"tokens_per_s": 1.25}, noise=0.01)
    html = render_report(analyse(load_frames(frames_from_records(recs)), load_claims("eitp"), n_resamples=300))
    first_screen = html[:html.index('<details')]  # the answer comes before any collapsible section
    assert "A/A check FAILED: 1 of" in first_screen and "tokens_per_s (generate)" in first_screen
    assert "</b>. Planted effect not run." in first_screen  # two sentences, a space between them


def test_the_configuration_hash_sees_the_arms_and_the_planted_size_not_the_switches():
    from eitp_bench.suite import load_suite, suite_config_hash

    plain = load_suite("smoke")
    switched = load_suite("smoke", overrides=["self_check.aa=true"])
    listed = load_suite("smoke", overrides=[f"arms=[{', '.join(plain.arms)}, {AA_ARM}]"])
    assert suite_config_hash(switched) == suite_config_hash(listed) != suite_config_hash(plain)
    assert suite_config_hash(load_suite("smoke", overrides=["self_check.planted_fraction=0.5"])) == suite_config_hash(plain)
    planted = ["self_check.planted=true", "self_check.planted_fraction=0.5"]
    assert suite_config_hash(load_suite("smoke", overrides=planted)) != suite_config_hash(
        load_suite("smoke", overrides=planted[:1]))


def test_report_json_from_a_store_whose_aa_arm_differs(tmp_path, capsys):
    from eitp_bench.cli import main
    from eitp_bench.store import Store

    recs = eitp_records(n_reps=10, speedup=6.0)
    recs += _copy_arm(recs, AA_ARM, scale={"val_ppl": 1.02}, noise=0.01)
    store = Store.open(tmp_path / "s.sqlite")
    store.add_many(recs)
    capsys.readouterr()
    assert main(["report", "--store", str(tmp_path / "s.sqlite"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    aa = doc["self_check"]["aa"]
    assert aa["status"] == "failed" and aa["differs"] == ["val_ppl"]
    decided = [v for v in doc["groups"][0]["verdicts"] if v["verdict"] in (VERIFIED, "REFUTED")]
    assert decided == []
    speedup = next(v for v in doc["groups"][0]["verdicts"] if v["claim"] == "inference-speedup")
    assert speedup["verdict"] == INCONCLUSIVE
    assert speedup["why"].startswith("this machine's A/A check failed: val_ppl (lm), effect ratio 1.0")
    assert "the statistics would say VERIFIED" in speedup["why"]

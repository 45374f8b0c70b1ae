"""The training pictures' data: loss curves per arm, energy per arm by sensor, time per step and to target."""

import pandas as pd
import pytest

from eitp_bench import names
from eitp_bench.analysis.training_view import arm_energy, loss_curves, step_time_samples, training_time


def metric_rows(rows):
    return pd.DataFrame([{"task": "train", "status": "ok", **r} for r in rows])


def curve(arm, run_id, points, joules_name=names.CURVE_JOULES):
    rows = []
    for step, loss, joules in points:
        rows.append({"arm": arm, "run_id": run_id, "name": names.at(names.CURVE_VAL_LOSS, step), "value": loss})
        rows.append({"arm": arm, "run_id": run_id, "name": names.at(joules_name, step), "value": joules})
    return rows


def test_loss_curves_take_the_median_over_runs_at_each_step():
    m = metric_rows(curve("a", "r1", [(10, 3.0, 100.0), (20, 2.0, 200.0)])
                    + curve("a", "r2", [(10, 5.0, 300.0), (20, 4.0, 400.0)]))
    by_step, by_joules = loss_curves(m)
    assert by_step["curves"]["a"]["median"] == ([10.0, 20.0], [4.0, 3.0])
    assert by_joules["curves"]["a"]["median"] == ([200.0, 300.0], [4.0, 3.0])
    assert len(by_joules["curves"]["a"]["runs"]) == 2 and "measured" in by_joules["xlabel"]


def test_estimated_joules_are_labelled_and_never_mixed_with_measured():
    m = metric_rows(curve("a", "r1", [(10, 3.0, 1.0)], joules_name=names.estimated(names.CURVE_JOULES)))
    _, by_joules = loss_curves(m)
    assert by_joules["xlabel"].startswith("ESTIMATED")


def test_energy_per_arm_keeps_each_ranks_sensor_apart_and_sums_them_per_run():
    e = pd.DataFrame([{"task": "train", "window": "train", "arm": "a", "run_id": r, "device": "gpu:0", "domain": "gpu",
                       "method": "counter", "joules": j + (5.0 if r == "r2" else 0.0), "rank": k, "host": "n1"}
                      for r in ("r1", "r2", "r3") for k, j in ((0, 10.0), (1, 12.0))])
    [picture] = arm_energy(e)
    [bar] = picture["bars"]
    assert set(bar["parts"]) == {"gpu:0 gpu rank 0 on n1", "gpu:0 gpu rank 1 on n1"}
    assert bar["total"] == 22.0 and bar["n"] == 3 and bar["low"] <= 22.0 <= bar["high"] <= 32.0
    assert not picture["estimated"]


def test_core_and_estimates_never_enter_a_measured_bar():
    e = pd.DataFrame([
        {"task": "t", "window": "w", "arm": "a", "run_id": "r1", "device": "cpu:0", "domain": "package",
         "method": "counter", "joules": 10.0},
        {"task": "t", "window": "w", "arm": "a", "run_id": "r1", "device": "cpu:0", "domain": "core",
         "method": "counter", "joules": 8.0},
        {"task": "t", "window": "w", "arm": "a", "run_id": "r1", "device": "cpu:0", "domain": "package",
         "method": "estimated", "joules": 99.0}])
    [picture] = arm_energy(e)
    assert picture["bars"][0]["total"] == 10.0 and picture["bars"][0]["parts"] == {"cpu:0 package": 10.0}


def test_training_time_per_arm():
    m = metric_rows([{"arm": "a", "run_id": r, "name": n, "value": v}
                     for r, step_s, reached in (("r1", 0.1, 1.0), ("r2", 0.3, 0.0))
                     for n, v in (("step_s", step_s), ("train_s", step_s * 10), ("target_reached", reached))]
                    + [{"arm": "a", "run_id": "r1", "name": "time_to_target_s", "value": 0.7}])
    [row] = training_time(m)
    assert row["step_s"] == pytest.approx(0.2) and row["train_s"] == pytest.approx(2.0)
    assert row["time_to_target_s"] == 0.7 and (row["reached"], row["runs"]) == (1, 2)
    assert list(step_time_samples(m)["a"]) == [0.1, 0.3]

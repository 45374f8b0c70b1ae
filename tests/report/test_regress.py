"""Nightly regression detection on series with a known step, and on flat noise."""

import numpy as np
import pytest
from synthetic_store import frames_from_records, record

from eitp_bench import cli
from eitp_bench.errors import UserError
from eitp_bench.analysis.regress import confirmed, find_changes, metric_direction, parse_threshold


def series_records(values, *, metric="tokens_per_s", arm="baseline", task="generate", profile="hp-a"):
    return [record(arm, task, i, {metric: v}, started=i, profile=profile) for i, v in enumerate(values)]


def step_series(seed=0, n=40, at=25, before=100.0, after=80.0, noise=0.01):
    rng = np.random.default_rng(seed)
    v = np.where(np.arange(n) < at, before, after)
    return v * (1 + rng.normal(0, noise, n))


@pytest.fixture
def use_frames(monkeypatch):
    """Point the commands' store loading at synthetic frames (the CLI path, without SQLite)."""
    import eitp_bench.analysis.frames as frames_module
    import eitp_bench.report.build as build

    def install(records):
        frames = build.load_frames(frames_from_records(records))
        monkeypatch.setattr(build, "load_frames", lambda store=None: frames)
        monkeypatch.setattr(build, "load_report", lambda store=None, suite=None, max_groups=5: build.for_suite(frames, suite))
        monkeypatch.setattr(frames_module, "load_series", lambda store=None, names=None: frames)  # regress, compare
        monkeypatch.setattr(frames_module, "sql_store", lambda store=None: None)  # regress: no store to read by metric
    return install


def test_step_found_at_the_right_index_as_a_regression():
    f = frames_from_records(series_records(step_series()))
    found = confirmed(find_changes(f["metrics"], window=8, threshold=0.05))
    assert len(found) == 1
    c = found[0]
    assert c.index == 25 and c.kind == "regression"
    assert c.relative == pytest.approx(-0.2, abs=0.02)
    assert c.q_value <= 0.05


def test_direction_turns_a_drop_in_time_into_an_improvement():
    f = frames_from_records(series_records(step_series(), metric="step_s", task="train"))
    (c,) = confirmed(find_changes(f["metrics"]))
    assert c.kind == "improvement"


def test_small_step_below_threshold_is_not_confirmed():
    f = frames_from_records(series_records(step_series(after=97.0, noise=0.002)))
    changes = find_changes(f["metrics"], threshold=0.05)
    assert changes and not confirmed(changes)  # real (3 %) but below the 5 % minimum effect


def test_flat_noisy_series_have_no_confirmed_change():
    records = []
    for s in range(20):
        rng = np.random.default_rng(100 + s)
        records += series_records(100 * (1 + rng.normal(0, 0.05, 40)), arm=f"arm{s}")
    assert confirmed(find_changes(frames_from_records(records)["metrics"])) == []


def test_series_are_separated_by_hardware():
    # Interleaved runs of two machines at different speeds: no change within either series.
    recs = []
    rng = np.random.default_rng(0)
    for i in range(30):
        recs.append(record("baseline", "generate", i, {"tokens_per_s": 100 + rng.normal()}, started=2 * i,
                           profile="slow"))
        recs.append(record("baseline", "generate", i, {"tokens_per_s": 200 + rng.normal()}, started=2 * i + 1,
                           profile="fast"))
    assert confirmed(find_changes(frames_from_records(recs)["metrics"])) == []


def test_metric_direction():
    assert metric_direction("tokens_per_s") == "higher_is_better"
    assert metric_direction("retrieval_acc@512") == "higher_is_better"
    assert metric_direction("train_tokens_per_s") == "higher_is_better"
    assert metric_direction("compression_ratio") == "higher_is_better"
    for name in ("step_s", "train_step_s", "energy_to_target_j", "joules_to_target", "joules_per_token@sample-bs1",
                 "latency_p50_s@greedy-bs8", "val_loss", "model_bytes", "accuracy_drop", "ppl_increase"):
        assert metric_direction(name) == "lower_is_better", name
    assert metric_direction("parameters") is None


def test_parse_threshold():
    assert parse_threshold("5%") == pytest.approx(0.05)
    assert parse_threshold("0.05") == pytest.approx(0.05)
    for bad in ("five", "-5%", "0", "%"):
        with pytest.raises(UserError):
            parse_threshold(bad)


def test_cli_exit_1_on_regression(use_frames, capsys, tmp_path):
    use_frames(series_records(step_series()))
    out = tmp_path / "r.html"
    assert cli.main(["regress", "--window", "8", "--threshold", "5%", "--html", str(out)]) == 1
    text = capsys.readouterr().out
    assert "1 regressions" in text and "generate/baseline/tokens_per_s@hp-a" in text
    assert "Nightly regressions" in out.read_text()


def test_cli_exit_0_on_flat_series(use_frames, capsys):
    rng = np.random.default_rng(7)
    use_frames(series_records(100 * (1 + rng.normal(0, 0.03, 40))))
    assert cli.main(["regress"]) == 0
    assert "0 regressions" in capsys.readouterr().out


def test_cli_bad_threshold_is_one_clear_line(use_frames, capsys):
    use_frames(series_records(step_series()))
    assert cli.main(["regress", "--threshold", "lots"]) == 2
    err = capsys.readouterr().err
    assert "--threshold 'lots' is not a number" in err and "Traceback" not in err


def test_regress_says_nothing_testable_aloud_and_exits_0(tmp_path, capsys):
    from eitp_bench.cli import main
    from eitp_bench.store import Store
    from synthetic_store import eitp_records

    path = tmp_path / "few.sqlite"
    store = Store.open(str(path))
    store.add_many(eitp_records(n_reps=2))  # two points per series: no change point can be tested
    store.close()
    assert main(["regress", "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert "nothing testable" in out and "series" in out

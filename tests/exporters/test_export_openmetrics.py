"""`eitp-bench export --format openmetrics|prometheus`: parsed back with prometheus_client's own parsers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from synthetic_store import record

from eitp_bench.cli import main
from eitp_bench.exporters.openmetrics import metric_family_name
from eitp_bench.flags import Flag
from eitp_bench.records import EnergyEntry
from eitp_bench.store import Store

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families as parse_classic  # noqa: E402

ODD_SUITE = 'night "A"\\B\nline'  # every character the label escaping must handle


def _gpu(joules, *, method="counter", window="generate@sample-b1", flags=()):
    return EnergyEntry(window=window, device="gpu:0", domain="gpu", joules=joules, method=method, meter="nvml",
                       duration_s=12.0, samples=120, flags=list(flags))


def fleet_records():
    """A slowing generate series (10 runs, 100 → 80 tokens/s at run 5), then a latest run's energy."""
    recs = []
    rng = np.random.default_rng(3)
    for i in range(10):
        speed = (100.0 if i < 5 else 80.0) * (1 + rng.normal(0, 0.002))
        r = record("baseline", "generate", i, {"tokens_per_s@sample-b1": speed, "latency_p50_s@sample-b1": 1 / speed,
                                               "joules_per_token_estimated": 9.0},
                   suite=ODD_SUITE, profile="hp-gpu", started=i)
        r.energy = [_gpu(1000.0 + i), _gpu(400.0 + i, method="estimated")]
        recs.append(r)
    # the latest run's second window has a sensor fault: it must be absent, not replaced by an older figure
    recs[-1].energy.append(_gpu(5.0, window="train", flags=[Flag(code="not_steady", message="2 s window")]))
    recs[0].energy.append(_gpu(77.0, window="train"))
    recs.append(record("eitp-paper", "train", 0, {"step_s": 0.25, "train_joules": 123.0}, suite=ODD_SUITE,
                       profile="hp-gpu", started=20))
    return recs


@pytest.fixture
def store_path(tmp_path):
    path = tmp_path / "results.sqlite"
    with Store.open(str(path)) as st:
        st.add_many(fleet_records())
    return path


def _export(store_path, fmt, out):
    assert main(["export", "--format", fmt, "--store", str(store_path), "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


def _samples(families):
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def _find(samples, name, **labels):
    hits = [v for (n, ls), v in samples.items() if n == name and all((k, v2) in ls for k, v2 in labels.items())]
    assert len(hits) == 1, (name, labels, hits)
    return hits[0]


def test_openmetrics_parses_and_holds_the_latest_measured_figures(store_path, tmp_path):
    text = _export(store_path, "openmetrics", tmp_path / "eitp.om")
    fams = {f.name: f for f in parse_openmetrics(text)}
    samples = _samples(fams.values())
    assert fams["eitp_bench_energy_joules"].type == "counter"
    assert fams["eitp_bench_energy_joules"].unit == "joules"
    # latest ok run (repetition 9) of the generate window: 1009 J, counter method
    assert _find(samples, "eitp_bench_energy_joules_total", suite=ODD_SUITE, window="generate@sample-b1",
                 method="counter") == 1009.0
    # measured only: the estimated entries are not exported under any name
    assert not [k for k in samples if ("method", "estimated") in k[1]]
    assert not [k for k in samples if "estimated" in k[0]]
    # the latest run's train window is faulted: no sample, and not repetition 0's 77 J either
    assert not [k for k in samples if k[0] == "eitp_bench_energy_joules_total" and ("window", "train") in k[1]]
    speed = _find(samples, "eitp_bench_tokens_per_second", arm="baseline", setting="sample-b1")
    assert 75 < speed < 85  # the last run, after the slowdown
    assert fams["eitp_bench_latency_p50_seconds"].unit == "seconds"
    assert _find(samples, "eitp_bench_step_seconds", arm="eitp-paper") == 0.25
    assert _find(samples, "eitp_bench_train_joules", arm="eitp-paper") == 123.0
    # regress confirms the slowdown of tokens_per_s (a regression) and latency (a regression too)
    assert _find(samples, "eitp_bench_regression", metric="tokens_per_s@sample-b1") == 1.0
    # a 1-run series is not testable: no 0 that would read as "checked"
    assert not [k for k in samples if k[0] == "eitp_bench_regression" and ("metric", "step_s") in k[1]]
    assert text.endswith("# EOF\n")
    for name, fam in fams.items():
        assert f"# HELP {name} " in text and f"# TYPE {name} {fam.type}" in text


def test_regression_is_zero_for_a_flat_tested_series(tmp_path):
    path = tmp_path / "flat.sqlite"
    with Store.open(str(path)) as st:
        st.add_many([record("baseline", "generate", i, {"tokens_per_s": 100.0 + (i % 2)}, started=i) for i in range(8)])
    fams = parse_openmetrics(_export(path, "openmetrics", tmp_path / "flat.om"))
    assert _find(_samples(fams), "eitp_bench_regression", metric="tokens_per_s") == 0.0


def test_prometheus_dialect_is_the_classic_text_format_node_exporter_reads(store_path, tmp_path):
    text = _export(store_path, "prometheus", tmp_path / "eitp_bench.prom")
    assert "# EOF" not in text and "# UNIT" not in text
    assert "# TYPE eitp_bench_energy_joules_total counter" in text
    samples = _samples(parse_classic(text))
    assert _find(samples, "eitp_bench_energy_joules_total", suite=ODD_SUITE, window="generate@sample-b1") == 1009.0
    with pytest.raises(ValueError):  # the two dialects differ for real: OpenMetrics needs its EOF
        list(parse_openmetrics(text))


def test_label_values_are_escaped(store_path, tmp_path):
    text = _export(store_path, "prometheus", tmp_path / "x.prom")
    assert 'suite="night \\"A\\"\\\\B\\nline"' in text
    assert "\nline" not in text.replace("\\nline", "")


def test_write_is_atomic_and_leaves_no_temp_file(store_path, tmp_path):
    out = tmp_path / "textfile" / "eitp_bench.prom"
    out.parent.mkdir()
    out.write_text("old\n")
    _export(store_path, "prometheus", out)
    assert sorted(os.listdir(out.parent)) == ["eitp_bench.prom"]
    assert out.read_text().startswith("# HELP")


def test_stdout_and_read_only_store(store_path, tmp_path, capsys):
    os.chmod(store_path, 0o444)
    assert main(["export", "--format", "openmetrics", "--store", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert list(parse_openmetrics(out))


def test_out_directory_is_one_clear_error(store_path, tmp_path, capsys):
    assert main(["export", "--format", "openmetrics", "--store", str(store_path), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


@pytest.mark.parametrize("metric, name", [
    ("tokens_per_s@sample-b1", "eitp_bench_tokens_per_second"),
    ("latency_p99_s", "eitp_bench_latency_p99_seconds"),
    ("train_joules", "eitp_bench_train_joules"),
    ("model_bytes", "eitp_bench_model_bytes"),
    ("retrieval_acc@128", "eitp_bench_retrieval_acc"),
    ("time_to_target_s", "eitp_bench_time_to_target_seconds"),
])
def test_metric_names_follow_prometheus_conventions(metric, name):
    assert metric_family_name(metric)[0] == name

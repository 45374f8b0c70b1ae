"""Names are built once: what the workloads write is what analysis reads."""

from eitp_bench import names
from eitp_bench.workloads.generate import GenerationResult, GenerationSetting


def test_generation_writer_and_readers_share_the_headline_window():
    written = GenerationResult(GenerationSetting("sample", 1), [0.1], 10).window_name
    assert written == names.headline_generate_window() == "generate@sample-b1"
    other = GenerationResult(GenerationSetting("greedy", 4), [0.1], 10).window_name
    assert other != names.headline_generate_window()
    assert names.parse_generate_tag(other) == ("greedy", 4)
    assert names.parse_generate_tag("train") is None


def test_theory_section_headline_reads_only_sample_batch_1():
    from synthetic_store import frames_from_records, record

    from eitp_bench.analysis.theory_view import generate_methods as _generate_methods
    from eitp_bench.report.build import load_frames

    recs = [record("baseline", "generate", 0, {"x": 1.0}, energy_window=names.headline_generate_window(),
                   energy_joules=5.0, energy_method="counter"),
            record("baseline", "generate", 1, {"x": 1.0}, energy_window=names.generate_window("greedy", 4),
                   energy_joules=5.0, energy_method="sampled")]
    assert _generate_methods(load_frames(frames_from_records(recs))) == {"baseline": "counter"}


def test_every_declared_metric_has_a_unit_and_the_spec_ignores_tags():
    assert all(m.unit for m in names.METRICS.values())
    assert names.spec("tokens_per_s@greedy-b8").direction == "higher_is_better"
    assert names.spec("joules_to_target_estimated").unit == "J"
    assert names.at("retrieval_acc", 128) == "retrieval_acc@128" and names.split_at("retrieval_acc@128") == ("retrieval_acc", "128")

"""Suite loading: clear errors (file, field, value), overrides, config hash."""

import textwrap

import pytest

from eitp_bench.cli import main
from eitp_bench.errors import UserError
from eitp_bench.suite import bundled_suites, load_suite, suite_config_hash

GOOD = """\
name: mine
arms: [baseline, eitp-paper]
tasks: [train, lm]
repetitions: 3
train:
  steps: 10
  batch_size: 4
"""


def write(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def error_of(name_or_path, overrides=()):
    with pytest.raises(UserError) as err:
        load_suite(str(name_or_path), list(overrides))
    return err.value


def test_bundled_suites_load_and_smoke_covers_every_arm_and_task():
    assert {"smoke", "standard", "full"} <= set(bundled_suites())
    smoke = load_suite("smoke")
    assert smoke.sizes == ["tiny"] and smoke.device == "cpu"
    assert set(smoke.arms) == {"baseline", "eitp-paper", "eitp-coded", "eitp-compressed", "baseline-int8"}
    assert set(smoke.tasks) == {"train", "lm", "retrieval", "generate", "compress", "theory", "derivation"}
    assert load_suite("standard").repetitions >= 5


def test_good_file_loads_with_defaults(tmp_path):
    suite = load_suite(str(write(tmp_path, GOOD)))
    assert suite.name == "mine" and suite.train.steps == 10 and suite.train.lr == 5e-5
    assert [suite.seed_for(r) for r in range(3)] == [0, 1, 2]


def test_unknown_key_names_file_and_dotted_field(tmp_path):
    path = write(tmp_path, GOOD + "  stepz: 5\n")
    err = error_of(path)
    assert str(path) in err.message and "'train.stepz'" in err.message and "unknown key" in err.message


def test_bad_value_names_field_value_and_expectation(tmp_path):
    err = error_of(write(tmp_path, GOOD.replace("steps: 10", "steps: -4")))
    assert "'train.steps'" in err.message and "-4" in err.message and "greater than or equal to 1" in err.message


def test_bad_arm_lists_what_is_expected(tmp_path):
    err = error_of(write(tmp_path, GOOD.replace("eitp-paper", "eitp-magic")))
    assert "'arms.1'" in err.message and "eitp-magic" in err.message and "baseline" in err.message


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "name: x\narms: [baseline\ntasks: [lm]\n")
    err = error_of(path)
    assert str(path) in err.message and "YAML syntax error" in err.message and "line 3" in err.message


def test_missing_file_and_unknown_name(tmp_path):
    assert "does not exist" in error_of(tmp_path / "nope.yaml").message
    err = error_of("no-such-suite")
    assert "no suite named 'no-such-suite'" in err.message and "smoke" in err.fix


def test_cross_field_check_seeds_length(tmp_path):
    err = error_of(write(tmp_path, GOOD + "seeds: [1, 2]\n"))
    assert "seeds has 2 entries but repetitions is 3" in err.message


def test_overrides_are_yaml_scalars_on_dotted_paths(tmp_path):
    path = write(tmp_path, GOOD)
    suite = load_suite(
        str(path),
        ["train.steps=50", "repetitions=2", "generate.batch_sizes=[1, 2]", "thresholds.perplexity=0.9", "device=cpu"],
    )
    assert suite.train.steps == 50 and suite.repetitions == 2
    assert suite.generate.batch_sizes == [1, 2] and suite.thresholds == {"perplexity": 0.9}
    assert suite.train.batch_size == 4  # untouched siblings stay


def test_bad_overrides_are_clear(tmp_path):
    path = write(tmp_path, GOOD)
    err = error_of(path, ["train.stepz=5"])
    assert "unknown setting 'train.stepz'" in err.message and "steps" in err.message.split("known settings here")[1]
    assert "unknown setting 'nosuch'" in error_of(path, ["nosuch.x=1"]).message
    assert "not KEY=VALUE" in error_of(path, ["train.steps"]).message
    assert "repetitions" in error_of(path, ["repetitions=0"]).message
    assert "is not a section" in error_of(path, ["repetitions.x=1"]).message


def test_config_hash_is_stable_across_key_order_and_changes_with_values(tmp_path):
    a = load_suite(str(write(tmp_path, GOOD, "a.yaml")))
    reordered = "train:\n  batch_size: 4\n  steps: 10\nrepetitions: 3\ntasks: [train, lm]\narms: [baseline, eitp-paper]\nname: mine\n"
    b = load_suite(str(write(tmp_path, reordered, "b.yaml")))
    assert suite_config_hash(a) == suite_config_hash(b)
    assert len(suite_config_hash(a)) == 64
    c = load_suite(str(write(tmp_path, GOOD, "c.yaml")), ["train.steps=11"])
    assert suite_config_hash(c) != suite_config_hash(a)


def test_run_command_with_a_bad_suite_exits_2_with_one_line(tmp_path, capsys):
    path = write(tmp_path, GOOD + "  stepz: 5\n")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eitp-bench: error: suite ") and "train.stepz" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing ran
    assert main(["run", "smoke", "--set", "train.steps=zero"]) == 2
    assert "'train.steps'" in capsys.readouterr().err


def test_exponent_numbers_without_a_dot_are_numbers_in_files_and_overrides(tmp_path):
    """`1e-3` is how people write a learning rate; YAML 1.1 alone would read it as a string."""
    path = write(tmp_path, GOOD.replace("  steps: 10\n", "  steps: 10\n  lr: 1e-3\n"))
    assert load_suite(str(path)).train.lr == 1e-3
    for text, value in (("5e-5", 5e-5), ("1E-4", 1e-4), ("+2e-4", 2e-4), ("3.0e-4", 3e-4)):
        assert load_suite(str(path), [f"train.lr={text}"]).train.lr == value


def test_quoted_numbers_and_booleans_stay_what_they_are(tmp_path):
    from eitp_bench.suite.safe_yaml import load_plain

    assert load_plain('"1e-3"', top_level=False) == "1e-3"  # quoted: a string, still refused as a number
    assert load_plain("'5e-5'", top_level=False) == "5e-5"
    assert load_plain("true", top_level=False) is True
    assert load_plain("1e3", top_level=False) == 1000.0 and load_plain("e3", top_level=False) == "e3"
    assert "lr" in error_of(write(tmp_path, GOOD.replace("  steps: 10\n", '  steps: 10\n  lr: "1e-3"\n'))).message

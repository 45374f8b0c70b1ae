"""Everything checked before any work: bad suites through the CLI → exit 2, one line naming the
field, no traceback, nothing started, nothing written. Odd names never crash the readers."""

from __future__ import annotations

import copy
import re
import textwrap

import pytest
import yaml

from eitp_bench.cli import main
from eitp_bench.suite import load_suite, suite_file_name
from eitp_bench.suite.safe_yaml import MAX_FILE_BYTES

BASE = {
    "name": "check",
    "arms": ["baseline", "eitp-paper"],
    "tasks": ["train", "lm", "retrieval", "generate", "derivation"],
    "repetitions": 2,
    "device": "cpu",
    "data": {"kind": "markov", "vocab_size": 32, "block_size": 32, "train_tokens": 4000, "val_tokens": 2048},
    "train": {"steps": 5, "batch_size": 4},
    "generate": {"new_tokens": 8, "prompt_len": 8, "batch_sizes": [1, 2]},
    "retrieval": {"seq_len": 32, "distances": [4, 12], "n_keys": 2, "vocab_size": 32},
}


def suite_with(**changes) -> dict:
    """BASE with dotted settings changed (`data__kind` → data.kind); a value of DROP removes the key."""
    out = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node, parts = out, dotted.split("__")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is DROP:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return out


DROP = object()
INF, NAN = float("inf"), float("nan")


def case(id_, field, suite=None, sets=(), **changes):
    """One bad suite: the YAML (a dict, text or bytes; BASE with `changes` by default), --set values,
    and the text the error must contain (the dotted field, or what is wrong with the file)."""
    return pytest.param(suite if suite is not None else suite_with(**changes), list(sets), field, id=id_)


BOMB = "name: x\narms: [baseline]\ntasks: [train]\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))
BASE_TEXT = yaml.safe_dump(BASE, sort_keys=False)

TYPES_AND_NUMBERS = [
    case("repetitions-text", "repetitions", repetitions="two"),
    case("repetitions-0", "repetitions", repetitions=0),
    case("repetitions-negative", "repetitions", repetitions=-1),
    case("repetitions-fraction", "repetitions", repetitions=1.5),
    case("repetitions-bool", "repetitions", repetitions=True),
    case("repetitions-too-many", "repetitions", repetitions=10_001),
    case("repetitions-1e12", "repetitions", repetitions=1e12),
    case("repetitions-null", "repetitions", repetitions=None),
    case("seed-negative", "seed", seed=-1),
    case("seed-1e30", "seed", seed=1e30),
    case("seed-2-32", "seed", seed=2**32),
    case("seed-text", "seed", seed="x"),
    case("seed-plus-repetitions", "seed", seed=2**32 - 1),
    case("seeds-length", "seeds", seeds=[1]),
    case("seeds-negative", "seeds.0", seeds=[-1, 2]),
    case("seeds-text", "seeds.0", seeds=["a", 1]),
    case("name-empty", "name", name=""),
    case("name-newline", "name", name="a\nb"),
    case("name-escape-sequence", "name", name="a\x1b[31mred"),
    case("name-too-long", "name", name="x" * 300),
    case("name-number", "name", name=123),
    case("description-huge", "description", description="x" * 20_000),
    case("arms-empty", "arms", arms=[]),
    case("arms-unknown", "arms.1", arms=["baseline", "magic"]),
    case("arms-twice", "arms", arms=["baseline", "baseline"]),
    case("arms-string", "arms", arms="baseline"),
    case("tasks-empty", "tasks", tasks=[]),
    case("tasks-unknown", "tasks.0", tasks=["fly"]),
    case("tasks-twice", "tasks", tasks=["train", "train"]),
    case("sizes-unknown", "sizes.0", sizes=["huge"]),
    case("sizes-empty", "sizes", sizes=[]),
    case("sizes-twice", "sizes", sizes=["tiny", "tiny"]),
    case("device-gpu", "device", device="gpu"),
    case("kind-unknown", "kind", kind="fast"),
    case("timeout-0", "timeout_s", timeout_s=0),
    case("timeout-negative", "timeout_s", timeout_s=-5),
    case("timeout-inf", "timeout_s", timeout_s=INF),
    case("timeout-nan", "timeout_s", timeout_s=NAN),
    case("timeout-30-years", "timeout_s", timeout_s=1e9),
    case("threads-0", "threads", threads=0),
    case("threads-5000", "threads", threads=5000),
    case("interval-0", "meters.interval", meters={"interval": 0}),
    case("interval-nan", "meters.interval", meters={"interval": NAN}),
    case("interval-1000", "meters.interval", meters={"interval": 1000}),
    case("idle-negative", "meters.idle_s", meters={"idle_s": -1}),
    case("timeline-yes", "meters.timeline", meters={"timeline": "yes"}),
    case("co2-two-letters", "meters.co2_country", meters={"co2_country": "XX"}),
    case("co2-unknown", "meters.co2_country", meters={"co2_country": "ZZZ"}),
    case("cooldown-negative", "meters.cooldown_s", meters={"cooldown_s": -1}),
    case("meters-unknown-key", "meters.intervall", meters={"intervall": 1}),
    case("attn-flash", "model.attn_implementation", model={"attn_implementation": "flash"}),
    case("dropout-1", "model.dropout", model={"dropout": 1.0}),
    case("pretrained-nul", "model.pretrained", model={"pretrained": "gpt\x002"}, data__kind="text_file",
         data__text_file="x.txt"),
    case("data-kind", "data.kind", data__kind="csv"),
    case("data-vocab-small", "data.vocab_size", data__vocab_size=4),
    case("data-vocab-huge", "data.vocab_size", data__vocab_size=2_000_000),
    case("data-order-0", "data.order", data__order=0),
    case("data-order-contexts", "data.order", data__vocab_size=1000, data__order=3),
    case("data-markov-table", "data.vocab_size", data__vocab_size=10_000, data__order=1),
    case("data-concentration-0", "data.concentration", data__concentration=0),
    case("data-block-2", "data.block_size", data__block_size=2),
    case("data-block-huge", "data.block_size", data__block_size=100_000),
    case("data-train-tokens-0", "data.train_tokens", data__train_tokens=0),
    case("data-train-tokens-float", "data.train_tokens", data__train_tokens=1e9),
    case("data-train-tokens-huge", "data.train_tokens", data__train_tokens=200_000_000),
    case("data-tokenizer", "data.tokenizer", data__tokenizer="bpe"),
    case("data-val-fraction-1", "data.val_fraction", data__val_fraction=1),
    case("data-seed-negative", "data.seed", data__seed=-3),
    case("text-file-not-set", "data", data__kind="text_file"),
    case("train-steps-0", "train.steps", train__steps=0),
    case("train-steps-text", "train.steps", train__steps="ten"),
    case("train-steps-float", "train.steps", train__steps=1e8),
    case("train-batch-0", "train.batch_size", train__batch_size=0),
    case("train-batch-negative", "train.batch_size", train__batch_size=-1),
    case("train-batch-huge", "train.batch_size", train__batch_size=100_000),
    case("train-lr-0", "train.lr", train__lr=0),
    case("train-lr-inf", "train.lr", train__lr=INF),
    case("train-lr-nan", "train.lr", train__lr=NAN),
    case("train-lr-text", "train.lr", train__lr="fast"),
    case("train-schedule", "train.lr_schedule", train__lr_schedule="step"),
    case("train-warmup-negative", "train.warmup_steps", train__warmup_steps=-1),
    case("train-untimed-warmup-negative", "train.warmup_untimed_steps", train__warmup_untimed_steps=-1),
    case("train-untimed-warmup-huge", "train.warmup_untimed_steps", train__warmup_untimed_steps=10_001),
    case("train-decay-negative", "train.weight_decay", train__weight_decay=-0.1),
    case("train-clip-0", "train.grad_clip", train__grad_clip=0),
    case("train-precision", "train.precision", train__precision="fp8"),
    case("train-policy", "train.lr_policy", train__lr_policy="best"),
    case("train-grid-empty", "train.lr_grid", train__lr_grid=[]),
    case("train-grid-zero", "train.lr_grid.0", train__lr_grid=[0]),
    case("train-grid-inf", "train.lr_grid.0", train__lr_grid=[INF]),
    case("train-grid-twice", "train.lr_grid", train__lr_grid=[1e-3, 1e-3]),
    case("train-tune-fraction-1", "train.tune_fraction", train__tune_fraction=1),
    case("train-eval-every-0", "train.eval_every", train__eval_every=0),
    case("train-target-negative", "train.target_val_loss", train__target_val_loss=-1),
    case("train-unknown-key", "train.stepz", train__stepz=5),
    case("generate-new-tokens-0", "generate.new_tokens", generate__new_tokens=0),
    case("generate-new-tokens-huge", "generate.new_tokens", generate__new_tokens=20_000),
    case("generate-batch-0", "generate.batch_sizes.0", generate__batch_sizes=[0]),
    case("generate-batch-negative", "generate.batch_sizes.1", generate__batch_sizes=[1, -1]),
    case("generate-batch-empty", "generate.batch_sizes", generate__batch_sizes=[]),
    case("generate-batch-text", "generate.batch_sizes.0", generate__batch_sizes=["a"]),
    case("generate-batch-twice", "generate.batch_sizes", generate__batch_sizes=[1, 1]),
    case("generate-modes-empty", "generate.modes", generate__modes=[]),
    case("generate-modes-beam", "generate.modes.0", generate__modes=["beam"]),
    case("generate-runs-0", "generate.runs", generate__runs=0),
    case("generate-temperature-nan", "generate.temperature", generate__temperature=NAN),
    case("generate-top-p", "generate.top_p", generate__top_p=1.5),
    case("retrieval-seq-len-4", "retrieval.seq_len", retrieval__seq_len=4),
    case("retrieval-distances-empty", "retrieval.distances", retrieval__distances=[]),
    case("retrieval-n-keys-0", "retrieval.n_keys", retrieval__n_keys=0),
    case("retrieval-vocab-8", "retrieval.vocab_size", retrieval__vocab_size=8),
    case("retrieval-steps-0", "retrieval.steps", retrieval__steps=0),
    case("compress-calib-0", "compress.calib_batches", compress={"calib_batches": 0}),
    case("theory-temperature-0", "theory.temperature_k", theory={"temperature_k": 0}),
    case("theory-seq-lens-0", "theory.seq_lens.0", theory={"seq_lens": [0]}),
    case("theory-repeats-0", "theory.repeats", theory={"repeats": 0}),
    case("thresholds-unknown", "thresholds.magic", thresholds={"magic": 1.0}),
    case("thresholds-nan", "thresholds.perplexity", thresholds={"perplexity": NAN}),
    case("thresholds-text", "thresholds.perplexity", thresholds={"perplexity": "x"}),
    case("thresholds-not-positive", "thresholds.perplexity", thresholds={"perplexity": 0.0}),
    case("claims-unknown", "claims.0", claims=["magic"]),
    case("claims-twice", "claims", claims=["perplexity", "perplexity"]),
    case("crash-arms-unknown", "debug.crash_arms.0", debug={"crash_arms": ["magic"]}),
    case("crash-mode", "debug.crash_mode", debug={"crash_mode": "segv"}),
    case("allow-unequal-text", "allow_unequal_settings", allow_unequal_settings="yes"),
    case("unknown-top-key", "stepz", stepz=5),
    case("section-not-mapping", "train", train=5),
    case("section-list", "train", train=[1]),
    case("launcher-nproc-0", "launcher.nproc_per_node", launcher={"nproc_per_node": 0}),
    case("launcher-endpoint-no-port", "launcher.rdzv_endpoint", launcher={"nnodes": 2, "rdzv_endpoint": "node001"}),
    case("launcher-unknown-key", "launcher.nproc", launcher={"nproc": 2}),
    case("crash-rank-negative", "debug.crash_rank", debug={"crash_rank": -1}),
]

CROSS_FIELD = [
    case("batch-beyond-val-blocks", "generate.batch_sizes", generate__batch_sizes=[100]),
    case("prompt-beyond-block", "generate.prompt_len", generate__prompt_len=64),
    case("distance-beyond-seq-len", "retrieval.distances.1", retrieval__distances=[4, 31]),
    case("distance-far-beyond", "retrieval.distances.0", retrieval__distances=[100]),
    case("distance-below-3", "retrieval.distances.0", retrieval__distances=[2]),
    case("distance-negative", "retrieval.distances.0", retrieval__distances=[-1]),
    case("distances-twice", "retrieval.distances", retrieval__distances=[4, 4]),
    case("keys-beyond-seq-len", "retrieval.seq_len", retrieval__n_keys=20),
    case("keys-beyond-vocab", "retrieval.n_keys", retrieval__n_keys=12, retrieval__seq_len=32),
    case("train-split-below-a-block", "data.train_tokens", data__train_tokens=10),
    case("val-split-below-a-block", "data.val_tokens", data__val_tokens=10),
    case("tuned-hold-out-too-big", "data.train_tokens", data__train_tokens=60, train__lr_policy="tuned",
         train__tune_fraction=0.5),
    case("derivation-beyond-context", "theory.seq_lens.0", theory={"seq_lens": [100]}),
    case("objective-unknown-arm", "objectives.magic", objectives={"magic": {}}),
    case("objective-optimizer-setting", "objectives.eitp-paper.lr", objectives={"eitp-paper": {"lr": 1e-3}}),
    case("objective-unknown-key", "objectives.eitp-paper", objectives={"eitp-paper": {"nope": 1}}),
    case("objective-text-value", "objectives.eitp-paper.lambda_thermo", objectives={"eitp-paper": {"lambda_thermo": "x"}}),
    case("objective-nan-value", "objectives.eitp-paper.lambda_thermo", objectives={"eitp-paper": {"lambda_thermo": NAN}}),
    case("objective-fraction-for-int", "objectives.eitp-paper.entropy_bins", objectives={"eitp-paper": {"entropy_bins": 2.5}}),
    case("objective-of-compression-arm", "objectives.eitp-compressed", objectives={"eitp-compressed": {"alpha": 1.0}}),
    case("objective-of-baseline", "objectives.baseline", objectives={"baseline": {"alpha": 1.0}}),
    case("arm-settings-not-allowed", "arm_settings.eitp-paper.lr", arm_settings={"eitp-paper": {"lr": 1e-3}}),
    case("arm-settings-unknown-arm", "arm_settings.magic", arm_settings={"magic": {}}),
    case("arm-settings-bad-value", "arm_settings.eitp-paper.lr", arm_settings={"eitp-paper": {"lr": "fast"}},
         allow_unequal_settings=True),
    case("arm-settings-nan", "arm_settings.eitp-paper.lr", arm_settings={"eitp-paper": {"lr": NAN}},
         allow_unequal_settings=True),
    case("arm-settings-unknown-key", "arm_settings.eitp-paper.foo", arm_settings={"eitp-paper": {"foo": 1}},
         allow_unequal_settings=True),
    case("launcher-node-rank-beyond", "launcher.node_rank", launcher={"nnodes": 2, "node_rank": 2, "rdzv_endpoint": "n:29500"}),
    case("launcher-nodes-without-endpoint", "launcher.rdzv_endpoint", launcher={"nnodes": 2}),
    case("launcher-batch-indivisible", "train.batch_size", launcher={"nproc_per_node": 3}),
    case("launcher-prompts-per-rank", "generate.batch_sizes", launcher={"nproc_per_node": 4}, generate__batch_sizes=[1, 32]),
]

FILES_AND_ENCODINGS = [
    case("bomb", "alias bomb", suite=BOMB),
    case("circular-list", "circular YAML anchor", suite="name: x\narms: &a [baseline, *a]\ntasks: [train]\n"),
    case("circular-mapping", "circular YAML anchor", suite=BASE_TEXT + "x: &x {y: *x}\n"),
    case("deep-flow", "nested deeper", suite="a: " + "[" * 500 + "]" * 500 + "\n"),
    case("deep-block", "nested deeper", suite=BASE_TEXT + "".join(f"{'  ' * i}k{i}:\n" for i in range(30)) + "  " * 30 + "v: 1\n"),
    case("alias-deep", "nested deeper", suite=BASE_TEXT + "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 40))),
    case("duplicate-top-key", "'repetitions'", suite=BASE_TEXT + "repetitions: 3\n"),
    case("duplicate-nested-key", "'train.steps'", suite=BASE_TEXT.replace("  steps: 5\n", "  steps: 5\n  steps: 6\n")),
    case("python-object", "!!python/object/apply", suite=BASE_TEXT + "seed: !!python/object/apply:os.system ['true']\n"),
    case("python-name", "!!python/name", suite=BASE_TEXT + "seed: !!python/name:os.system\n"),
    case("binary-tag", "!!binary", suite=BASE_TEXT + "description: !!binary aGVsbG8=\n"),
    case("custom-tag", "!custom", suite=BASE_TEXT + "description: !custom x\n"),
    case("date-value", "!!timestamp", suite=BASE_TEXT + "description: 2024-01-01\n"),
    case("key-is-a-list", "a key that is a list", suite=BASE_TEXT + "? [a, b]\n: 1\n"),
    case("not-utf8", "not UTF-8", suite=BASE_TEXT.encode() + b"description: caf\xe9\n"),
    case("utf16", "not UTF-8", suite=BASE_TEXT.encode("utf-16")),
    case("too-large", "1 MiB", suite=BASE_TEXT + "#" * MAX_FILE_BYTES + "\n"),
    case("two-documents", "YAML syntax error", suite=BASE_TEXT + "---\nname: y\n"),
    case("syntax-error", "line 3", suite="name: x\narms: [baseline\ntasks: [lm]\n"),
    case("tab-indent", "YAML syntax error", suite=BASE_TEXT + "train:\n\tsteps: 4\n"),
    case("nul-byte", "control character #x0000", suite=BASE_TEXT + "description: a\x00b\n"),
    case("top-level-list", "mapping of settings", suite="- a\n- b\n"),
    case("top-level-scalar", "mapping of settings", suite="just text\n"),
    case("empty-file", "'arms'", suite=""),
]

SET_VALUES = [
    case("set-repetitions-0", "--set repetitions=0", sets=["repetitions=0"]),
    case("set-repetitions-1e12", "'repetitions'", sets=["repetitions=1e12"]),
    case("set-lr-inf", "--set train.lr=.inf", sets=["train.lr=.inf"]),
    case("set-lr-nan-text", "'train.lr'", sets=["train.lr=nan"]),
    case("set-seed-1e30", "'seed'", sets=["seed=1.0e+30"]),
    case("set-unknown", "'train.stepz'", sets=["train.stepz=5"]),
    case("set-unknown-section", "'nosuch'", sets=["nosuch.x=1"]),
    case("set-no-value", "not KEY=VALUE", sets=["train.steps"]),
    case("set-not-a-section", "'repetitions'", sets=["repetitions.x=1"]),
    case("set-batch-0", "generate.batch_sizes.0", sets=["generate.batch_sizes=[0]"]),
    case("set-nproc-indivisible", "train.batch_size", sets=["launcher.nproc_per_node=3"]),
    case("set-distance", "retrieval.distances.0", sets=["retrieval.distances=[100]"]),
    case("set-circular", "circular YAML anchor", sets=["arms=&a [baseline, *a]"]),
    case("set-python-tag", "!!python/object/apply", sets=["train.steps=!!python/object/apply:os.system ['true']"]),
    case("set-duplicate-key", "duplicate key", sets=["objectives={eitp-paper: {alpha: 1.0, alpha: 2.0}}"]),
    case("set-deep", "nested deeper", sets=["description=" + "[" * 100 + "]" * 100]),
    case("set-name-empty", "'name'", sets=["name="]),
    case("set-device", "'device'", sets=["device=gpu"]),
    case("set-objective-key", "objectives.eitp-paper", sets=["objectives.eitp-paper.nope=1"]),
    case("set-co2", "meters.co2_country", sets=["meters.co2_country=XX"]),
    case("set-text-file-missing", "data.text_file", sets=["data.kind=text_file", "data.text_file=/no/such/file.txt"]),
]

ALL = TYPES_AND_NUMBERS + CROSS_FIELD + FILES_AND_ENCODINGS + SET_VALUES


def test_at_least_100_bad_suites():
    assert len(ALL) >= 100
    assert len({p.id for p in ALL}) == len(ALL)


@pytest.fixture
def no_work(monkeypatch):
    """Any repetition started is a failure of the preflight (and would be slow)."""
    from eitp_bench.runner import Runner

    def started(self):
        raise AssertionError("a worker was started for a bad suite")

    monkeypatch.setattr(Runner, "run", started)


def write_suite(folder, suite) -> str:
    path = folder / "suite.yaml"
    if isinstance(suite, dict):
        path.write_text(yaml.safe_dump(suite, sort_keys=False, allow_unicode=True), encoding="utf-8")
    elif isinstance(suite, bytes):
        path.write_bytes(suite)
    else:
        path.write_text(suite, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("suite, sets, field", ALL)
def test_bad_suite_exits_2_naming_the_field_and_writes_nothing(suite, sets, field, tmp_path, monkeypatch, capsys,
                                                                no_work):
    monkeypatch.chdir(tmp_path)
    path = write_suite(tmp_path, suite)
    args = ["run", path, "--out", str(tmp_path / "out"), "--store", str(tmp_path / "r.sqlite")]
    code = main(args + [a for s in sets for a in ("--set", s)])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert captured.err.startswith("eitp-bench: error: suite ")
    # a dotted field is named as 'field'; a problem of the whole file by what is wrong with it
    assert (f"'{field}'" if re.fullmatch(r"[\w.-]+", field) else field) in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml"]  # no out dir, no store, nothing else


def test_the_base_suite_is_good(tmp_path, capsys):
    assert main(["run", write_suite(tmp_path, BASE), "--dry-run", "--json"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml"]


def test_every_problem_is_reported_at_once_one_line_each(tmp_path, capsys):
    path = write_suite(tmp_path, suite_with(train__lr=INF, train__batch_size=0, repetitions=0, seed=-1))
    assert main(["run", path, "--dry-run", "--set", "generate.batch_sizes=[0]", "--set", "train.stepz=1"]) == 2
    err = capsys.readouterr().err
    assert "6 problems" in err
    lines = [line.strip() for line in err.splitlines()[1:] if not line.strip().startswith("fix:")]
    assert len(lines) == 6
    for field in ("'train.lr'", "'train.batch_size'", "'repetitions'", "'seed'"):
        assert sum(field in line for line in lines) == 1 and any(line.startswith(path) and field in line for line in lines)
    assert any(line.startswith("--set generate.batch_sizes=[0]:") and "generate.batch_sizes.0" in line for line in lines)
    assert any(line.startswith("--set train.stepz=1:") for line in lines)


def test_cross_field_problems_are_all_reported(tmp_path, capsys):
    path = write_suite(tmp_path, suite_with(retrieval__distances=[2, 4, 31], generate__prompt_len=64))
    assert main(["run", path, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err and "retrieval.distances.0" in err and "retrieval.distances.2" in err
    assert "generate.prompt_len" in err


def test_text_file_too_short_empty_or_missing(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("hello world\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    path = write_suite(tmp_path, suite_with(data__kind="text_file", data__text_file=str(short)))
    assert main(["run", path, "--dry-run"]) == 2
    assert "data.text_file" in capsys.readouterr().err
    assert main(["run", path, "--dry-run", "--set", f"data.text_file={empty}"]) == 2
    err = capsys.readouterr().err
    assert f"--set data.text_file={empty}" in err and "empty" in err
    long = tmp_path / "long.txt"
    long.write_text("the quick brown fox jumps over the lazy dog\n" * 2000)
    assert main(["run", path, "--dry-run", "--json", "--set", f"data.text_file={long}"]) == 0
    capsys.readouterr()
    # a missing file: the dry run lists it (exit 0); run refuses it before any work (exit 2)
    assert main(["run", path, "--dry-run", "--json", "--set", "data.text_file=/no/such.txt"]) == 0
    assert "data.text_file" in capsys.readouterr().out


def test_pretrained_model_context_checked_from_its_config(tmp_path, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"n_positions": 64, "vocab_size": 256}')
    suite = suite_with(model={"pretrained": str(model)}, data={"kind": "text_file", "text_file": str(tmp_path / "t.txt"),
                                                              "block_size": 32})
    (tmp_path / "t.txt").write_text("some text to learn from\n" * 500)
    path = write_suite(tmp_path, suite)
    assert main(["run", path, "--dry-run", "--json"]) == 0
    capsys.readouterr()
    assert main(["run", path, "--dry-run", "--set", "generate.new_tokens=100"]) == 2
    err = capsys.readouterr().err
    assert "model.pretrained" in err and "at least 108 positions" in err and "has 64" in err
    (model / "config.json").write_text('{"n_positions": 64, "vocab_size": 50257}')
    assert main(["run", path, "--dry-run"]) == 2
    assert "'data.tokenizer'" in capsys.readouterr().err  # byte tokens need a 256-token model


def test_limits_are_refused_without_expanding_or_reading_everything(tmp_path):
    import time

    path = write_suite(tmp_path, BOMB)
    t0 = time.process_time()
    with pytest.raises(Exception) as err:
        load_suite(path)
    assert "alias bomb" in str(err.value)
    assert time.process_time() - t0 < 5  # not expanded: 9^8 values would take minutes and gigabytes


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("name, safe", [
    ("smoke", "smoke"),
    ("../../etc/passwd", "etc_passwd"),
    ("nightly $\\alpha_$ [/b]", "nightly_alpha__b"),
    ("..", "suite"),
    ("/abs/path", "abs_path"),
    ("-rf", "rf"),
    (".hidden", "hidden"),
    ("a\\b", "a_b"),
    ("x" * 100, "x" * 64),
])
def test_suite_names_become_safe_file_names(name, safe):
    assert suite_file_name(name) == safe


def test_default_results_folder_uses_the_safe_name_and_keeps_the_display_name(tmp_path):
    from eitp_bench.runner import Runner

    text = textwrap.dedent("""\
        name: "../nightly $\\\\alpha_$ [/b]"
        arms: [baseline]
        tasks: [train]
        device: cpu
    """)
    suite = load_suite(write_suite(tmp_path, text))
    assert suite.name == "../nightly $\\alpha_$ [/b]"
    out = Runner(suite).out_dir
    assert out.parent.name == "eitp-results" and out.name.startswith("nightly_alpha__b-") and ".." not in out.parts


ODD = "nightly $\\alpha_$ [/b] <script>x</script>"


@pytest.fixture
def odd_store(tmp_path):
    import numpy as np
    from synthetic_store import eitp_records, record

    from eitp_bench.store import Store

    recs = eitp_records(n_reps=6, suite=ODD, profile="hp-[/b]$x_$")
    recs += eitp_records(n_reps=6, suite=ODD, profile="hp-[bold]", started0=500)
    rng = np.random.default_rng(0)
    for i in range(16):  # a series with a clear step, so regress finds and prints it
        recs.append(record("arm [/b] $\\beta_$", "task [/i] $_$", i,
                           {"tokens_per_s": 100.0 + rng.random() if i < 8 else 70.0 + rng.random()},
                           suite=ODD, started=1000 + i))
    path = tmp_path / "r.sqlite"
    store = Store.open(path)
    store.add_many(recs)
    store.close()
    return path


def test_odd_names_never_crash_report_compare_or_regress(odd_store, tmp_path, capsys):
    assert main(["report", "--store", str(odd_store), "--out", str(tmp_path / "r.html")]) == 0
    assert main(["report", "--store", str(odd_store), "--suite", ODD, "--regress", "--out", str(tmp_path / "s.html")]) == 0
    assert main(["compare", "--store", str(odd_store), "--html", str(tmp_path / "c.html")]) == 0
    out = capsys.readouterr().out
    assert "[/b]" in out and "hp-[bold]" in out  # shown as text, not taken as markup
    assert main(["regress", "--store", str(odd_store), "--html", str(tmp_path / "g.html")]) == 1  # the step
    out = capsys.readouterr()
    assert "arm [/b] $\\beta_$" in out.out and "Traceback" not in out.err
    for page in ("r.html", "s.html", "c.html", "g.html"):
        html = (tmp_path / page).read_text(encoding="utf-8")
        assert "<script>x</script>" not in html  # autoescaped (jinja2, html.escape, matplotlib's SVG)
        assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "nightly $\\alpha_$ [/b]" in (tmp_path / "r.html").read_text(encoding="utf-8")  # text, not TeX

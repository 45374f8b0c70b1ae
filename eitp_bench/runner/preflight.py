"""Everything checked before any work: the suite, its files, and what this machine lacks.

`run` and `run --dry-run` share one entry point, `check_suite_before_work`, called in the parent
before any process starts, any folder is made or any store is opened:

1. the suite (suite.load_suite): safe YAML (size, nesting, aliases, duplicate keys, tags, UTF-8),
   the schema (types, ranges, list lengths, no NaN or infinity) and the cross-field rules
   (suite/rules.py), each --set through the same checks;
2. what needs files or libraries: loss coefficients per arm, the CO2 country, a text file's
   contents, a pretrained model's context and vocabulary;
3. what this machine lacks (missing_requirements): a missing GPU, model or data set stops `run`
   (a dry run lists it under `missing` and exits 0); missing energy sensors do not stop a run, but
   its energy claims will be NOT MEASURED, so the plan says so up front.

Problems of 1 and 2 (and, for `run`, the blocking ones of 3) are reported together, one line each,
as one SuiteInvalid: exit 2, nothing started, nothing written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from eitp_bench.errors import UserError
from eitp_bench.suite import Suite, load_suite
from eitp_bench.suite.problems import Problem, SuiteInvalid, attribute_to_overrides

TEXT_FILE_COUNT_LIMIT = 16 << 20  # a text file up to 16 MiB is read to count its byte tokens; longer is long enough


@dataclass
class Missing:
    what: str
    why: str
    fix: str
    blocking: bool = True  # False: the run goes on, with less (e.g. no energy sensors → estimates only)
    field: str = ""  # the suite setting that asks for it (device, data.text_file …), "" when none does

    def as_dict(self) -> dict:
        return asdict(self)


def check_suite_before_work(name_or_path: str, overrides: Optional[list[str]] = None, *,
                            dry_run: bool = False, probe_sensors: bool = True,
                            on_loaded: Optional[Callable[[Suite], None]] = None) -> tuple[Suite, list["Missing"]]:
    """The validated suite and what this machine lacks, or SuiteInvalid naming every problem.

    dry_run: what the machine lacks is returned (the plan lists it), not refused.
    on_loaded: called once the file and schema are valid, before the slower checks (which import torch).
    """
    suite = load_suite(name_or_path, overrides)
    if on_loaded is not None:
        on_loaded(suite)
    problems = objective_problems(suite) + co2_problems(suite) + text_file_problems(suite) + pretrained_problems(suite)
    missing = missing_requirements(suite, probe_sensors=probe_sensors)
    if not dry_run:
        problems += [Problem(m.field, f"cannot run here: {m.what}: {m.why} (fix: {m.fix})") for m in missing if m.blocking]
    if problems:
        label = suite._source or suite.name
        attribute_to_overrides(problems, suite._overrides, label)
        fixes = [m.fix for m in missing if m.blocking and not dry_run]
        raise SuiteInvalid(label, problems, fix="; ".join(dict.fromkeys(fixes)) if len(problems) == len(fixes) else None)
    return suite, missing


def objective_problems(suite: Suite) -> list[Problem]:
    """Loss coefficients per arm are known keys with values of their default's type (a typo would
    otherwise fail inside every worker)."""
    from eitp_bench.suite.arms import COMPRESSION_ARMS
    from eitp_bench.workloads.objectives import make_objective

    out = []
    for arm, coefficients in suite.objectives.items():
        if arm in COMPRESSION_ARMS:
            out.append(Problem(f"objectives.{arm}", f"{arm} has no loss of its own; it trains as "
                               f"{COMPRESSION_ARMS[arm]}: set objectives.{COMPRESSION_ARMS[arm]} instead", coefficients))
            continue
        try:
            make_objective(arm, coefficients)
        except UserError as err:
            out.append(Problem(f"objectives.{arm}", f"{err.message}; {err.fix}", coefficients))
            continue
        defaults = _defaults_of(arm)
        for key, value in (coefficients or {}).items():
            default = defaults.get(key)
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    out.append(Problem(f"objectives.{arm}.{key}", f"a number (the default is {default!r})", value))
                elif isinstance(default, int) and not isinstance(value, int):
                    out.append(Problem(f"objectives.{arm}.{key}", f"a whole number (the default is {default!r})", value))
    return out


def _defaults_of(arm: str) -> dict:
    from eitp_bench.suite.arms import ABLATION_TERMS

    if arm == "eitp-paper" or arm in ABLATION_TERMS:
        from eitp_bench.workloads import eitp_paper

        return eitp_paper.DEFAULTS
    if arm == "eitp-coded":
        from eitp_bench.workloads import eitp_coded

        return eitp_coded.DEFAULTS
    return {}


def co2_problems(suite: Suite) -> list[Problem]:
    """meters.co2_country is a code codecarbon knows (it only logs an unknown one and carries on)."""
    country = suite.meters.co2_country
    if not country:
        return []
    from eitp_bench.energy.carbon import FIX_CODECARBON, codecarbon_installed, country_known

    if not codecarbon_installed():
        return [Problem("meters.co2_country", f"CO2 estimates need codecarbon, which is not installed: "
                        f"{FIX_CODECARBON}, or remove meters.co2_country", country)]
    if not country_known(country):
        return [Problem("meters.co2_country", "a 3-letter ISO code in codecarbon's energy-mix table "
                        "(e.g. USA, FRA, DEU)", country)]
    return []


def text_file_problems(suite: Suite) -> list[Problem]:
    """A data.text_file that exists is readable, not empty, and (byte tokens) long enough for its
    splits and prompts. A missing one is a missing requirement (below)."""
    d = suite.data
    if d.kind != "text_file" or not d.text_file:
        return []
    path = Path(os.path.expanduser(d.text_file))
    if not path.is_file():
        return []
    try:
        size = path.stat().st_size
        if size > TEXT_FILE_COUNT_LIMIT:
            return []
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        return [Problem("data.text_file", f"a readable text file: {err.strerror}", d.text_file)]
    if not text.strip():
        return [Problem("data.text_file", "a file with text in it; this one is empty", d.text_file)]
    if d.tokenizer != "byte":
        return []  # GPT-2 tokens: counted by the worker (the tokenizer is heavy)
    n = len(text.encode("utf-8"))  # workloads.data.ByteTokenizer: one token per UTF-8 byte
    n_val = max(d.block_size + 1, int(n * d.val_fraction))  # workloads.data.build_lm_data
    out = []
    if n - n_val < d.block_size + 1:
        out.append(Problem("data.text_file", f"at least {n_val + d.block_size + 1} byte tokens for a training and "
                           f"a validation block of data.block_size={d.block_size}; it has {n}", d.text_file))
    elif "generate" in suite.tasks and n_val // d.block_size < max(suite.generate.batch_sizes):
        out.append(Problem("generate.batch_sizes", f"at most {n_val // d.block_size} prompts: the validation split "
                           f"of {d.text_file} holds that many blocks of {d.block_size}", suite.generate.batch_sizes))
    return out


def pretrained_problems(suite: Suite) -> list[Problem]:
    """A pretrained model (when it is here) has the positions and vocabulary the suite needs."""
    config = _pretrained_config(suite)
    if config is None:
        return []
    out = []
    positions = config.get("n_positions")
    if isinstance(positions, int) and positions < suite.context_length:
        out.append(Problem("model.pretrained", f"a model with at least {suite.context_length} positions (the longest "
                           "of data.block_size, retrieval.seq_len, generate.prompt_len + new_tokens); it has "
                           f"{positions}: lower those", suite.model.pretrained))
    if isinstance(positions, int) and "derivation" in suite.tasks:
        for i, length in enumerate(suite.theory.seq_lens or []):
            if not 1 <= length < positions:
                out.append(Problem(f"theory.seq_lens.{i}", f"a prefix length from 1 to {positions - 1} "
                                   f"(the model has {positions} positions)", length))
    vocab = config.get("vocab_size")
    # byte tokens: 256 ids (workloads.data.ByteTokenizer). GPT-2 tokens: the cached tokenizer's length,
    # which only transformers can tell; the worker compares that one.
    if suite.data.tokenizer == "byte" and isinstance(vocab, int) and vocab != 256:
        out.append(Problem("data.tokenizer", f"the tokenizer of {suite.model.pretrained!r}: the model has vocab_size "
                           f"{vocab}, byte tokens 256 (data.tokenizer: gpt2 for gpt2)", suite.data.tokenizer))
    return out


def _pretrained_config(suite: Suite) -> Optional[dict]:
    """config.json of the pretrained model, from a local directory or the hub cache; None if absent."""
    name = suite.pretrained
    if not name:
        return None
    from eitp_bench.workloads.assets import cached_snapshot, is_hub_id, model_asset

    if is_hub_id(name):
        snap = cached_snapshot(model_asset(name, revision=suite.model.revision))
        path = snap / "config.json" if snap is not None else None
    else:
        path = Path(os.path.expanduser(name)) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        return None  # absent or unreadable: a missing requirement, or the worker's loader says why
    return config if isinstance(config, dict) else None


def missing_requirements(suite: Suite, *, probe_sensors: bool = True) -> list[Missing]:
    """Everything the suite needs that this machine lacks; empty when it can run here as planned."""
    missing: list[Missing] = []
    if suite.device == "cuda" and not _cuda_available():
        missing.append(Missing(
            "CUDA GPU", "the suite asks for device cuda, but torch sees no CUDA GPU here",
            "run it on a GPU machine with a CUDA build of torch, or --set device=cpu", field="device",
        ))
    if suite.train.precision == "fp16" and suite.device == "cpu":
        missing.append(Missing(
            "fp16 training on CPU", "train.precision fp16 needs a GPU (CPU autocast is bf16)",
            "--set train.precision=bf16 or fp32 on CPU", field="train.precision",
        ))
    ranks = _ranks_per_gpu(suite)
    if ranks is not None:
        missing.append(ranks)
    missing += [Missing(m["what"], m["why"], m["fix"], field=m.get("field", "")) for m in _missing_assets(suite)]
    if probe_sensors:
        sensor = _missing_sensors(suite)
        if sensor is not None:
            missing.append(sensor)
    return missing


def _ranks_per_gpu(suite: Suite) -> Optional[Missing]:
    """More NCCL ranks on this machine than GPUs it may use (distributed/placement.py): refused before any
    launch, instead of every repetition failing with NCCL's "Duplicate GPU detected"."""
    la = suite.launcher
    if la.nproc_per_node <= 1 or suite.device == "cpu" or not _cuda_built():
        return None  # a CPU build of torch has no NCCL (device cuda is then a missing GPU of its own)
    from eitp_bench.distributed.placement import ranks_per_gpu_problem, visible_gpu_count

    problem = ranks_per_gpu_problem(la.nproc_per_node, suite.device, visible_gpu_count(), cuda_built=True)
    if problem is None:
        return None
    why, fix = problem
    return Missing("one GPU per rank", why, fix, field="launcher.nproc_per_node")


def _cuda_built() -> bool:
    import torch

    return torch.backends.cuda.is_built()  # a CUDA build of torch; starts nothing


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _missing_assets(suite: Suite) -> list[dict]:
    from eitp_bench.workloads.assets import missing_assets

    return missing_assets(suite)


def _missing_sensors(suite: Suite) -> Optional[Missing]:
    """A non-blocking entry when no sensor can measure joules here (RAPL for CPU, NVML for a GPU suite)."""
    from eitp_bench.energy.nvml import NvmlMeter
    from eitp_bench.energy.rapl import RaplMeter

    statuses = RaplMeter.probe() + NvmlMeter.probe()
    if any(s.available for s in statuses):
        return None
    reasons = "; ".join(dict.fromkeys(f"{s.meter}: {s.reason}" for s in statuses if s.reason))
    fixes = "; ".join(dict.fromkeys(s.fix for s in statuses if s.fix)) or "see eitp-bench doctor"
    return Missing(
        "energy sensors", f"no RAPL or NVML sensor can read here ({reasons}); energy claims will be NOT MEASURED",
        fixes, blocking=False,
    )

"""Rules across a suite's fields: what a worker would otherwise trip over only after it started.

`problems(suite)` returns every broken rule as a `Problem` (field, value, what is expected); the
Suite model refuses a suite with any. The rules mirror what the workloads need (the worker code
cited next to each rule), checked here, in the parent, before any process starts. Values of one
field alone (ranges, list lengths) are the schema's job (schema.py); files and this machine are the
preflight's (runner/preflight.py).
"""

from __future__ import annotations

from typing import Any

from eitp_bench.suite.problems import Problem

MAX_SEED = 2**32 - 1  # numpy's default_rng and most seeders take 32-bit seeds
MARKOV_MAX_CONTEXTS = 1_000_000  # workloads.data.MarkovCorpus refuses more
MARKOV_MAX_TABLE = 50_000_000  # transition probabilities (8 bytes each): 400 MB
RETRIEVAL_MIN_DISTANCE = 3  # workloads.data.RetrievalTask: the stored pair ends before the QUERY marker

OPTIMIZER_SETTINGS = (
    "lr", "lr_schedule", "warmup_steps", "weight_decay", "grad_clip", "batch_size", "steps", "precision",
)


def problems(suite: Any, *, arms: tuple, claims: tuple) -> list[Problem]:
    """Every cross-field problem of a schema-valid suite; empty when there is none.

    arms, claims: the known names (suite.ARMS, suite.CLAIMS; passed in: schema.py imports this module).
    """
    found: list[Problem] = []
    for rule in (_lists, _seeds, _markov, _splits, _generate, _retrieval, _theory, _launcher, _control_arms):
        found += rule(suite)
    return _arm_maps(suite, arms, claims) + found


def context_length(suite: Any) -> int:
    """Positions the model needs: the longest of a training block, a retrieval sequence and a
    prompt plus its new tokens (workloads.tasks.TaskContext builds the model with this many)."""
    return max(suite.data.block_size, suite.retrieval.seq_len, suite.generate.prompt_len + suite.generate.new_tokens)


def _duplicates(values: list) -> list:
    seen, twice = set(), []
    for v in values:
        if v in seen and v not in twice:
            twice.append(v)
        seen.add(v)
    return twice


def _lists(s) -> list[Problem]:
    """Each arm, task, size, batch size, mode and distance once (a repeat runs and stores it twice)."""
    out = []
    for field, values in (("arms", s.arms), ("tasks", s.tasks), ("sizes", s.sizes), ("claims", s.claims),
                          ("generate.batch_sizes", s.generate.batch_sizes), ("generate.modes", s.generate.modes),
                          ("retrieval.distances", s.retrieval.distances), ("train.lr_grid", s.train.lr_grid)):
        twice = _duplicates(list(values))
        if twice:
            out.append(Problem(field, f"each entry once; {twice} appear(s) more than once", list(values)))
    return out


def _control_arms(s) -> list[Problem]:
    """The self-check arms copy the baseline exactly (suite/arms.CONTROL_ARMS): the baseline must run
    beside them, and they may have no loss coefficients or training settings of their own."""
    from eitp_bench.suite.arms import CONTROL_ARMS  # light: no torch

    out = []
    for arm, base in CONTROL_ARMS.items():
        if arm not in s.arms:
            continue
        if base not in s.arms:
            out.append(Problem("arms", f"{arm} is a copy of {base} and is judged against it: add {base} to arms "
                               "(or turn the self_check switch off)", list(s.arms)))
        for field in ("objectives", "arm_settings"):
            if arm in getattr(s, field):
                out.append(Problem(f"{field}.{arm}", f"{arm} trains exactly as {base}: remove its own {field} "
                                   f"(set them for {base})", getattr(s, field)[arm]))
    return out


def _seeds(s) -> list[Problem]:
    out = []
    if s.seeds is not None and len(s.seeds) != s.repetitions:
        out.append(Problem("seeds", f"seeds has {len(s.seeds)} entries but repetitions is {s.repetitions}: "
                           "give one seed per repetition", s.seeds))
    elif s.seeds is None and s.seed + s.repetitions - 1 > MAX_SEED:
        out.append(Problem("seed", f"repetition r uses seed + r, so seed + repetitions − 1 must be at most {MAX_SEED} "
                           f"(repetitions is {s.repetitions})", s.seed))
    return out


def _arm_maps(s, arms: tuple, claims: tuple) -> list[Problem]:
    """objectives, arm_settings and thresholds name known arms and claims, and no unequal setting."""
    out = []
    for arm in s.objectives:
        if arm not in arms:
            out.append(Problem(f"objectives.{arm}", f"objectives names an unknown arm; known: {list(arms)}",
                               s.objectives[arm]))
    for claim in s.thresholds:
        if claim not in claims:
            out.append(Problem(f"thresholds.{claim}", f"thresholds names an unknown claim; known: {list(claims)}",
                               s.thresholds[claim]))
        elif not s.thresholds[claim] > 0 and not (claim == "theorem3" and s.thresholds[claim] == 0):
            # the report judges at this value (analysis/selection.py): a ratio threshold is > 0, ε ≥ 0
            out.append(Problem(f"thresholds.{claim}", "a ratio threshold > 0 (theorem3: an ε ≥ 0 in joules)",
                               s.thresholds[claim]))
    for arm, coefficients in s.objectives.items():
        for key in sorted(set(coefficients) & set(OPTIMIZER_SETTINGS + ("max_grad_norm",))):
            setting = "grad_clip" if key == "max_grad_norm" else key
            out.append(Problem(
                f"objectives.{arm}.{key}",
                f"an optimizer setting: every arm trains with the same train.{setting} "
                "(use train.lr_policy: tuned to tune each arm's lr on the same grid)", coefficients[key]))
    for arm, settings in s.arm_settings.items():
        if arm not in arms:
            out.append(Problem(f"arm_settings.{arm}", f"arm_settings names an unknown arm; known: {list(arms)}", settings))
            continue
        for key in sorted(set(settings) - set(OPTIMIZER_SETTINGS)):
            out.append(Problem(f"arm_settings.{arm}.{key}",
                               f"not a training setting; known: {list(OPTIMIZER_SETTINGS)}", settings[key]))
        if settings and not s.allow_unequal_settings:
            key = sorted(settings)[0]
            out.append(Problem(
                f"arm_settings.{arm}.{key}",
                f"gives arm {arm!r} its own {key}: every arm must train with the same settings (train.{key}); set "
                "allow_unequal_settings: true to force it, and every verdict over that arm will be marked NOT COMPARABLE",
                settings[key]))
    return out


def _markov(s) -> list[Problem]:
    d = s.data
    if d.kind != "markov":
        return []
    contexts = d.vocab_size ** d.order
    if contexts > MARKOV_MAX_CONTEXTS:
        return [Problem("data.order", f"a Markov source over data.vocab_size={d.vocab_size} tokens of order "
                        f"{d.order} has {contexts} contexts, more than {MARKOV_MAX_CONTEXTS}: lower data.vocab_size "
                        "or data.order", d.order)]
    if contexts * d.vocab_size > MARKOV_MAX_TABLE:
        return [Problem("data.vocab_size", f"the Markov transition table would hold {contexts * d.vocab_size} "
                        f"probabilities, more than {MARKOV_MAX_TABLE}: lower data.vocab_size or data.order", d.vocab_size)]
    return []


def _splits(s) -> list[Problem]:
    """Markov splits hold at least one block (workloads.data.LMData), also after the tuning hold-out."""
    d, t = s.data, s.train
    if d.kind != "markov":
        return []  # real text: the preflight counts a text file's tokens; WikiText-2 is long enough
    out = []
    for field, tokens in (("data.train_tokens", d.train_tokens), ("data.val_tokens", d.val_tokens)):
        if tokens < d.block_size + 1:
            out.append(Problem(field, f"at least data.block_size + 1 = {d.block_size + 1} tokens (one block)", tokens))
    if t.lr_policy == "tuned" and not out:
        held = max(d.block_size + 1, int(d.train_tokens * t.tune_fraction))
        if d.train_tokens - held < d.block_size + 1:
            out.append(Problem("data.train_tokens", f"lr_policy tuned holds out {held} tokens to score the grid; "
                               f"at least {held + d.block_size + 1} tokens are needed", d.train_tokens))
    return out


def _generate(s) -> list[Problem]:
    """Prompts are cut from validation blocks (workloads.tasks.generate_task)."""
    g, d = s.generate, s.data
    if "generate" not in s.tasks:
        return []
    out = []
    if g.prompt_len > d.block_size:
        out.append(Problem("generate.prompt_len", f"at most data.block_size = {d.block_size} (prompts are cut "
                           "from validation blocks)", g.prompt_len))
    if d.kind == "markov":
        blocks = d.val_tokens // d.block_size
        if max(g.batch_sizes) > blocks:
            out.append(Problem("generate.batch_sizes", f"at most {blocks} prompts: data.val_tokens // data.block_size "
                               f"= {d.val_tokens} // {d.block_size} validation blocks (raise data.val_tokens)",
                               g.batch_sizes))
    return out


def _launcher(s) -> list[Problem]:
    """Multi-rank repetitions (eitp_bench/distributed/): where this machine sits, and a global batch
    (train.batch_size) that splits into equal per-rank batches (ranks.shard_rows)."""
    la = s.launcher
    out = []
    if la.node_rank >= la.nnodes:
        out.append(Problem("launcher.node_rank", f"below launcher.nnodes = {la.nnodes} (machines are numbered "
                           f"0 … {la.nnodes - 1})", la.node_rank))
    if la.nnodes > 1 and not la.rdzv_endpoint:
        out.append(Problem("launcher.rdzv_endpoint", "HOST:PORT of node 0 where the machines meet (e.g. node001:29500): "
                           f"required with launcher.nnodes = {la.nnodes}", la.rdzv_endpoint))
    world = la.world_size
    if world > 1 and s.train.batch_size % world:
        out.append(Problem("train.batch_size", f"a multiple of the {world} ranks (launcher.nproc_per_node × "
                           "launcher.nnodes): it is the global batch, split evenly over the ranks", s.train.batch_size))
    if world > 1 and "generate" in s.tasks and s.data.kind == "markov":
        blocks = s.data.val_tokens // s.data.block_size
        if world * max(s.generate.batch_sizes) > blocks:  # each rank its own prompts (ranks.prompt_offset)
            out.append(Problem("generate.batch_sizes", f"at most {blocks // world} prompts per rank: {world} ranks share "
                               f"{blocks} validation blocks (raise data.val_tokens)", s.generate.batch_sizes))
    return out


def _retrieval(s) -> list[Problem]:
    """workloads.data.RetrievalTask: distances inside the sequence, room for the keys."""
    r = s.retrieval
    if "retrieval" not in s.tasks:
        return []
    out = []
    high = r.seq_len - 2  # the stored key at position 0
    for i, dist in enumerate(r.distances):
        if not RETRIEVAL_MIN_DISTANCE <= dist <= high:
            out.append(Problem(f"retrieval.distances.{i}", f"a distance from {RETRIEVAL_MIN_DISTANCE} to "
                               f"retrieval.seq_len − 2 = {high}", dist))
    if r.seq_len < 2 * r.n_keys + 4:
        out.append(Problem("retrieval.seq_len", f"at least 2 × retrieval.n_keys + 4 = {2 * r.n_keys + 4} "
                           "(room for the distractor pairs)", r.seq_len))
    if not s.pretrained:  # a pretrained model retrieves over its tokenizer's vocabulary
        symbols = (r.vocab_size - 1 - max(2, r.vocab_size // 4)) // 2
        if symbols < r.n_keys:
            out.append(Problem("retrieval.n_keys", f"at most {symbols}: retrieval.vocab_size={r.vocab_size} leaves "
                               f"{symbols} key tokens (raise retrieval.vocab_size)", r.n_keys))
    return out


def _theory(s) -> list[Problem]:
    """theory.derivation: prefix lengths inside the model's positions."""
    lens = s.theory.seq_lens
    if "derivation" not in s.tasks or not lens:
        return []
    n = context_length(s) if not s.pretrained else None
    if n is None:
        return []  # the pretrained model's own n_positions: the preflight reads its config
    return [Problem(f"theory.seq_lens.{i}", f"a prefix length from 1 to {n - 1} (the model has {n} positions: "
                    "the longest of data.block_size, retrieval.seq_len, generate.prompt_len + new_tokens)", L)
            for i, L in enumerate(lens) if not 1 <= L < n]

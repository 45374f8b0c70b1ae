"""What each task measured, per arm: the tables under the verdicts (medians over ok repetitions).

Generation: latency p50/p90/p99 and tokens/s per mode and batch; retrieval: accuracy by distance with
chance level and queries; compression: bytes and quality; language modelling: perplexity against the
source's known optimum. Metric names come from eitp_bench.names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from eitp_bench import names


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "note": self.note}


def task_tables(metrics) -> list[Table]:
    """Every table that has data in this group's metrics (ok runs only)."""
    if metrics is None or len(metrics) == 0:
        return []
    m = metrics[metrics["status"] == "ok"] if "status" in metrics.columns else metrics
    med = m.groupby(["task", "arm", "name"], sort=True)["value"].median()
    count = m.groupby(["task", "arm", "name"], sort=True)["value"].size()
    tables = [_generation(med, count), _retrieval(med), _compression(med), _perplexity(med)]
    return [t for t in tables if t is not None and t.rows]


def _value(med, task: str, arm: str, name: str) -> Optional[float]:
    try:
        return float(med.loc[(task, arm, name)])
    except KeyError:
        return None


def _arms(med, task: str) -> list[str]:
    return sorted({a for t, a, _ in med.index if t == task})


def _generation(med, count) -> Optional[Table]:
    rows = []
    for arm in _arms(med, "generate"):
        tags = sorted({names.split_at(n)[1] for t, a, n in med.index if t == "generate" and a == arm
                       and names.split_at(n)[0] == "tokens_per_s" and names.split_at(n)[1]},
                      key=lambda tag: names.parse_generate_tag(tag) or (tag, 0))
        for tag in tags:
            mode, batch = names.parse_generate_tag(tag) or (tag, None)
            row = [arm, mode, batch]
            row += [_value(med, "generate", arm, names.at(k, tag))
                    for k in ("latency_p50_s", "latency_p90_s", "latency_p99_s", "tokens_per_s", "joules_per_token")]
            row.append(int(count.get(("generate", arm, names.at("tokens_per_s", tag)), 0)))
            rows.append(row)
    return Table("Generation", ["arm", "mode", "batch", "p50 s", "p90 s", "p99 s", "tokens/s", "J/token (measured)", "n"],
                 rows, "medians over repetitions of each repetition's own percentiles; J/token only where measured")


def _retrieval(med) -> Optional[Table]:
    distances = sorted({int(names.split_at(n)[1]) for t, _, n in med.index
                        if t == "retrieval" and names.split_at(n)[0] == "retrieval_acc" and names.split_at(n)[1]})
    if not distances:
        return None
    rows = []
    for arm in _arms(med, "retrieval"):
        rows.append([arm, _value(med, "retrieval", arm, "retrieval_chance")]
                    + [_value(med, "retrieval", arm, names.at("retrieval_acc", d)) for d in distances]
                    + [_value(med, "retrieval", arm, names.at("retrieval_n", distances[-1]))])
    return Table("Retrieval accuracy by distance", ["arm", "chance"] + [f"d={d}" for d in distances] + ["queries/distance"],
                 rows, "median accuracy over repetitions; chance = 1 / number of value symbols")


def _arm_rows(med, task: str, metrics: list[str]) -> list[list[Any]]:
    """One row per arm of `task`: the arm, then each metric's median; arms without the first are skipped."""
    rows = []
    for arm in _arms(med, task):
        values = [_value(med, task, arm, name) for name in metrics]
        if values[0] is not None:
            rows.append([arm] + values)
    return rows


def _compression(med) -> Optional[Table]:
    rows = _arm_rows(med, "compress", ["model_bytes", "model_bytes_uncompressed", "val_ppl",
                                       "val_ppl_uncompressed", "accuracy_drop"])
    for row in rows:  # size after ÷ before: the direction of the claim (0.24× = "4.2× compression")
        after, before = row[1], row[2]
        row.insert(3, f"{after / before:.3g}×" if after and before else None)
    return Table("Compression", ["arm", "bytes", "bytes before", "size after ÷ before", "ppl after", "ppl before",
                                 "accuracy drop"],
                 rows, "bytes of the serialized artefact on disk; the size ratio runs the claim's way "
                       "(0.24× is the paper's \"4.2× compression\")")


def _perplexity(med) -> Optional[Table]:
    rows = _arm_rows(med, "lm", ["val_ppl", "optimal_ppl", "ppl_ratio_to_optimal", "val_accuracy"])
    return Table("Language modelling", ["arm", "val ppl", "best achievable ppl", "ratio to best", "next-token accuracy"],
                 rows, "best achievable = exp(entropy rate) of the Markov source; empty on real text")

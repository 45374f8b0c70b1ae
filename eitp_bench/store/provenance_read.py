"""The provenance frame: one row per run, its Provenance fields and `hardware.<key>` for each hardware entry.

A run's provenance is about 2 KB of JSON, and no two runs' texts are the same: the worker records each run's
setup time, cool-down and idle watts beside what the runs of one machine and commit share (meters, boards
and their state, inputs, the cost estimate). Parsed run by run, the 125 000 runs a report reads at 1 000 000
records took about 1.9 GB, every run holding its own copy of each shared value. So the database extracts
each field's JSON text (SQLite's `->`, PostgreSQL's `json ->`, both giving a value's text as stored: numbers
keep their digits), the runs' equal texts arrive as one string (`Store._columns`), and each distinct
text is parsed once: the runs sharing a value share one object (read-only: the analysis never changes one).

The frame is the one the per-run parse gives (`parsed_per_run`, kept for stores whose JSON the database
cannot read, and as the tests' reference): a field absent from a run is NaN, JSON null is None, columns
come in first-seen order (the Provenance fields in their model's order, which is the order every record
is written in, then the hardware keys in the order the runs first hold them).
"""

from __future__ import annotations

import json
from typing import Optional

from eitp_bench.records import Provenance
from eitp_bench.store.layout import RUNS

TOP_FIELDS = [f for f in Provenance.model_fields if f != "hardware"]
_KEY_SEPARATOR = "\x1f"  # between the keys of one run's hardware object (a unit separator: never in a key)


def provenance_frame(store, where=None):
    """The provenance frame of the runs `where` keeps (every run when None), in store order."""
    import pandas as pd

    hardware_keys = _hardware_keys(store, where)
    if hardware_keys is None:  # a text the database cannot read as JSON: the per-run parse says which
        return parsed_per_run(store, where)
    paths = [(name,) for name in TOP_FIELDS] + [("hardware", key) for key in hardware_keys]
    stmt = _runs_select(RUNS.c.run_id, *(_json_at(store.dialect, path).label(f"f{i}") for i, path in enumerate(paths)),
                        where=where).order_by(RUNS.c.seq)
    values = store._columns(stmt, len(paths) + 1)
    if values is None:
        return _no_runs()
    columns = {"run_id": values[0]}
    for path, texts in zip(paths, values[1:]):
        if any(t is not None for t in texts):  # a field no run holds has no column, as in the per-run parse
            columns[".".join(path)] = _parsed_once(texts)
    return pd.DataFrame(columns)


def parsed_per_run(store, where=None):
    """The same frame from each run's whole text: each distinct text parsed once, its row repeated."""
    import numpy as np
    import pandas as pd

    stmt = _runs_select(RUNS.c.run_id, RUNS.c.provenance_json, where=where).order_by(RUNS.c.seq)
    run_ids, texts = store._columns(stmt, 2) or ([], [])
    if not run_ids:
        return _no_runs()
    codes, distinct = pd.factorize(np.asarray(texts, dtype=object))
    rows = []
    for text in distinct:
        prov = json.loads(text)
        hardware = prov.pop("hardware", None) or {}
        rows.append({**prov, **{f"hardware.{k}": v for k, v in hardware.items()}})
    out = pd.DataFrame(rows).take(codes).reset_index(drop=True)
    out.insert(0, "run_id", run_ids)
    return out


def _no_runs():
    import pandas as pd

    return pd.DataFrame(columns=["run_id", *TOP_FIELDS])


def _runs_select(*columns, where=None):
    from sqlalchemy import select

    stmt = select(*columns)
    return stmt if where is None else stmt.where(where)


def _parsed_once(texts: list) -> list:
    """Each run's value from its JSON text (NaN where the run has no such field); equal texts, one object."""
    parsed: dict = {None: float("nan")}
    return [parsed[t] if t in parsed else parsed.setdefault(t, json.loads(t)) for t in texts]


def _hardware_keys(store, where) -> Optional[list[str]]:
    """Every hardware key the runs hold, in first-seen order (runs in store order, a run's keys in its
    object's order); None when a run's text is not JSON, or holds a key a SQLite path cannot name."""
    from sqlalchemy import func, select

    lists = _key_list(store.dialect).label("keys")
    inner = _runs_select(RUNS.c.seq, lists, _valid_json(store.dialect).label("valid"), where=where).subquery()
    stmt = (select(inner.c["keys"], func.min(inner.c.valid)).group_by(inner.c["keys"])
            .order_by(func.min(inner.c.seq)))
    with store._driver_cursor(stmt) as cursor:
        distinct = cursor.fetchall()
    if any(valid is not None and not valid for _, valid in distinct):
        return None
    keys = list(dict.fromkeys(k for text, _ in distinct if text for k in text.split(_KEY_SEPARATOR)))
    if store.dialect != "postgresql" and any('"' in k for k in keys):
        return None
    return keys


def _key_list(dialect: str):
    """Per run, its hardware object's keys in order, joined by _KEY_SEPARATOR (NULL or '' without one)."""
    from sqlalchemy import literal_column

    if dialect == "postgresql":
        hardware = "CAST(runs.provenance_json AS json) -> 'hardware'"
        return literal_column(
            f"(SELECT string_agg(t.k, chr(31) ORDER BY t.n) FROM json_object_keys(CASE WHEN json_typeof({hardware})"
            f" = 'object' THEN {hardware} ELSE CAST('{{}}' AS json) END) WITH ORDINALITY AS t(k, n))")
    # json_each of a text that is not JSON fails the query: such a run lists no keys here, and
    # _valid_json sends the read to the per-run parse, which names the problem
    return literal_column("(SELECT group_concat(key, char(31)) FROM json_each(CASE WHEN json_valid("
                          "runs.provenance_json) THEN runs.provenance_json ELSE '{}' END, '$.hardware'))")


def _valid_json(dialect: str):
    """1 where the run's provenance is JSON the database reads; NULL on PostgreSQL, whose cast to json
    would fail the whole read instead (a PostgreSQL column of this table is only ever written as JSON)."""
    from sqlalchemy import func, literal_column

    return literal_column("NULL") if dialect == "postgresql" else func.json_valid(RUNS.c.provenance_json)


def _json_at(dialect: str, path: tuple[str, ...]):
    """The JSON text of the value at `path` in each run's provenance: NULL where there is none, 'null' for
    JSON null."""
    from sqlalchemy import JSON, Text, cast, literal

    if dialect == "postgresql":
        value = cast(RUNS.c.provenance_json, JSON)
        for key in path:
            value = value.op("->")(literal(key, Text))
        return cast(value, Text)
    return RUNS.c.provenance_json.op("->")(literal("$" + "".join(f'."{key}"' for key in path), Text))

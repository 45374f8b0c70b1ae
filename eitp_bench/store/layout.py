"""The store's tables, declared once for SQLite and PostgreSQL and derived from the record models.

records.py declares every field once; this module turns those fields into SQLAlchemy Core tables
(`METADATA`), the frame column lists of the Store contract, and the row values of an insert. A new
field in a model is a new column here by itself (plus a migration in store/migrations.py for stores
that already exist). SQLAlchemy quotes names that are reserved words (`window` in PostgreSQL).
"""

from __future__ import annotations

import json
import operator
import types
import typing
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Iterable

from pydantic import BaseModel
from sqlalchemy import BigInteger, Column, Double, ForeignKey, Identity, Index, Integer, MetaData, Table, Text, and_
from sqlalchemy import literal_column

from eitp_bench.records import EnergyEntry, Metric, RunRecord, TimelinePoint

APP_MARKER = "eitp-bench"


def _to_json(value: Any) -> str:
    return json.dumps(value, default=lambda o: o.model_dump(mode="json"))  # nested models (flags)


def _sql_type(annotation: Any) -> tuple[Any, bool]:
    """(SQLAlchemy type, nullable) of a scalar model field: str/Literal → Text, int → Integer, float → Double."""
    nullable = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        nullable = True
        (annotation,) = [a for a in args if a is not type(None)]
    if annotation is float:
        return Double(), nullable
    if annotation is int:
        return Integer(), nullable
    if annotation is str or typing.get_origin(annotation) is typing.Literal:
        return Text(), nullable
    raise TypeError(f"no SQL column type for {annotation!r}: store it as JSON (json_fields)")


def _field_type(model: type[BaseModel], field: str) -> tuple[Any, bool]:
    if field in model.model_computed_fields:
        return _sql_type(model.model_computed_fields[field].return_type)
    return _sql_type(model.model_fields[field].annotation)


METADATA = MetaData()

META = Table(
    "meta", METADATA,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
)  # fmt: skip


@dataclass(frozen=True)
class ChildTable:
    """A RunRecord list field stored one row per item: (run_id, idx, one column per model field).

    Nested values (lists, models) are JSON text in a `<field>_json` column; computed fields (net_joules)
    are stored too, for SQL readers, and recomputed when a record is rebuilt.
    """

    name: str  # the table, and the RunRecord field it holds
    model: type[BaseModel]
    json_fields: tuple[str, ...] = ()
    required: tuple[str, ...] = ()  # optional in the model, never null once stored (a record's rules)

    @cached_property
    def fields(self) -> list[str]:
        return list(self.model.model_fields)

    @cached_property
    def stored(self) -> list[str]:
        return [*self.model.model_fields, *self.model.model_computed_fields]

    def column(self, field: str) -> str:
        return f"{field}_json" if field in self.json_fields else field

    @cached_property
    def columns(self) -> list[str]:
        return [self.column(f) for f in self.stored]

    def sql_columns(self) -> list[Column]:
        out = []
        for f in self.stored:
            if f in self.json_fields:
                out.append(Column(self.column(f), Text, nullable=False))
            else:
                kind, nullable = _field_type(self.model, f)
                out.append(Column(f, kind, nullable=nullable and f not in self.required))
        return out

    @cached_property
    def _values(self) -> Callable[[Any], tuple]:
        get = operator.attrgetter(*self.stored)
        at = [i for i, f in enumerate(self.stored) if f in self.json_fields]
        if not at:
            return get

        def values(item: Any) -> tuple:
            v = list(get(item))
            for i in at:
                v[i] = "[]" if v[i] == [] else _to_json(v[i])  # most items have no flags
            return tuple(v)

        return values

    def rows(self, record: RunRecord) -> list[dict]:
        """Insert parameters: one dict per item (SQLAlchemy executemany)."""
        values, keys = self._values, ["run_id", "idx", *self.columns]
        return [dict(zip(keys, (record.run_id, i, *values(item)))) for i, item in enumerate(getattr(record, self.name))]

    def item(self, values: Iterable[Any]) -> BaseModel:
        data = {f: json.loads(v) if f in self.json_fields else v for f, v in zip(self.fields, values)}
        return self.model.model_validate(data)


CHILD_TABLES = {
    t.name: t
    for t in (ChildTable("metrics", Metric, ("flags",)), ChildTable("energy", EnergyEntry, ("flags", "hw_state"), ("window",)),
              ChildTable("timeline", TimelinePoint))
}  # fmt: skip

# runs: RunRecord's scalar fields (schema_version stored as record_schema_version), then the nested
# ones as JSON, plus storage-only columns: hardware_profile_id and energy_state_id (taken out of
# provenance, for grouping in SQL), has_finite_metric (whether any of its metrics has a value),
# timeline_devices (the devices its timeline has points on), stored_at and seq.
_RUN_NESTED = ("config", "provenance", *CHILD_TABLES)
RUN_FIELDS = [f for f in RunRecord.model_fields if f not in _RUN_NESTED]
_RUN_RENAMED = {"schema_version": "record_schema_version"}
RUN_SQL_COLUMNS = [_RUN_RENAMED.get(f, f) for f in RUN_FIELDS] + ["config_json", "provenance_json"]
RUN_STORAGE_COLUMNS = ["hardware_profile_id", "energy_state_id", "has_finite_metric", "timeline_devices", "stored_at",
                       "seq"]

RUNS = Table(
    "runs", METADATA,
    *(Column(_RUN_RENAMED.get(f, f), *_field_type(RunRecord, f)[:1], primary_key=f == "run_id",
             nullable=_field_type(RunRecord, f)[1]) for f in RUN_FIELDS),
    Column("config_json", Text, nullable=False),
    # The provenance's JSON with each mapping or list under `hardware` as {"value_id": N}, a reference to
    # the hardware_values row that holds it (v12, store/hardware_values.py)
    Column("provenance_json", Text, nullable=False),
    Column("hardware_profile_id", Text),
    # The hardware_values id of provenance.hardware.state (null where not recorded): the comparability
    # groups' energy state (analysis/hwstate.py) found in SQL without parsing every run's provenance
    # (store/queries.py). An id, not the state's text (store v9 to v11): a real GPU box's state is about
    # 600 bytes, and runs_grouped held it once per run (812 MiB of index at 1 000 000 runs)
    Column("energy_state_id", BigInteger().with_variant(Integer, "sqlite")),
    # 1 when one of the run's metrics has a value (not all NaN/inf, stored null), else 0: what makes a run
    # count in a comparability group, kept with the run so that listing the groups reads no metric row
    Column("has_finite_metric", Integer, nullable=False),
    # The distinct devices of the run's timeline points, sorted, as a JSON list ('[]': no timeline): what picks
    # the runs a report's power plot shows from the runs alone (Store.timeline_runs), where finding them in
    # the timeline's index costs a lookup or two per run read (0.7 s for the 125 000 runs of a 1 M store)
    Column("timeline_devices", Text, nullable=False),
    Column("stored_at", Text),
    # The order runs were stored in: PostgreSQL numbers them (identity); SQLite's writer, holding the
    # write lock, takes max + 1 (store.Store.merge).
    Column("seq", BigInteger, Identity()),
    Index("runs_by_suite", "suite", "arm", "task"),
    Index("runs_by_seq", "seq", unique=True),
    # The runs of a configuration × hardware profile: a report reads only its newest groups' (store/queries.py)
    Index("runs_by_group", "suite_config_hash", "hardware_profile_id"),
)  # fmt: skip

# The runs that make up comparability groups (store/queries.py: group_rows). Written with inline literals,
# not bound parameters: a partial index serves only a query whose condition the planner can match to its
# own. A PostgreSQL generic plan (psycopg prepares a statement run often) cannot match a parameter, and
# SQLite, which plans with the parameter's value, still tests it on every row (2.5× slower here).
GROUPED_RUNS = and_(RUNS.c.status == literal_column("'ok'"), RUNS.c.has_finite_metric == literal_column("1"))
# Every column group_rows reads, in its GROUP BY order after the suite: the groups are listed from this
# index alone, in index order, without reading a run row or sorting. The condition's columns come last
# although every entry holds the same values: SQLite (3.40) counts an index as covering only when it holds
# every column the query names, its own condition's included.
Index("runs_grouped", RUNS.c.suite, RUNS.c.suite_config_hash, RUNS.c.hardware_profile_id, RUNS.c.energy_state_id,
      RUNS.c.started_at, RUNS.c.seq, RUNS.c.status, RUNS.c.has_finite_metric,
      sqlite_where=GROUPED_RUNS, postgresql_where=GROUPED_RUNS)

# Each distinct mapping or list of the runs' provenance.hardware, once (store/hardware_values.py): found by
# `digest` (of the key and the text) when a run is stored; the runs refer to it by id. A value's text may
# be larger than a PostgreSQL index entry may be (about 2.7 KB), so the unique index is on the digest.
HARDWARE_VALUES = Table(
    "hardware_values", METADATA,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), Identity(), primary_key=True),
    Column("digest", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("value_json", Text, nullable=False),
    Index("hardware_values_by_digest", "digest", unique=True),
)  # fmt: skip

TABLES = {
    name: Table(
        name, METADATA,
        Column("run_id", Text, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True),
        Column("idx", Integer, primary_key=True),
        *table.sql_columns(),
    )
    for name, table in CHILD_TABLES.items()
}  # fmt: skip
Index("metrics_by_name", TABLES["metrics"].c.name)
# The metric values that were NaN/inf (stored null), few among millions: counted for the warnings without
# reading the others (store/queries.py: not_finite_counts); `value` (always null here) makes it covering
# for SQLite, as in runs_grouped
Index("metrics_not_finite", TABLES["metrics"].c.run_id, TABLES["metrics"].c.name, TABLES["metrics"].c.value,
      sqlite_where=TABLES["metrics"].c.value.is_(None), postgresql_where=TABLES["metrics"].c.value.is_(None))
Index("energy_by_domain", TABLES["energy"].c.device, TABLES["energy"].c.domain)
# (Which runs have a timeline on which device is runs.timeline_devices since v11, which dropped the index
# timeline_by_run_device that v8 added for it: one entry per stored point, about 15 % of a store's file.)


def run_row(record: RunRecord, stored_at: str, provenance) -> dict:
    """The runs row of a record; `provenance`: its provenance as stored (store/hardware_values.py: Stored, from
    stored_provenances): the text with references to its hardware values, and their ids."""
    values = [getattr(record, f) for f in RUN_FIELDS]
    return {**dict(zip(RUN_SQL_COLUMNS, values)), "config_json": json.dumps(record.config),
            "provenance_json": provenance.text,
            "hardware_profile_id": record.provenance.hardware_profile_id,
            "energy_state_id": provenance.ids.get("state"),
            "has_finite_metric": int(any(m.value is not None for m in record.metrics)),
            "timeline_devices": devices_json(p.device for p in record.timeline), "stored_at": stored_at}


def devices_json(devices: Iterable[str]) -> str:
    """runs.timeline_devices of a run whose timeline points are on these devices (repeats allowed)."""
    return json.dumps(sorted(set(devices)))


# Frame columns (the contract in DEVELOPERS.md): runs, and after the run columns those of each child.
# Flags come as two list columns (codes, messages), never a joined string: messages contain ';'.
def _frame_columns(table: ChildTable) -> list[str]:
    return [c for f in table.stored for c in (("flags", "flag_messages") if f == "flags" else (f,))]


RUN_COLUMNS = [f for f in RUN_FIELDS if f != "schema_version"] + ["hardware_profile_id"]
METRIC_COLUMNS = _frame_columns(CHILD_TABLES["metrics"])
ENERGY_COLUMNS = _frame_columns(CHILD_TABLES["energy"])
TIMELINE_COLUMNS = CHILD_TABLES["timeline"].stored
# Text columns of a few values repeated on every row: read as sorted pandas categories, a small code a row
# (store/column_read.py). Ids, times, errors and messages stay text.
RUN_LABELS = frozenset({"suite", "suite_config_hash", "arm", "task", "size", "device", "status", "hardware_profile_id"})
CHILD_LABELS = {"energy": frozenset({"window", "device", "domain", "method", "meter"})}


def flag_columns(flags: list) -> tuple[list[str], list[str]]:
    """(codes, messages) of a list of Flags or {code, message} dicts: a frame's two flag columns."""
    items = [f if isinstance(f, dict) else f.model_dump() for f in flags]
    return [f["code"] for f in items], [f["message"] for f in items]

"""A run's detected-hardware mappings and lists, each distinct one stored once (store v12).

A real run's provenance is about 2.3 KB of JSON, and most of it is mappings and lists that every run of
one machine and commit repeats: the meters and their info, the boards and their state, the isolation
check, the inputs, the cost estimate. Stored whole in each run's row they made the runs table four
times larger than the rest of the row, and every reader parsed them again for every run (4.5 s of a
16 s report at 1 000 000 records, docs/scale.md). So `hardware_values` holds each distinct (hardware
key, JSON text) once, found again by a digest of the two; a run's `provenance_json` keeps its
top-level fields and its hardware scalars inline, and holds `{"value_id": N}` in place of each
mapping or list. Every mapping or list entry is stored this way, so in a stored provenance a mapping
under `hardware` is always a reference, never a value.

What a reader gets back is the provenance as written: the same keys in the same order (the
reference sits where the value was), and the values that `model_dump_json` wrote (a value is the
JSON text of the parsed value: floats and ints read back as they were). Values are only ever added,
in the transaction that stores the runs naming them, so a run read always finds its values.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, NamedTuple

from pydantic_core import from_json, to_json  # pydantic's own JSON, 2× (parsing) and 6× (writing) the json module's

from eitp_bench.store.layout import HARDWARE_VALUES

REFERENCE = "value_id"  # {"value_id": N}: the entry is hardware_values row N
_IN_CHUNK = 900  # ids or digests per IN (…): under SQLite's 999 bound parameters of older builds


def _text(value) -> str:
    """The stored JSON of a value (compact, UTF-8 as is), the same for equal values: what the digest is of."""
    return to_json(value).decode()


def _digest(key: str, text: str) -> str:
    return hashlib.sha256(f"{key}\0{text}".encode()).hexdigest()[:32]  # 128 bits: no collision in any store


class Split:
    """One provenance taken apart for storing: its JSON data, with each interned entry's digest in its place
    (`refs`: hardware key → digest), and the interned values (`values`: digest → (key, JSON text))."""

    def __init__(self, provenance_json: str):
        self.data = from_json(provenance_json)  # ValueError: not JSON
        hardware = self.data.get("hardware") if isinstance(self.data, dict) else None
        self.refs: dict[str, str] = {}
        self.values: dict[str, tuple[str, str]] = {}
        for key, value in (hardware or {}).items() if isinstance(hardware, dict) else ():
            if type(value) is dict or type(value) is list:
                text = _text(value)
                self.refs[key] = digest = _digest(key, text)
                self.values[digest] = (key, text)

    def stored(self, ids: dict[str, int]) -> "Stored":
        """The provenance as stored: each interned entry a reference to its row in `ids` (digest → id)."""
        hardware = self.data.get("hardware") if self.refs else None
        refs = {key: ids[digest] for key, digest in self.refs.items()}
        for key, value_id in refs.items():
            hardware[key] = {REFERENCE: value_id}
        return Stored(_text(self.data), refs)


class Stored(NamedTuple):
    """A provenance as stored: the runs.provenance_json text, and the id of each interned hardware entry
    (hardware key → hardware_values id: runs.energy_state_id is that of "state")."""

    text: str
    ids: dict[str, int]


def value_ids(conn, values: dict[str, tuple[str, str]], known: dict[str, int]) -> dict[str, int]:
    """`known` (digest → id) completed with the ids of `values` (digest → (key, text)), storing those not stored
    yet, inside the caller's write transaction. On PostgreSQL a concurrent writer may store the same value
    first: the insert skips it (ON CONFLICT, after waiting for that writer's commit) and it is read back."""
    _read_ids(conn, values, known)
    new = [{"digest": d, "key": values[d][0], "value_json": values[d][1]} for d in values if d not in known]
    if new:
        t = HARDWARE_VALUES
        known.update(conn.execute(_insert_skipping(conn.dialect.name).returning(t.c.digest, t.c.id), new).all())
        _read_ids(conn, values, known)  # those the insert skipped: another writer stored them meanwhile
    return known


def _read_ids(conn, values: dict, known: dict[str, int]) -> None:
    """`known` completed with the stored ids of those of `values` it lacks."""
    from sqlalchemy import select

    t = HARDWARE_VALUES
    for chunk in _chunks([d for d in values if d not in known]):
        known.update(conn.execute(select(t.c.digest, t.c.id).where(t.c.digest.in_(chunk))).all())


def _insert_skipping(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(HARDWARE_VALUES).on_conflict_do_nothing(index_elements=["digest"])


def stored_provenances(conn, provenance_texts: list[str], known: dict[str, int] | None = None) -> list[Stored]:
    """Each provenance (model_dump_json text) as stored, its values stored as needed."""
    return stored_splits(conn, [Split(text) for text in provenance_texts], known)


def stored_splits(conn, splits: list[Split], known: dict[str, int] | None = None) -> list[Stored]:
    """Each split provenance as stored, its values stored as needed. `known` (digest → id):
    values known to be stored (completed here), so that a long run of writes looks each one up once."""
    values = {d: v for s in splits for d, v in s.values.items()}
    ids = value_ids(conn, values, {} if known is None else known)
    return [s.stored(ids) for s in splits]


def referenced_ids(data: dict) -> Iterable[int]:
    """The hardware_values ids a stored provenance (parsed) refers to."""
    hardware = data.get("hardware") if isinstance(data, dict) else None
    if isinstance(hardware, dict):
        for value in hardware.values():
            if type(value) is dict:
                yield value[REFERENCE]


def value_texts(store, ids: Iterable[int], into: dict[int, str] | None = None) -> dict[int, str]:
    """`into` (id → stored JSON text) completed with the values of `ids` not in it yet."""
    from sqlalchemy import select

    out = {} if into is None else into
    missing = sorted({i for i in ids if i not in out})
    t = HARDWARE_VALUES
    for chunk in _chunks(missing):
        with store._driver_cursor(select(t.c.id, t.c.value_json).where(t.c.id.in_(chunk))) as cursor:
            out.update(cursor.fetchall())
    return out


def resolved(data: dict, value_of) -> dict:
    """A stored provenance (parsed) with each reference replaced by `value_of(id)`, in place: the provenance
    as written. A reference to no stored value is a KeyError (the store was altered: Store's readers say so)."""
    hardware = data.get("hardware") if isinstance(data, dict) else None
    if isinstance(hardware, dict):
        for key, value in hardware.items():
            if type(value) is dict:
                hardware[key] = value_of(value[REFERENCE])
    return data


def _chunks(items: list) -> Iterable[list]:
    return (items[i:i + _IN_CHUNK] for i in range(0, len(items), _IN_CHUNK))

"""Parquet snapshots of the gallery (what a remote console reads with DuckDB).

Tables: ``persons``, ``images`` (metadata, no bytes) and ``embeddings`` (with the float32 vector
as a binary column, or without it); all their columns, or the ones asked for. Read through the
store's own driver (SQLite or PostgreSQL) in batches, written with pyarrow batch by batch (memory
stays flat at a million rows): no DuckDB scanner in the process that writes the store.

Each snapshot carries the gallery's stamp (``store_meta.gallery_stamp``, a fresh random value on
every change to a person, image or embedding; schema 9), read in the snapshot's own transaction:
a client that holds a snapshot asks again with it and gets "not modified" until something changed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import InvalidInput, StoreSchemaError
from core.store.db import Connection, Snapshots, stream
from core.store.sqlutil import MAX_ROW_ID

_INT, _TEXT = pa.int64(), pa.string()
COLUMNS: dict[str, dict[str, pa.DataType]] = {
    "persons": {"id": _INT, "name": _TEXT, "created_at": _TEXT},
    "images": {
        "id": _INT,
        "person_id": _INT,
        "sha256": _TEXT,
        "source": _TEXT,
        "display_name": _TEXT,
        "mime": _TEXT,
        "width": _INT,
        "height": _INT,
        "num_bytes": _INT,
        "generator": _TEXT,  # NULL for uploads
        "created_at": _TEXT,
    },
    "embeddings": {
        "id": _INT,
        "person_id": _INT,
        "image_id": _INT,
        "source": _TEXT,
        "model": _TEXT,
        "dim": _INT,
        "det_score": pa.float64(),
        "created_at": _TEXT,
    },
}
VECTOR = pa.binary()  # embeddings only, on request: dim little-endian float32
TABLES = tuple(COLUMNS)
MAX_PERSON_IDS = 1000
BATCH_ROWS = 65_536


def _select(
    table: str, with_vectors: bool, columns: list[str] | None, person_ids: list[int] | None
) -> tuple[str, pa.Schema]:
    if table not in COLUMNS:
        raise InvalidInput(f"unknown table {table!r}; tables: {', '.join(COLUMNS)}")
    if person_ids is not None and len(person_ids) > MAX_PERSON_IDS:
        raise InvalidInput(f"at most {MAX_PERSON_IDS} person ids per export, got {len(person_ids)}")
    outside = [i for i in person_ids or () if not 1 <= i <= MAX_ROW_ID]
    if outside:
        raise InvalidInput(f"person_id {outside[0]} is not an id: ids are whole numbers from 1 to {MAX_ROW_ID}")
    if with_vectors and table != "embeddings":
        raise InvalidInput(f"vectors=true is for the embeddings table only, not {table}")
    known = {**COLUMNS[table], **({"vector": VECTOR} if table == "embeddings" else {})}
    chosen = list(dict.fromkeys(columns)) if columns else list(COLUMNS[table])
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise InvalidInput(f"{table} has no column {', '.join(map(repr, unknown))}; columns: {', '.join(known)}")
    if with_vectors and "vector" not in chosen:
        chosen.append("vector")
    where = ""
    if person_ids is not None:
        key = "id" if table == "persons" else "person_id"
        where = f" WHERE {key} IN ({','.join('?' * len(person_ids))})"
    schema = pa.schema([(name, known[name]) for name in chosen])
    # in id order when the id is asked for; without it, in whatever order SQLite reads fastest
    # (a covering index, say: person_id, model, source of a million embeddings without their vectors)
    order = " ORDER BY id" if "id" in chosen else ""
    return f"SELECT {', '.join(chosen)} FROM {table}{where}{order}", schema


def validate(
    table: str, with_vectors: bool = False, person_ids: list[int] | None = None, columns: list[str] | None = None
) -> None:
    """Raises InvalidInput for what ``export_snapshot`` would refuse (without reading the store)."""
    _select(table, with_vectors, columns, person_ids)


@dataclass(frozen=True)
class Exported:
    """A table's Parquet bytes and the gallery stamp they were read at."""

    data: bytes
    stamp: str


STAMP_SQL = "SELECT value FROM store_meta WHERE key = 'gallery_stamp'"


def format_stamp(value: int) -> str:
    return f"{int(value) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _stamp(conn: Connection) -> str:
    row = conn.execute(STAMP_SQL).fetchone()
    if row is None:
        raise StoreSchemaError("the gallery has no stamp (schema older than 9): open it with ManyAngles to migrate it")
    return format_stamp(row[0])


def gallery_stamp(store: Snapshots) -> str:
    """The gallery's current stamp (one indexed lookup): equal stamps, equal gallery tables."""
    with store.snapshot() as conn:
        return _stamp(conn)


def export_snapshot(
    store: Snapshots,
    table: str,
    with_vectors: bool = False,
    person_ids: list[int] | None = None,
    columns: list[str] | None = None,
) -> Exported:
    """One table as Parquet bytes; a consistent snapshot (one read transaction) with the stamp it
    was read at. With ``person_ids``, only those persons' rows; with ``columns``, only those
    columns (rows in id order when ``id`` is one of them)."""
    sql, schema = _select(table, with_vectors, columns, person_ids)
    buffer = io.BytesIO()
    with store.snapshot() as conn, pq.ParquetWriter(buffer, schema) as writer:
        stamp = _stamp(conn)  # the stamp and every batch from the same snapshot
        cursor = stream(conn, sql, [int(i) for i in person_ids or []])
        while rows := cursor.fetchmany(BATCH_ROWS):
            columns_of_rows = zip(*rows)
            arrays = [pa.array(values, type=field.type) for values, field in zip(columns_of_rows, schema)]
            writer.write_batch(pa.record_batch(arrays, schema=schema))
    return Exported(buffer.getvalue(), stamp)


def export_table(
    store: Snapshots,
    table: str,
    with_vectors: bool = False,
    person_ids: list[int] | None = None,
    columns: list[str] | None = None,
) -> bytes:
    """One table as Parquet bytes (``export_snapshot`` without the stamp)."""
    return export_snapshot(store, table, with_vectors, person_ids, columns).data

"""Parquet snapshots of the gallery (what a remote console reads with DuckDB).

Tables: ``persons``, ``images`` (metadata, no bytes) and ``embeddings`` (with the float32 vector
as a binary column, or without it). Read through sqlite3, written with pyarrow: no DuckDB sqlite
scanner in the process that writes the store.
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import InvalidInput

TABLES: dict[str, str] = {
    "persons": "SELECT id, name, created_at FROM persons{where_id} ORDER BY id",
    "images": "SELECT id, person_id, sha256, source, display_name, mime, width, height, num_bytes, generator, "
    "created_at FROM images{where} ORDER BY id",
    "embeddings": "SELECT id, person_id, image_id, source, model, dim, det_score, created_at{vector} "
    "FROM embeddings{where} ORDER BY id",
}


MAX_PERSON_IDS = 1000


def export_table(db_path: Path, table: str, with_vectors: bool = False, person_ids: list[int] | None = None) -> bytes:
    """One table as Parquet bytes; a consistent snapshot (one read transaction). With
    ``person_ids``, only those persons' rows."""
    if table not in TABLES:
        raise InvalidInput(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    if person_ids is not None and len(person_ids) > MAX_PERSON_IDS:
        raise InvalidInput(f"at most {MAX_PERSON_IDS} person ids per export, got {len(person_ids)}")
    marks = ",".join("?" * len(person_ids or []))
    where = f" WHERE person_id IN ({marks})" if person_ids is not None else ""
    sql = TABLES[table].format(
        vector=", vector" if with_vectors else "", where=where, where_id=where.replace("person_id", "id")
    )
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        cursor = conn.execute(sql, [int(i) for i in person_ids or []])
        columns = [c[0] for c in cursor.description]
        rows = cursor.fetchall()
    finally:
        conn.close()
    data = {name: pa.array(values) for name, values in zip(columns, zip(*rows))}
    buffer = io.BytesIO()
    # an empty table still gets typed columns (strings), so queries over it run
    pq.write_table(pa.table(data) if rows else pa.table({name: pa.array([], pa.string()) for name in columns}), buffer)
    return buffer.getvalue()

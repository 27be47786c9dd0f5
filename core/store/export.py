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
    "persons": "SELECT id, name, created_at FROM persons ORDER BY id",
    "images": "SELECT id, person_id, sha256, source, display_name, mime, width, height, num_bytes, generator, "
    "created_at FROM images ORDER BY id",
    "embeddings": "SELECT id, person_id, image_id, source, model, dim, det_score, created_at{vector} "
    "FROM embeddings ORDER BY id",
}


def export_table(db_path: Path, table: str, with_vectors: bool = False) -> bytes:
    """One table as Parquet bytes; a consistent snapshot (one read transaction)."""
    if table not in TABLES:
        raise InvalidInput(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    sql = TABLES[table].format(vector=", vector" if with_vectors else "")
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        cursor = conn.execute(sql)
        columns = [c[0] for c in cursor.description]
        rows = cursor.fetchall()
    finally:
        conn.close()
    data = {name: [row[i] for row in rows] for i, name in enumerate(columns)}
    buffer = io.BytesIO()
    # an empty table still gets typed columns (strings), so queries over it run
    pq.write_table(pa.table(data) if rows else pa.table({name: pa.array([], pa.string()) for name in columns}), buffer)
    return buffer.getvalue()

"""Read-only gallery analytics in DuckDB: over the SQLite store attached READ_ONLY when the data
dir is on this machine (the sqlite scanner from its PyPI package: nothing is downloaded), over the
API's Parquet snapshots (GET /v1/export) when it is not. The same SQL runs on both (schema ``g``).
Vectors are BLOBs, decoded with numpy."""

from __future__ import annotations

import io
import pathlib
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from console.client import ApiClient

Source = Path | ApiClient  # a local data dir, or the API of a remote service

SORTS = {"name": "p.name", "newest": "p.created_at DESC", "most embeddings": "embeddings DESC"}


def connect(source: Source, vectors: bool = False) -> duckdb.DuckDBPyConnection:
    if isinstance(source, ApiClient):
        return _connect_remote(source, vectors)
    data_dir = source
    import duckdb_extension_sqlite_scanner as package

    extension = next(pathlib.Path(package.__file__).parent.rglob("sqlite_scanner.duckdb_extension"))
    cache = data_dir / ".duckdb_extensions"
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "extension_directory": str(cache),
        }
    )
    con.execute(f"INSTALL '{extension}'")
    con.execute("LOAD sqlite_scanner")
    con.execute(f"ATTACH '{data_dir / 'gallery.db'}' AS g (TYPE sqlite, READ_ONLY)")
    return con


def _connect_remote(client: ApiClient, vectors: bool) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA g")
    for table in ("persons", "images", "embeddings"):
        arrow = pq.read_table(io.BytesIO(client.export(table, vectors=vectors and table == "embeddings")))
        con.register("snapshot", arrow)
        con.execute(f"CREATE TABLE g.{table} AS SELECT * FROM snapshot")
        con.unregister("snapshot")
    return con


def persons_page(data_dir: Source, search: str, sort: str, page: int, page_size: int = 25) -> tuple[pd.DataFrame, int]:
    """One page of persons with image and embedding counts, and the total that match."""
    con = connect(data_dir)
    try:
        pattern = f"%{search.strip()}%"
        row = con.execute("SELECT count(*) FROM g.persons WHERE name ILIKE ?", [pattern]).fetchone()
        total = row[0] if row else 0
        frame = con.execute(
            f"""
            SELECT p.id, p.name, p.created_at,
                   (SELECT count(*) FROM g.images i WHERE i.person_id = p.id) AS images,
                   (SELECT count(*) FROM g.embeddings e WHERE e.person_id = p.id) AS embeddings
            FROM g.persons p WHERE p.name ILIKE ?
            ORDER BY {SORTS[sort]}, p.id LIMIT ? OFFSET ?
            """,
            [pattern, page_size, page * page_size],
        ).df()
        return frame, int(total)
    finally:
        con.close()


def counts_by_source(data_dir: Source, person_ids: list[int] | None = None) -> pd.DataFrame:
    """Embeddings per person, model and source tag."""
    con = connect(data_dir)
    try:
        where = f"WHERE e.person_id IN ({','.join(str(int(i)) for i in person_ids)})" if person_ids else ""
        return con.execute(
            f"SELECT e.person_id, e.model, e.source, count(*) AS embeddings FROM g.embeddings e {where} "
            "GROUP BY ALL ORDER BY e.person_id, e.model, e.source"
        ).df()
    finally:
        con.close()


def projection(source: Source, person_ids: list[int]) -> pd.DataFrame:
    """2-D PCA of the chosen persons' embeddings (one model: the most common), with source tags."""
    con = connect(source, vectors=True)
    try:
        ids = ",".join(str(int(i)) for i in person_ids) or "NULL"
        rows = con.execute(
            f"SELECT p.name, e.source, e.model, e.vector FROM g.embeddings e JOIN g.persons p ON p.id = e.person_id "
            f"WHERE e.person_id IN ({ids}) ORDER BY e.id"
        ).fetchall()
    finally:
        con.close()
    if not rows:
        return pd.DataFrame(columns=["x", "y", "person", "source"])
    model = pd.Series([r[2] for r in rows]).mode()[0]
    rows = [r for r in rows if r[2] == model]
    vectors = np.stack([np.frombuffer(r[3], dtype="<f4") for r in rows])
    centred = vectors - vectors.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ axes[:2].T if len(rows) > 1 else np.zeros((len(rows), 2))
    return pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1] if xy.shape[1] > 1 else 0.0,
            "person": [r[0] for r in rows],
            "source": [r[1] for r in rows],
        }
    )

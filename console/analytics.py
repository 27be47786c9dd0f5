"""Read-only gallery analytics in DuckDB over the SQLite store (attached READ_ONLY, the sqlite
scanner from its PyPI package: nothing is downloaded). Every query pages in SQL."""

from __future__ import annotations

import pathlib
from pathlib import Path

import duckdb
import pandas as pd

SORTS = {"name": "p.name", "newest": "p.created_at DESC", "most embeddings": "embeddings DESC"}


def connect(data_dir: Path) -> duckdb.DuckDBPyConnection:
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


def persons_page(data_dir: Path, search: str, sort: str, page: int, page_size: int = 25) -> tuple[pd.DataFrame, int]:
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


def counts_by_source(data_dir: Path, person_ids: list[int] | None = None) -> pd.DataFrame:
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

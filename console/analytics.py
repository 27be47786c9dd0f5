"""Read-only gallery analytics in DuckDB, on a snapshot of the gallery tables kept up to date by
the store's change log: read from the SQLite store attached READ_ONLY when the data dir is on
this machine (console/local_tables.py), from the API's Parquet exports (GET /v1/export) when it
is not. The same SQL runs on both (schema ``g``). Vectors are BLOBs, decoded with numpy."""

from __future__ import annotations

import io
import pathlib
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from console.client import Changed


class Exporter(Protocol):
    """The API client's side of a remote snapshot (console/client.py's ApiClient)."""

    def export(
        self, table: str, vectors: bool = False, person_ids: list[int] | None = None, columns: list[str] | None = None
    ) -> bytes: ...

    def changes(self, since: str | None = None, limit: int = 10_000) -> Changed | None: ...


class Tables(Protocol):
    """Where a snapshot's rows come from: the API (``RemoteTables``) or the store on this machine
    (console/local_tables.py's ``LocalTables``)."""

    def changes(self, since: str | None = None, limit: int = 10_000) -> Changed | None: ...

    def rows(
        self, table: str, columns: list[str] | None = None, person_ids: list[int] | None = None, vectors: bool = False
    ) -> pa.Table: ...


@dataclass(frozen=True, eq=False)
class RemoteTables:
    """A remote service's tables: GET /v1/export (Parquet) and GET /v1/export/changes."""

    client: Exporter

    def changes(self, since: str | None = None, limit: int = 10_000) -> Changed | None:
        return self.client.changes(since, limit)

    def rows(
        self, table: str, columns: list[str] | None = None, person_ids: list[int] | None = None, vectors: bool = False
    ) -> pa.Table:
        return pq.read_table(io.BytesIO(self.client.export(table, vectors, person_ids, columns)))


# What the gallery queries read of a remote snapshot: a few columns, not the whole tables (at a
# million embeddings the API answers these in ~6 s instead of ~16 s).
SNAPSHOT_COLUMNS = {
    "persons": ["id", "name", "created_at"],
    "images": ["id", "person_id", "source"],  # the cover: the first photo's id
    "embeddings": ["person_id", "model", "source"],
}


# A delta re-reads the changed persons' rows, 1000 persons a request (GET /v1/export's cap);
# past this many a full download is the cheaper way.
MAX_DELTA_PERSONS = 2000
_EXPORT_IDS = 1000


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The gallery tables in an in-memory DuckDB (schema ``g``, the same SQL as the store), only
    the columns the gallery queries read (``SNAPSHOT_COLUMNS``): the few vectors a projection
    needs are read for its persons only. From a remote service (Parquet over HTTP) or from the
    store on this machine, whose full scans through the sqlite scanner grow with the gallery.

    Kept up to date by change token (the store's change log): a quiet gallery costs one lookup, a
    change re-reads only the changed persons' rows (``revalidated``). ``etag``: the gallery's
    stamp when the snapshot was taken (GET /v1/export's ETag)."""

    tables: Tables
    con: duckdb.DuckDBPyConnection
    loaded_at: float
    etag: str | None = None
    token: str | None = None  # the tables are at least as new as this change token
    updated: int = 0  # persons re-read or dropped by the delta that made this snapshot (0: a full load)

    @classmethod
    def load(cls, tables: Tables) -> Snapshot:
        """A new snapshot. The change token is taken before the tables are read: what changes
        meanwhile is re-read by the next delta."""
        changed = tables.changes()
        con = duckdb.connect()
        con.execute("CREATE SCHEMA g")
        for table, columns in SNAPSHOT_COLUMNS.items():
            _load_table(con, table, tables.rows(table, columns))
        if changed is None:
            return cls(tables, con, time.time())
        return cls(tables, con, time.time(), changed.etag, changed.token)

    def revalidated(self) -> Snapshot:
        """This snapshot while the gallery is unchanged, brought up to date when a few persons
        changed, else a new one. A delta changes this snapshot's database in one transaction
        (a query sees it before or after) and returns it under the new token."""
        changed = None if self.token is None else self.tables.changes(self.token, limit=MAX_DELTA_PERSONS)
        if changed is None or not changed.complete:  # a restored gallery, or too much changed
            return Snapshot.load(self.tables)
        if not changed.person_ids and not changed.deleted:
            return self
        updated = self._apply(changed.person_ids, changed.deleted)
        return replace(self, loaded_at=time.time(), etag=changed.etag, token=changed.token, updated=updated)

    def _apply(self, person_ids: tuple[int, ...], deleted: bool) -> int:
        """Replaces the rows of ``person_ids`` with the source's and, after deletions, drops the
        persons no longer in its persons table; returns how many persons were re-read or dropped."""
        rows: dict[str, list[pa.Table]] = {table: [] for table in SNAPSHOT_COLUMNS}
        for start in range(0, len(person_ids), _EXPORT_IDS):
            chunk = list(person_ids[start : start + _EXPORT_IDS])
            for table, columns in SNAPSHOT_COLUMNS.items():
                rows[table].append(self.tables.rows(table, columns, chunk))
        present = self.tables.rows("persons", ["id"]) if deleted else None
        con = self.con.cursor()
        con.register("changed", pa.table({"id": pa.array(person_ids, pa.int64())}))
        con.execute("BEGIN TRANSACTION")
        try:
            dropped = 0
            if present is not None:
                con.register("present", present)
                absent = "NOT IN (SELECT id FROM present)"
                found = con.execute(f"SELECT count(*) FROM g.persons WHERE id {absent}").fetchone()
                dropped = int(found[0]) if found else 0
                for table in ("images", "embeddings"):
                    con.execute(f"DELETE FROM g.{table} WHERE person_id {absent}")
                con.execute(f"DELETE FROM g.persons WHERE id {absent}")
            for table, parts in rows.items():
                if not parts:
                    continue
                key = "id" if table == "persons" else "person_id"
                con.execute(f"DELETE FROM g.{table} WHERE {key} IN (SELECT id FROM changed)")
                con.register("delta", pa.concat_tables(parts))
                con.execute(f"INSERT INTO g.{table} SELECT * FROM delta")
                con.unregister("delta")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()
        return len(person_ids) + dropped


class SnapshotCache:
    """The console's snapshot of one gallery, re-checked when older than ``max_age_s``: one
    change-log lookup while the gallery is quiet, the changed persons' rows after a change,
    instead of a read of every table. Shared by the console's sessions (one update at a time)."""

    def __init__(self, tables: Tables, max_age_s: float = 30.0) -> None:
        self.tables = tables
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._checked = 0.0

    def get(self) -> Snapshot:
        with self._lock:
            snapshot = self._snapshot
            if snapshot is not None and time.monotonic() - self._checked < self.max_age_s:
                return snapshot
            if snapshot is None or snapshot.token is None:
                snapshot = Snapshot.load(self.tables)
            else:
                snapshot = snapshot.revalidated()
            self._snapshot, self._checked = snapshot, time.monotonic()
            return snapshot

    def expire(self) -> None:
        """Check again on the next ``get`` (after a rename or delete from this console)."""
        with self._lock:
            self._checked = float("-inf")


Source = Path | Snapshot  # a snapshot, or the local data dir queried in place (full scans; benchmarks)

SORTS = {"name": "p.name", "newest": "p.created_at DESC", "most embeddings": "embeddings DESC"}


def _load_table(con: duckdb.DuckDBPyConnection, table: str, arrow: pa.Table, schema: str = "g.") -> None:
    con.register("snapshot", arrow)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM snapshot"
        if not schema
        else f"CREATE OR REPLACE TABLE {schema}{table} AS SELECT * FROM snapshot"
    )
    con.unregister("snapshot")


def connect(source: Source) -> duckdb.DuckDBPyConnection:
    if isinstance(source, Snapshot):
        return source.con.cursor()  # its own connection to the same in-memory database
    return attach(source)


def attach(data_dir: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with the store attached READ_ONLY as schema ``g`` (the sqlite scanner from its PyPI
    package: nothing is downloaded)."""
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


def persons_page(source: Source, search: str, sort: str, page: int, page_size: int = 25) -> tuple[pd.DataFrame, int]:
    """One page of persons with image and embedding counts and their cover (the first photo's
    image id), and the total that match.

    Sorting by name or date pages the persons table first and counts only that page's rows;
    sorting by embeddings has to count everyone's (one grouped scan)."""
    con = connect(source)
    try:
        pattern = f"%{search.strip()}%"
        row = con.execute("SELECT count(*) FROM g.persons WHERE name ILIKE ?", [pattern]).fetchone()
        total = row[0] if row else 0
        if sort == "most embeddings":
            sql = """
                WITH counts AS (SELECT person_id, count(*) AS embeddings FROM g.embeddings GROUP BY person_id),
                page AS (
                    SELECT p.id, p.name, p.created_at, coalesce(c.embeddings, 0) AS embeddings
                    FROM g.persons p LEFT JOIN counts c ON c.person_id = p.id WHERE p.name ILIKE ?
                    ORDER BY embeddings DESC, p.id LIMIT ? OFFSET ?)
                SELECT page.id, page.name, page.created_at,
                       (SELECT count(*) FROM g.images i WHERE i.person_id = page.id) AS images, page.embeddings,
                       (SELECT min(i.id) FROM g.images i WHERE i.person_id = page.id AND i.source = 'original')
                           AS cover,
                       (SELECT count(*) FROM g.images i WHERE i.person_id = page.id AND i.source = 'original')
                           AS photos
                FROM page ORDER BY page.embeddings DESC, page.id
            """
        else:
            sql = f"""
                WITH page AS (
                    SELECT p.id, p.name, p.created_at FROM g.persons p WHERE p.name ILIKE ?
                    ORDER BY {SORTS[sort]}, p.id LIMIT ? OFFSET ?)
                SELECT p.id, p.name, p.created_at,
                       (SELECT count(*) FROM g.images i WHERE i.person_id = p.id) AS images,
                       (SELECT count(*) FROM g.embeddings e WHERE e.person_id = p.id) AS embeddings,
                       (SELECT min(i.id) FROM g.images i WHERE i.person_id = p.id AND i.source = 'original') AS cover,
                       (SELECT count(*) FROM g.images i WHERE i.person_id = p.id AND i.source = 'original') AS photos
                FROM page p ORDER BY {SORTS[sort]}, p.id
            """
        frame = con.execute(sql, [pattern, page_size, page * page_size]).df()
        return frame, int(total)
    finally:
        con.close()


def names_of(source: Source, person_ids: list[int]) -> dict[int, str]:
    """The names of these persons (those still enrolled)."""
    if not person_ids:
        return {}
    con = connect(source)
    try:
        ids = ",".join(str(int(i)) for i in person_ids)
        return {
            int(i): str(n) for i, n in con.execute(f"SELECT id, name FROM g.persons WHERE id IN ({ids})").fetchall()
        }
    finally:
        con.close()


def counts_by_source(source: Source, person_ids: list[int] | None = None) -> pd.DataFrame:
    """Embeddings per person, model and source tag."""
    con = connect(source)
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
    ids = [int(i) for i in person_ids]
    con = connect(source)
    try:
        table = "g.embeddings"
        if isinstance(source, Snapshot):  # this query's vectors only
            _load_table(con, "chosen", source.tables.rows("embeddings", person_ids=ids, vectors=True), schema="")
            table = "chosen"
        rows = con.execute(
            f"SELECT p.name, e.source, e.model, e.vector FROM {table} e JOIN g.persons p ON p.id = e.person_id "
            f"WHERE e.person_id IN ({','.join(map(str, ids)) or 'NULL'}) ORDER BY e.id"
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


def cover_images(source: Source, person_ids: list[int]) -> dict[int, int]:
    """Each person's cover, as the Gallery shows it: the id of their first uploaded photo (source
    ``original``); persons with none, or not in the snapshot, are left out. Read from the
    snapshot, so that no person's record is opened (the access log would call that a view)."""
    ids = sorted({int(i) for i in person_ids})
    if not ids:
        return {}
    con = connect(source)
    try:
        rows = con.execute(
            "SELECT person_id, min(id) FROM g.images "
            f"WHERE source = 'original' AND person_id IN ({','.join(map(str, ids))}) GROUP BY person_id"
        ).fetchall()
    finally:
        con.close()
    return {int(person): int(image) for person, image in rows}

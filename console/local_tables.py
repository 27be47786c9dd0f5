"""The store on this machine as a snapshot's source (console/analytics.py's ``Tables``).

Whole tables are read once through DuckDB's sqlite scanner (the store attached READ_ONLY); after
that the console asks the store's change log (schema 10: ``store_meta`` counters and
``person_changes``) which persons changed, and reads only their rows with SQLite's own indexes:
one lookup per page while the gallery is quiet, instead of a full scan of every table per query
(which grows with the gallery: ~0.6 s a page at 100k persons, ~1 s at a million embeddings).

The change-log reading follows core/store/changes.py (the console imports no ``core``): the same
``EPOCH-SEQ`` tokens, the same refusal (None here) of a token from another copy of the gallery.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from console.analytics import attach
from console.client import Changed

_META = (
    "SELECT key, value FROM store_meta WHERE key IN ('change_epoch', 'change_seq', 'change_deleted', 'gallery_stamp')"
)
_TYPES = {"INTEGER": pa.int64(), "REAL": pa.float64(), "TEXT": pa.string(), "BLOB": pa.binary()}
_PER_QUERY = 900  # ids per IN (...) list, under SQLite's oldest bound-parameter limit (999)


def _hex(value: object) -> str:
    return f"{int(str(value)) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


@dataclass(frozen=True)
class LocalTables:
    data_dir: Path

    def _open(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / 'gallery.db'}?mode=ro", uri=True)

    def changes(self, since: str | None = None, limit: int = 10_000) -> Changed | None:
        """The persons changed after ``since`` (None: only the current token); None when the
        token is not this gallery's (restored or replaced) or the store has no change log."""
        conn = self._open()
        try:
            conn.execute("BEGIN")  # the counters and the ids of one moment
            meta = dict(conn.execute(_META).fetchall())
            if not {"change_epoch", "change_seq", "change_deleted"} <= meta.keys():
                return None  # older than schema 10: the service migrates it at its next start
            epoch, seq = _hex(meta["change_epoch"]), int(meta["change_seq"])
            token, etag = f"{epoch}-{seq}", _hex(meta.get("gallery_stamp", 0))
            if since is None:
                return Changed(token, etag, (), False, True)
            their_epoch, _, their_seq = since.partition("-")
            if their_epoch != epoch or not their_seq.isdigit() or int(their_seq) > seq:
                return None
            found = conn.execute(
                "SELECT person_id FROM person_changes WHERE seq > ? ORDER BY person_id LIMIT ?",
                (int(their_seq), limit + 1),
            ).fetchall()
        finally:
            conn.close()
        deleted = int(meta["change_deleted"]) > int(their_seq)
        if len(found) > limit:
            return Changed(token, etag, (), deleted, False)
        return Changed(token, etag, tuple(int(r[0]) for r in found), deleted, True)

    def rows(
        self, table: str, columns: list[str] | None = None, person_ids: list[int] | None = None, vectors: bool = False
    ) -> pa.Table:
        """``columns`` of ``table`` (None: all, the vectors only when asked): the whole table through
        the sqlite scanner, or the rows of ``person_ids`` through SQLite's person index."""
        conn = self._open()
        try:
            declared = {row[1]: str(row[2]).upper() for row in conn.execute(f"PRAGMA table_info({table})")}
            if not declared:
                raise ValueError(f"the store has no table {table!r}")
            wanted = columns or [c for c in declared if vectors or c != "vector"]
            unknown = set(wanted) - declared.keys()
            if unknown:
                raise ValueError(f"{table} has no column(s) {sorted(unknown)}")
            select = ", ".join(wanted)
            if person_ids is None:
                con = attach(self.data_dir)
                try:
                    return con.execute(f"SELECT {select} FROM g.{table}").to_arrow_table()
                finally:
                    con.close()
            key = "id" if table == "persons" else "person_id"
            found: list[tuple] = []
            for start in range(0, len(person_ids), _PER_QUERY):
                chunk = [int(i) for i in person_ids[start : start + _PER_QUERY]]
                marks = ",".join("?" * len(chunk))
                found += conn.execute(f"SELECT {select} FROM {table} WHERE {key} IN ({marks})", chunk).fetchall()
        finally:
            conn.close()
        schema = pa.schema([(c, _TYPES.get(declared[c], pa.string())) for c in wanted])
        return pa.table([pa.array([r[i] for r in found], schema.field(i).type) for i in range(len(wanted))], schema)

"""Merging two persons into one: the way out of a face enrolled twice.

Mixed into GalleryStore. Everything of the person merged (``other``) moves to the person kept
(``keep``) in one transaction, and ``other`` is deleted: their images (with the next free display
names; a photo the kept person already has is not kept twice, its views move to the kept copy),
their embeddings (re-inserted under new ids and the old ones deleted, so every search index sees
them go and come through its incremental refresh), their generation and enrollment runs and their
access-log entries (which go on naming whose data it is, each detail starting ``as person M:``:
what happened, happened to M). Nothing is copied on disk: the
image files are content-addressed and stay where they are.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager

from core.errors import InvalidRequest, PersonNotFound
from core.store.db import Connection
from core.store.enroll_rows import free_display_name
from core.store.records import NewImage

log = logging.getLogger(__name__)

_EMBEDDING_COLUMNS = "image_id, source, model, dim, vector, det_score, bbox_x1, bbox_y1, bbox_x2, bbox_y2, created_at"


class Merging:
    def _transaction(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def merge_persons(self, keep: int, other: int) -> dict[str, int]:
        """Move every row of ``other`` to ``keep`` and delete ``other``; returns what moved."""
        if keep == other:
            raise InvalidRequest(f"person {keep} cannot be merged into themself")
        with self._transaction() as conn:
            for person_id in (keep, other):
                if conn.execute("SELECT 1 FROM persons WHERE id = ?", (person_id,)).fetchone() is None:
                    raise PersonNotFound(f"no person with id {person_id}")
            kept_images = {
                (sha, source): image_id
                for image_id, sha, source in conn.execute(
                    "SELECT id, sha256, source FROM images WHERE person_id = ?", (keep,)
                )
            }
            taken = {r[0] for r in conn.execute("SELECT display_name FROM images WHERE person_id = ?", (keep,))}
            moved = dropped = 0
            rows = conn.execute(
                "SELECT id, sha256, source, display_name FROM images WHERE person_id = ? ORDER BY id", (other,)
            ).fetchall()
            for image_id, sha, source, display_name in rows:
                twin = kept_images.get((sha, source))
                if twin is not None:  # the same bytes as one of keep's: its views move to keep's copy
                    conn.execute("UPDATE images SET source_image_id = ? WHERE source_image_id = ?", (twin, image_id))
                    conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
                    dropped += 1
                    continue
                probe = NewImage(b"", sha, "", "", 0, 0, source, display_name)
                name = free_display_name(probe, taken).display_name
                conn.execute("UPDATE images SET person_id = ?, display_name = ? WHERE id = ?", (keep, name, image_id))
                moved += 1
            # new ids for the moved vectors: a search index adds rows after the last id it saw and
            # drops the ids the removal log names (core/search/index.py); an UPDATE would reach neither
            vectors = conn.execute(
                f"SELECT {_EMBEDDING_COLUMNS} FROM embeddings WHERE person_id = ? ORDER BY id", (other,)
            ).fetchall()
            embeddings = conn.execute("DELETE FROM embeddings WHERE person_id = ?", (other,)).rowcount
            if vectors:
                marks = ",".join("?" * (len(vectors[0]) + 1))
                conn.executemany(
                    f"INSERT INTO embeddings(person_id, {_EMBEDDING_COLUMNS}) VALUES ({marks})",
                    [(keep, *row) for row in vectors],
                )
            for table in ("generation_runs", "enrollment_runs"):
                conn.execute(f"UPDATE {table} SET person_id = ? WHERE person_id = ?", (keep, other))
            # the history goes with the data, saying whom it happened to then
            conn.execute(
                "UPDATE access_log SET person_id = ?, detail = ? || detail WHERE person_id = ?",
                (keep, f"as person {other}: ", other),
            )
            conn.execute("DELETE FROM persons WHERE id = ?", (other,))
        counts = {"images": moved, "duplicate_images": dropped, "embeddings": embeddings}  # MergeResponse's fields
        log.info("merged person %d into person %d: %s", other, keep, counts)
        return counts

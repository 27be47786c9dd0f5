"""Erasure: a person, or one of their images, with every row and file of theirs.

Mixed into GalleryStore, which provides the connections and the data dir. Rows go in one
transaction (``secure_delete`` overwrites them); files are unlinked afterwards, each only when no
image row names it, under the write lock (an enrollment re-checks its files under the same lock);
then the WAL is checkpointed, so the erased pages' old content is gone from it too.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path

from core.errors import LastPhoto, PersonNotFound

log = logging.getLogger(__name__)


class Erasure:
    data_dir: Path

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def delete_person(self, person_id: int) -> dict[str, int]:
        """Erase the person's rows (cascading) and every file no other row references."""
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM persons WHERE id = ?", (person_id,)).fetchone() is None:
                raise PersonNotFound(f"no person with id {person_id}")
            paths = [r[0] for r in conn.execute("SELECT path FROM images WHERE person_id = ?", (person_id,))]
            counts = {
                "images": conn.execute("SELECT COUNT(*) FROM images WHERE person_id = ?", (person_id,)).fetchone()[0],
                "embeddings": conn.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE person_id = ?", (person_id,)
                ).fetchone()[0],
            }
            conn.execute("DELETE FROM persons WHERE id = ?", (person_id,))
        counts["files"] = len(self.remove_unreferenced([self.data_dir / p for p in set(paths)]))
        with self._connect() as conn:  # the WAL still holds the erased pages' old content until then
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("deleted person %d: %s", person_id, counts)
        return counts

    def delete_image(self, person_id: int, image_id: int) -> dict[str, int]:
        """Erase one image of a person: its row, its embeddings (every model) and its file when no
        other row names it; a photo goes with the views made from it (their rows cascade). The
        person's last uploaded photo stays (delete the person instead)."""
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM persons WHERE id = ?", (person_id,)).fetchone() is None:
                raise PersonNotFound(f"no person with id {person_id}")
            row = conn.execute(
                "SELECT path, source FROM images WHERE id = ? AND person_id = ?", (image_id, person_id)
            ).fetchone()
            if row is None:
                raise PersonNotFound(f"person {person_id} has no image {image_id}")
            path, source = row
            if source == "original":
                others = conn.execute(
                    "SELECT COUNT(*) FROM images WHERE person_id = ? AND source = 'original' AND id != ?",
                    (person_id, image_id),
                ).fetchone()[0]
                if not others:
                    raise LastPhoto(
                        f"image {image_id} is person {person_id}'s only uploaded photo; "
                        "delete the person instead; nothing was changed"
                    )
            views = conn.execute(
                "SELECT id, path FROM images WHERE source_image_id = ? AND person_id = ?", (image_id, person_id)
            ).fetchall()
            ids = [image_id, *(v[0] for v in views)]
            marks = ",".join("?" * len(ids))
            counts = {
                "images": len(ids),
                "views": len(views),
                "embeddings": conn.execute(
                    f"SELECT COUNT(*) FROM embeddings WHERE image_id IN ({marks})", ids
                ).fetchone()[0],
            }
            conn.execute("DELETE FROM images WHERE id = ?", (image_id,))  # its views and all their embeddings cascade
            left = conn.execute(f"SELECT COUNT(*) FROM images WHERE id IN ({marks})", ids).fetchone()[0]
            if left:  # the cascade is the schema's (foreign keys on): never leave a view without its photo
                raise RuntimeError(f"image {image_id}: {left} of its views were not removed with it")
        paths = {path, *(v[1] for v in views)}
        counts["files"] = len(self.remove_unreferenced([self.data_dir / p for p in sorted(paths)]))
        with self._connect() as conn:  # the WAL still holds the erased pages' old content until then
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("deleted image %d of person %d: %s", image_id, person_id, counts)
        return counts

    def remove_unreferenced(self, files: list[Path]) -> list[Path]:
        """Unlink the files no image row names; returns those removed."""
        if not files:
            return []
        removed = []
        # Check and unlink under the write lock, so no enrollment commits a row for a file
        # between the check and the unlink (add_person re-checks its files under the same lock).
        with self._transaction() as conn:
            for path in files:
                relative = path.relative_to(self.data_dir).as_posix()
                if conn.execute("SELECT 1 FROM images WHERE path = ? LIMIT 1", (relative,)).fetchone():
                    continue
                try:
                    path.unlink()
                    removed.append(path)
                except FileNotFoundError:
                    pass
                with contextlib.suppress(OSError):
                    path.parent.rmdir()  # only succeeds when empty
        return removed

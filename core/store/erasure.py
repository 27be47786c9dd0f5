"""Erasure: a person, or one of their images, with every row and file of theirs.

Mixed into GalleryStore, which provides the connections and the data dir. Rows go in one
transaction (SQLite's ``secure_delete`` overwrites them; on PostgreSQL the image bytes go in the
same transaction); files are unlinked afterwards, each only when no image row names it, under the
write lock (an enrollment re-checks its files under the same lock); then the database is
scrubbed (SQLite's WAL checkpointed, PostgreSQL's tables vacuumed), so the erased rows' old
content is gone from its files too.
"""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractContextManager
from pathlib import Path

from core.errors import LastPhoto, PersonNotFound
from core.store.blobs import ImageBytes
from core.store.db import Connection, Database

log = logging.getLogger(__name__)


class Erasure:
    data_dir: Path
    db: Database
    blobs: ImageBytes

    def _connect(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Connection]:
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
            blobs = self.blobs.drop(conn, set(paths))
        counts["files"] = blobs + len(self.remove_unreferenced(self._files(set(paths))))
        self.db.scrub()
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
            blobs = self.blobs.drop(conn, paths)
        counts["files"] = blobs + len(self.remove_unreferenced(self._files(paths)))
        self.db.scrub()
        log.info("deleted image %d of person %d: %s", image_id, person_id, counts)
        return counts

    def _files(self, paths: set[str]) -> list[Path]:
        """The data dir's files of ``paths`` (none where the bytes live in the database)."""
        return [] if self.blobs.in_database else [self.data_dir / p for p in sorted(paths)]

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

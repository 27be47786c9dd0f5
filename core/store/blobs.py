"""Where the image bytes live: files in the data dir (SQLite) or rows of ``image_blobs`` (PostgreSQL).

Both are content-addressed by the image's ``path`` (``images/ab/<sha256>.jpg``), shared by every
image row that names it, and removed when the last such row goes. Files are written before the
enrollment's transaction and removed after an erasure's, under the write lock
(core/store/erasure.py); blob rows are written and removed inside the same transaction as the
image rows, so no node needs a path of the data dir.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from core.errors import PersonNotFound
from core.store.db import Connection, Database
from core.store.records import NewImage


def image_path(image: NewImage) -> str:
    return (Path("images") / image.sha256[:2] / f"{image.sha256}{image.extension}").as_posix()


class ImageFiles:
    """SQLite's image bytes: files under the data dir (mode 0600 in 0700 folders)."""

    in_database = False

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def before(self, image: NewImage, created: list[Path]) -> str:
        """Write the file (if absent) before the rows; ``created`` gets what this call made."""
        relative = image_path(image)
        target = self.data_dir / relative
        if not target.exists():
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(image.data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            created.append(target)
        return relative

    def within(self, conn: Connection, image: NewImage, path: str, created: list[Path]) -> None:
        """Under the write lock no one removes files (see Erasure.remove_unreferenced): a file
        shared with a failed concurrent enrollment that was removed meanwhile is written again."""
        if not (self.data_dir / path).exists():
            self.before(image, created)

    def drop(self, conn: Connection, paths: set[str]) -> int:
        """Files go after the transaction (Erasure.remove_unreferenced): nothing here."""
        return 0

    def copy(self, path: str, target: Path, conn: Connection) -> None:
        """The image's bytes into the file ``target`` (a hard link on the same file system)."""
        try:
            os.link(self.data_dir / path, target)  # the content never changes
        except OSError:
            shutil.copy2(self.data_dir / path, target)

    def read(self, path: str) -> bytes:
        try:
            return (self.data_dir / path).read_bytes()
        except FileNotFoundError:
            raise PersonNotFound(f"the image file {path} is missing from the data dir") from None


class ImageRows:
    """PostgreSQL's image bytes: ``image_blobs`` rows, in the transaction of their image rows."""

    in_database = True

    def __init__(self, db: Database) -> None:
        self.db = db

    def before(self, image: NewImage, created: list[Path]) -> str:
        return image_path(image)

    def within(self, conn: Connection, image: NewImage, path: str, created: list[Path]) -> None:
        conn.execute(
            "INSERT INTO image_blobs(path, data) VALUES (?, ?) ON CONFLICT (path) DO NOTHING", (path, image.data)
        )

    def drop(self, conn: Connection, paths: set[str]) -> int:
        """Remove the blobs of ``paths`` no image row names any more; returns how many."""
        if not paths:
            return 0
        marks = ",".join("?" * len(paths))
        return int(
            conn.execute(
                f"DELETE FROM image_blobs b WHERE b.path IN ({marks}) "
                "AND NOT EXISTS (SELECT 1 FROM images i WHERE i.path = b.path)",
                sorted(paths),
            ).rowcount
        )

    def copy(self, path: str, target: Path, conn: Connection) -> None:
        """The bytes as ``conn`` sees them (the export's snapshot), into the file ``target``."""
        row = conn.execute("SELECT data FROM image_blobs WHERE path = ?", (path,)).fetchone()
        if row is None:
            raise PersonNotFound(f"the image {path} has no bytes in the database")
        target.write_bytes(bytes(row[0]))

    def read(self, path: str) -> bytes:
        with self.db.connect() as conn:
            row = conn.execute("SELECT data FROM image_blobs WHERE path = ?", (path,)).fetchone()
        if row is None:
            raise PersonNotFound(f"the image {path} has no bytes in the database")
        return bytes(row[0])


ImageBytes = ImageFiles | ImageRows

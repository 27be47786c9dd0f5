"""The gallery store: rows in SQLite (the data dir's ``gallery.db``, with content-addressed image
files beside it) or PostgreSQL (``store_url``: rows and image bytes), core/store/db.py.

One connection per operation, taken from the thread's open ones (SQLite, core/store/sqlite_db.py)
or from a pool (PostgreSQL), which keeps the store safe to share between threads and processes;
SQLite in WAL mode, foreign keys on, a busy timeout for concurrent writers.
Its mixins: storing an enrollment (core/store/enroll_rows.py), erasure, the latency log, the
stored thresholds.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np

from core.errors import PersonExists, PersonNotFound
from core.settings import Settings
from core.store.blobs import ImageBytes, ImageFiles, ImageRows
from core.store.db import Connection, Database, SqliteDatabase, open_database
from core.store.enroll_rows import EnrollmentRows
from core.store.erasure import Erasure
from core.store.merging import Merging
from core.store.names import name_prefix, normalise_name
from core.store.pg_schema import migrate_postgres, postgres_version
from core.store.records import (
    GalleryMatrix,
    ImageRecord,
    Person,
    PersonDetail,
)
from core.store.runs import RunLog
from core.store.schema import SCHEMA_VERSION, migrate
from core.store.sqlutil import MAX_ROW_ID
from core.store.threshold_rows import ThresholdRows

_IMAGE_COLUMNS = (
    "id, person_id, sha256, path, source, display_name, mime, width, height, num_bytes, generator, created_at, "
    "source_image_id"
)


PERSON_SELECT = (
    "SELECT p.id, p.name, p.created_at, "
    "(SELECT COUNT(*) FROM images i WHERE i.person_id = p.id), "
    "(SELECT COUNT(*) FROM embeddings e WHERE e.person_id = p.id) "
    "FROM persons p"
)


class GalleryStore(EnrollmentRows, Erasure, Merging, RunLog, ThresholdRows):
    def __init__(self, data_dir: Path, busy_timeout_s: float = 30.0, url: str = "") -> None:
        """The gallery in ``data_dir`` (SQLite: ``gallery.db`` and the image files), or, with a
        ``postgresql://`` ``url``, in that database (rows and image bytes; ``data_dir`` unused)."""
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / "gallery.db"
        self.images_dir = self.data_dir / "images"
        self.busy_timeout_s = busy_timeout_s
        self.db: Database = open_database(url, self.data_dir, busy_timeout_s)
        self.integrity_errors = self.db.integrity_errors
        if isinstance(self.db, SqliteDatabase):
            self.blobs: ImageBytes = ImageFiles(self.data_dir)
            self._create_files()
            with self._connect() as conn:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
                migrate(conn)  # type: ignore[arg-type]
        else:
            self.blobs = ImageRows(self.db)
            with self._connect() as conn:
                current = postgres_version(conn) == SCHEMA_VERSION
            if not current:  # the write lock only to migrate: opening a store costs every process one read
                with self._transaction() as conn:
                    migrate_postgres(conn)

    @classmethod
    def from_settings(cls, settings: Settings) -> GalleryStore:
        """The gallery the settings name: ``store_url``, or SQLite in ``data_dir``."""
        return cls(settings.data_dir, url=settings.store_url)

    @property
    def where(self) -> str:
        """The database, for messages (a PostgreSQL URL without its password)."""
        return self.db.describe()

    def _create_files(self) -> None:
        # Biometric data: only the service's user may read it (dirs 0700, files 0600).
        for directory in (self.data_dir, self.images_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for path in (self.db_path, *(self.db_path.with_name(self.db_path.name + s) for s in ("-wal", "-shm"))):
            with contextlib.suppress(FileNotFoundError):
                path.chmod(0o600)  # SQLite gives its -wal and -shm files the database's mode

    def close(self) -> None:
        """Release the database's connections (PostgreSQL's pool, SQLite's idle ones): the store stays usable."""
        self.db.close()

    # --- connections -------------------------------------------------------------------------
    def _connect(self) -> contextlib.AbstractContextManager[Connection]:
        return self.db.connect()

    def _transaction(self) -> contextlib.AbstractContextManager[Connection]:
        return self.db.transaction()

    def reader(self) -> contextlib.AbstractContextManager[Connection]:
        """A connection for reads (autocommit: each statement sees the latest commit)."""
        return self.db.connect()

    def write_lock(self) -> contextlib.AbstractContextManager[Connection]:
        """A write transaction: while it is held no enrollment commits and no file is removed."""
        return self.db.transaction()

    def snapshot(self) -> contextlib.AbstractContextManager[Connection]:
        """A read transaction: every statement reads the same moment."""
        return self.db.snapshot()

    # --- reading -----------------------------------------------------------------------------
    def list_persons(
        self, limit: int | None = None, offset: int = 0, prefix: str | None = None, newest_first: bool = False
    ) -> list[Person]:
        """Persons by name (``newest_first``: latest enrollment first); a page of them with
        ``limit``/``offset``; those whose name starts with ``prefix`` (case-sensitive, as stored).
        Each page is a range of the name index (newest first: of the id, which only grows)."""
        where, args = name_prefix(prefix)
        order = "p.id DESC" if newest_first else "p.name"
        with self._connect() as conn:
            rows = conn.execute(
                f"{PERSON_SELECT} {where} ORDER BY {order} LIMIT ? OFFSET ?",
                (*args, MAX_ROW_ID if limit is None else limit, offset),
            ).fetchall()
        return [Person(*row) for row in rows]

    def count_persons(self, prefix: str | None = None) -> int:
        where, args = name_prefix(prefix)
        with self._connect() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM persons p {where}", args).fetchone()[0])

    def find_person(self, key: int | str) -> Person:
        """A person by id (int) or by name (str)."""
        column = "id" if isinstance(key, int) else "name"
        value = key if isinstance(key, int) else normalise_name(key)
        with self._connect() as conn:
            row = conn.execute(f"{PERSON_SELECT} WHERE p.{column} = ?", (value,)).fetchone()
        if row is None:
            raise PersonNotFound(f"no person with {column} {value!r}")
        return Person(*row)

    def person_detail(self, person_id: int) -> PersonDetail:
        person = self.find_person(person_id)
        with self._connect() as conn:
            images = [
                ImageRecord(*row)
                for row in conn.execute(
                    f"SELECT {_IMAGE_COLUMNS} FROM images WHERE person_id = ? ORDER BY id",
                    (person_id,),
                )
            ]
            counts: dict[str, dict[str, int]] = {}
            for model, source, count in conn.execute(
                "SELECT model, source, COUNT(*) FROM embeddings WHERE person_id = ? "
                "GROUP BY model, source ORDER BY model, source",
                (person_id,),
            ):
                counts.setdefault(model, {})[source] = int(count)
        return PersonDetail(person=person, images=images, embedding_counts=counts)

    def image(self, person_id: int, image_id: int) -> tuple[ImageRecord, bytes]:
        with self._connect() as conn:
            row = conn.execute(
                f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = ? AND person_id = ?",
                (image_id, person_id),
            ).fetchone()
        if row is None:
            raise PersonNotFound(f"person {person_id} has no image {image_id}")
        record = ImageRecord(*row)
        return record, self.blobs.read(record.path)

    def has_person(self, name: str) -> bool:
        """Whether a person is enrolled under ``name`` (normalised)."""
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM persons WHERE name = ?", (normalise_name(name),)).fetchone()
        return row is not None

    def cover_image(self, person_id: int) -> int | None:
        """The person's cover: the id of their first uploaded photo."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT MIN(id) FROM images WHERE person_id = ? AND source = 'original'", (person_id,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def face_box(self, image_id: int) -> tuple[float, float, float, float] | None:
        """Where the face of an image is (x1, y1, x2, y2 in the upright image), as its newest
        embedding found it; None when it has none."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT bbox_x1, bbox_y1, bbox_x2, bbox_y2 FROM embeddings WHERE image_id = ? ORDER BY id DESC LIMIT 1",
                (image_id,),
            ).fetchone()
        return None if row is None else (float(row[0]), float(row[1]), float(row[2]), float(row[3]))

    def original_vectors(self, person_id: int, model: str) -> np.ndarray:
        """The vectors of ``model`` of the person's uploaded photos, (n, dim)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT vector FROM embeddings WHERE person_id = ? AND model = ? AND source = 'original' ORDER BY id",
                (person_id, model),
            ).fetchall()
        return np.array([np.frombuffer(r[0], dtype="<f4") for r in rows], dtype=np.float32)

    def find_image(self, person_id: int, sha256: str, source: str) -> int | None:
        """The id of the person's image with these bytes and source, if they have one."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT id FROM images WHERE person_id = ? AND sha256 = ? AND source = ? LIMIT 1",
                (person_id, sha256, source),
            ).fetchone()
        return None if row is None else int(row[0])

    def gallery_version(self, model: str) -> tuple[int, int, float]:
        """Changes whenever the model's embeddings change (a cheap cache key)."""
        with self._connect() as conn:
            row = conn.execute(
                "SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(id), 0) FROM embeddings WHERE model = ?",
                (model,),
            ).fetchone()
        return int(row[0]), int(row[1]), float(row[2])

    def load_gallery(self, model: str) -> GalleryMatrix:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT e.person_id, e.source, e.dim, e.vector FROM embeddings e "
                "WHERE e.model = ? ORDER BY e.person_id, e.id",
                (model,),
            ).fetchall()
            names = dict(conn.execute("SELECT id, name FROM persons").fetchall())
        if not rows:
            return GalleryMatrix(model, np.zeros((0, 0), np.float32), np.zeros(0, np.int64), [], names)
        dim = int(rows[0][2])
        vectors = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), dim)
        return GalleryMatrix(
            model=model,
            vectors=vectors.astype(np.float32),
            person_ids=np.array([r[0] for r in rows], dtype=np.int64),
            sources=[r[1] for r in rows],
            names={int(k): v for k, v in names.items()},
        )

    def person_names(self, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._connect() as conn:
            rows = conn.execute(f"SELECT id, name FROM persons WHERE id IN ({marks})", sorted(ids)).fetchall()
        return {int(i): n for i, n in rows}

    def rename_person(self, person_id: int, name: str) -> Person:
        new = normalise_name(name)
        with self._transaction() as conn:
            try:
                changed = conn.execute("UPDATE persons SET name = ? WHERE id = ?", (new, person_id)).rowcount
            except self.integrity_errors:
                raise PersonExists(f"a person named {new!r} is already enrolled") from None
        if not changed:
            raise PersonNotFound(f"no person with id {person_id}")
        return self.find_person(person_id)

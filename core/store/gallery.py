"""The gallery store: SQLite rows plus content-addressed image files under the data dir.

One connection per operation (SQLite connections are cheap and this keeps the store safe to share
between threads and processes); WAL mode, foreign keys on, a busy timeout for concurrent writers.
An enrollment writes its files first, then all its rows in one IMMEDIATE transaction; on any
failure the rows roll back and the files it created are removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sqlite3
import tempfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from core.errors import InvalidName, ModelSwitching, PersonExists, PersonNotFound, PhotoExists
from core.store.erasure import Erasure
from core.store.records import (
    Enrollment,
    GalleryMatrix,
    ImageRecord,
    NewEmbedding,
    NewImage,
    Person,
    PersonDetail,
)
from core.store.runs import RunLog
from core.store.schema import migrate
from core.store.sqlutil import rowid, utc_now
from core.store.threshold_rows import ThresholdRows

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 200
_IMAGE_COLUMNS = (
    "id, person_id, sha256, path, source, display_name, mime, width, height, num_bytes, generator, created_at"
)


PERSON_SELECT = (
    "SELECT p.id, p.name, p.created_at, "
    "(SELECT COUNT(*) FROM images i WHERE i.person_id = p.id), "
    "(SELECT COUNT(*) FROM embeddings e WHERE e.person_id = p.id) "
    "FROM persons p"
)
_LAST_CODE_POINT = "\U0010ffff"
# Zero-width (non-)joiners are part of how names are spelt in Persian and Indic scripts (and of
# emoji sequences); every other format character (bidi overrides, ...) can only disguise a name.
_JOINERS = frozenset("\u200c\u200d")


def _name_prefix(prefix: str | None) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause selecting names that start with ``prefix`` as a range of the name index
    (LIKE would scan: it is case-insensitive and the index is not)."""
    if not prefix:
        return "", ()
    cleaned = unicodedata.normalize("NFC", prefix)
    return "WHERE p.name >= ? AND p.name < ?", (cleaned, cleaned + _LAST_CODE_POINT)


def normalise_name(name: str) -> str:
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise InvalidName("the person's name is empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise InvalidName(f"the person's name is longer than {MAX_NAME_LENGTH} characters")
    hidden = [ch for ch in cleaned if unicodedata.category(ch).startswith("C") and ch not in _JOINERS]
    if hidden:
        raise InvalidName(
            f"the person's name contains a control or invisible formatting character (U+{ord(hidden[0]):04X})"
        )
    return cleaned


class GalleryStore(Erasure, RunLog, ThresholdRows):
    def __init__(self, data_dir: Path, busy_timeout_s: float = 30.0) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / "gallery.db"
        self.images_dir = self.data_dir / "images"
        self.busy_timeout_s = busy_timeout_s
        # Biometric data: only the service's user may read it (dirs 0700, files 0600).
        for directory in (self.data_dir, self.images_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for path in (self.db_path, *(self.db_path.with_name(self.db_path.name + s) for s in ("-wal", "-shm"))):
            with contextlib.suppress(FileNotFoundError):
                path.chmod(0o600)  # SQLite gives its -wal and -shm files the database's mode
        with self._connect() as conn:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            migrate(conn)

    # --- connections -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.db_path, timeout=self.busy_timeout_s, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
            # erased rows are overwritten with zeros, not left readable in free pages
            conn.execute("PRAGMA secure_delete = ON")
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def reader(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A connection for reads (autocommit: each statement sees the latest commit)."""
        return self._connect()

    def write_lock(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A write transaction: while it is held no enrollment commits and no file is removed."""
        return self._transaction()

    # --- enrollment --------------------------------------------------------------------------
    def add_person(
        self,
        enrollment: Enrollment,
        into: int | None = None,
        any_model: bool = False,
        new_photo: bool = False,
        guard: Callable[[sqlite3.Connection], None] | None = None,
    ) -> int:
        """Store a person with all their images, embeddings and generation runs, atomically.

        ``into``: add them to that existing person instead (an import's merge, a photo added to
        a person), leaving out an image the person already has (same bytes, same source) and its
        embeddings; a display name the person already uses gets the next free number
        (``original_2.jpg``, ``augmented_left_2.png``). ``new_photo``: the first image is a photo
        added to ``into``, refused if the person already has it.
        Vectors must be of the active model (checked under the write lock: an enrollment that
        raced a model switch is refused, not stored half-embedded); ``any_model``: an import.
        ``guard`` runs under the write lock before anything is written; what it raises refuses
        the enrollment (the face check against what committed since its search)."""
        name = normalise_name(enrollment.name)
        created_files: list[Path] = []
        try:
            paths = [self._write_image_file(image, created_files) for image in enrollment.images]
            with self._transaction() as conn:
                # Under the write lock no one removes files (see remove_unreferenced): a file
                # shared with a failed concurrent enrollment that was removed meanwhile is rewritten.
                for image, path in zip(enrollment.images, paths):
                    if not (self.data_dir / path).exists():
                        self._write_image_file(image, created_files)
                if not any_model:
                    _check_active(conn, {e.model for e in enrollment.embeddings})
                if guard is not None:
                    guard(conn)
                now = utc_now()
                had: set[tuple[str, str]] = set()
                taken: set[str] = set()
                if into is None:
                    try:
                        person_id = rowid(
                            conn.execute("INSERT INTO persons(name, created_at) VALUES (?, ?)", (name, now))
                        )
                    except sqlite3.IntegrityError:
                        raise PersonExists(f"a person named {name!r} is already enrolled") from None
                else:
                    if conn.execute("SELECT 1 FROM persons WHERE id = ?", (into,)).fetchone() is None:
                        raise PersonNotFound(f"no person with id {into}")
                    person_id = into
                    known = conn.execute(
                        "SELECT id, sha256, source, display_name FROM images WHERE person_id = ?", (into,)
                    )
                    for image_id, sha256, source, display_name in known:
                        had.add((sha256, source))
                        taken.add(display_name)
                        if new_photo and sha256 == enrollment.images[0].sha256 and source == "original":
                            raise PhotoExists(
                                f"person {into} already has this photo (image {image_id}); nothing was stored"
                            )
                image_ids = [
                    None
                    if (image.sha256, image.source) in had
                    else self._insert_image(conn, person_id, _free_display_name(image, taken), path, now)
                    for image, path in zip(enrollment.images, paths)
                ]
                for embedding in enrollment.embeddings:
                    image_id = image_ids[embedding.image_index]
                    if image_id is not None:
                        self._insert_embedding(conn, person_id, image_id, embedding, now)
                for run in enrollment.generation_runs:
                    self._insert_generation_run(conn, run, person_id, now)
        except BaseException:
            self.remove_unreferenced(created_files)
            raise
        log.info(
            "enrolled person %d: %d images, %d embeddings",
            person_id,
            len(enrollment.images),
            len(enrollment.embeddings),
        )
        return int(person_id)

    def _write_image_file(self, image: NewImage, created: list[Path]) -> str:
        relative = Path("images") / image.sha256[:2] / f"{image.sha256}{image.extension}"
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
        return relative.as_posix()

    def _insert_image(self, conn: sqlite3.Connection, person_id: int, image: NewImage, path: str, now: str) -> int:
        return rowid(
            conn.execute(
                "INSERT INTO images(person_id, sha256, path, source, display_name, mime, width, "
                "height, num_bytes, generator, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    person_id,
                    image.sha256,
                    path,
                    image.source,
                    image.display_name,
                    image.mime,
                    image.width,
                    image.height,
                    len(image.data),
                    image.generator,
                    now,
                ),
            )
        )

    def _insert_embedding(
        self, conn: sqlite3.Connection, person_id: int, image_id: int, emb: NewEmbedding, now: str
    ) -> None:
        vector = np.ascontiguousarray(emb.vector, dtype="<f4").ravel()
        conn.execute(
            "INSERT INTO embeddings(person_id, image_id, source, model, dim, vector, det_score, "
            "bbox_x1, bbox_y1, bbox_x2, bbox_y2, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                person_id,
                image_id,
                emb.source,
                emb.model,
                int(vector.shape[0]),
                vector.tobytes(),
                float(emb.det_score),
                *(float(v) for v in emb.bbox),
                now,
            ),
        )

    # --- reading -----------------------------------------------------------------------------
    def list_persons(
        self, limit: int | None = None, offset: int = 0, prefix: str | None = None, newest_first: bool = False
    ) -> list[Person]:
        """Persons by name (``newest_first``: latest enrollment first); a page of them with
        ``limit``/``offset``; those whose name starts with ``prefix`` (case-sensitive, as stored).
        Each page is a range of the name index (newest first: of the id, which only grows)."""
        where, args = _name_prefix(prefix)
        order = "p.id DESC" if newest_first else "p.name"
        with self._connect() as conn:
            rows = conn.execute(
                f"{PERSON_SELECT} {where} ORDER BY {order} LIMIT ? OFFSET ?",
                (*args, -1 if limit is None else limit, offset),
            ).fetchall()
        return [Person(*row) for row in rows]

    def count_persons(self, prefix: str | None = None) -> int:
        where, args = _name_prefix(prefix)
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
        return record, (self.data_dir / record.path).read_bytes()

    def has_person(self, name: str) -> bool:
        """Whether a person is enrolled under ``name`` (normalised)."""
        with self._connect() as conn:
            row = conn.execute("SELECT 1 FROM persons WHERE name = ?", (normalise_name(name),)).fetchone()
        return row is not None

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
                "SELECT COUNT(*), COALESCE(MAX(id), 0), TOTAL(id) FROM embeddings WHERE model = ?",
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
            except sqlite3.IntegrityError:
                raise PersonExists(f"a person named {new!r} is already enrolled") from None
        if not changed:
            raise PersonNotFound(f"no person with id {person_id}")
        return self.find_person(person_id)


def _free_display_name(image: NewImage, taken: set[str]) -> NewImage:
    """``image`` with a display name no other image of the person has (and marks it taken):
    ``original.jpg`` -> ``original_2.jpg``, ``augmented_left_1.png`` -> ``augmented_left_2.png``."""
    name = image.display_name
    if name in taken:
        stem, dot, extension = name.rpartition(".")
        stem, extension = (stem, dot + extension) if dot else (name, "")
        base, _, number = stem.rpartition("_")
        base, start = (base, int(number) + 1) if base and number.isdigit() else (stem, 2)
        name = next(
            f"{base}_{k}{extension}"
            for k in range(start, start + len(taken) + 2)
            if f"{base}_{k}{extension}" not in taken
        )
        image = dataclasses.replace(image, display_name=name)
    taken.add(name)
    return image


def _check_active(conn: sqlite3.Connection, models: set[str]) -> None:
    row = conn.execute("SELECT name FROM models WHERE status = 'active'").fetchone()
    if row is not None and models - {row[0]}:
        raise ModelSwitching(
            f"the active model is now {row[0]}; this request's vectors are of {', '.join(sorted(models))}; "
            "nothing was stored; retry"
        )

"""Storing an enrollment: a person (or more images of one) with their images, embeddings and
generation runs, atomically.

Mixed into GalleryStore, which provides the connections and where the image bytes go
(core/store/blobs.py). Files are written first, then every row (and on PostgreSQL the bytes) in
one write transaction; on any failure the rows roll back and the files this enrollment created
are removed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import ModelSwitching, PersonExists, PersonNotFound, PhotoExists
from core.store.blobs import ImageBytes
from core.store.db import Connection
from core.store.names import normalise_name
from core.store.records import Enrollment, GenerationRunRecord, NewEmbedding, NewImage
from core.store.sqlutil import rowid, utc_now

log = logging.getLogger(__name__)


class EnrollmentRows:
    data_dir: Path
    blobs: ImageBytes
    integrity_errors: tuple[type[Exception], ...]

    def _transaction(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    if TYPE_CHECKING:  # from the other mixins of GalleryStore (core/store/erasure.py, runs.py)

        def remove_unreferenced(self, files: list[Path]) -> list[Path]: ...

        def _insert_generation_run(
            self, conn: Connection, run: GenerationRunRecord, person_id: int | None, now: str
        ) -> int: ...

    def add_person(
        self,
        enrollment: Enrollment,
        into: int | None = None,
        any_model: bool = False,
        new_photo: bool = False,
        guard: Callable[[Connection], None] | None = None,
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
            paths = [self.blobs.before(image, created_files) for image in enrollment.images]
            with self._transaction() as conn:
                for image, path in zip(enrollment.images, paths):
                    self.blobs.within(conn, image, path, created_files)
                if not any_model:
                    check_active(conn, {e.model for e in enrollment.embeddings})
                if guard is not None:
                    guard(conn)
                now = utc_now()
                had: dict[tuple[str, str], int] = {}
                taken: set[str] = set()
                if into is None:
                    person_id = _insert_person(conn, name, now, self.integrity_errors)
                else:
                    person_id = into
                    had, taken = _images_of(conn, into, enrollment.images[0] if new_photo else None)
                self._insert_rows(conn, person_id, enrollment, paths, had, taken, now)
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

    def _insert_rows(
        self,
        conn: Connection,
        person_id: int,
        enrollment: Enrollment,
        paths: list[str],
        had: dict[tuple[str, str], int],
        taken: set[str],
        now: str,
    ) -> None:
        """The enrollment's images, then their embeddings and generation runs. A view's photo
        comes before it; an image the person had already (``had``: by sha256 and source) is
        theirs (an import's merge), and neither it nor its embeddings are inserted again."""
        stored: list[int] = []  # the image id of each of the enrollment's images
        inserted: list[int | None] = []  # the same where this enrollment inserted it
        for image, path in zip(enrollment.images, paths):
            known_id = had.get((image.sha256, image.source))
            if known_id is not None:
                stored.append(known_id)
                inserted.append(None)
                continue
            made_from = None if image.made_from is None else stored[image.made_from]
            image_id = self._insert_image(conn, person_id, free_display_name(image, taken), path, now, made_from)
            stored.append(image_id)
            inserted.append(image_id)
        for embedding in enrollment.embeddings:
            new_id = inserted[embedding.image_index]
            if new_id is not None:
                self._insert_embedding(conn, person_id, new_id, embedding, now)
        for run in enrollment.generation_runs:
            self._insert_generation_run(conn, run, person_id, now)

    def _insert_image(
        self, conn: Connection, person_id: int, image: NewImage, path: str, now: str, made_from: int | None
    ) -> int:
        return rowid(
            conn.execute(
                "INSERT INTO images(person_id, sha256, path, source, display_name, mime, width, "
                "height, num_bytes, generator, created_at, source_image_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
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
                    made_from,
                ),
            )
        )

    def _insert_embedding(self, conn: Connection, person_id: int, image_id: int, emb: NewEmbedding, now: str) -> None:
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


def _insert_person(conn: Connection, name: str, now: str, integrity_errors: tuple[type[Exception], ...]) -> int:
    try:
        return rowid(conn.execute("INSERT INTO persons(name, created_at) VALUES (?, ?) RETURNING id", (name, now)))
    except integrity_errors:
        raise PersonExists(f"a person named {name!r} is already enrolled") from None


def _images_of(
    conn: Connection, person_id: int, new_photo: NewImage | None
) -> tuple[dict[tuple[str, str], int], set[str]]:
    """The images person ``person_id`` has, by (sha256, source), and the display names they use;
    refuses ``new_photo`` (a photo added to them) if they have it already."""
    if conn.execute("SELECT 1 FROM persons WHERE id = ?", (person_id,)).fetchone() is None:
        raise PersonNotFound(f"no person with id {person_id}")
    had: dict[tuple[str, str], int] = {}
    taken: set[str] = set()
    known = conn.execute("SELECT id, sha256, source, display_name FROM images WHERE person_id = ?", (person_id,))
    for image_id, sha256, source, display_name in known:
        had[(sha256, source)] = image_id
        taken.add(display_name)
        if new_photo is not None and sha256 == new_photo.sha256 and source == "original":
            raise PhotoExists(f"person {person_id} already has this photo (image {image_id}); nothing was stored")
    return had, taken


def free_display_name(image: NewImage, taken: set[str]) -> NewImage:
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


def check_active(conn: Connection, models: set[str]) -> None:
    row = conn.execute("SELECT name FROM models WHERE status = 'active'").fetchone()
    if row is not None and models - {row[0]}:
        raise ModelSwitching(
            f"the active model is now {row[0]}; this request's vectors are of {', '.join(sorted(models))}; "
            "nothing was stored; retry"
        )

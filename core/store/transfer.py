"""A whole gallery out and in as Parquet, through DuckDB: ``manyangles export DEST`` / ``import SRC``.

An export is a folder: ``persons``, ``images`` (metadata), ``embeddings`` (source, model, the
vector as a FLOAT list, face box) and ``thresholds`` as Parquet files, ``manifest.json``, and,
unless ``--no-images``, the image files under ``images/`` (the store's own layout). It is taken
under the store's write lock, so the tables and the files agree.

Import rules (a person of the export whose name is already in the gallery):
- ``skip`` (default): leave them out. Re-running an interrupted import with ``skip`` completes it.
- ``rename``: store them as ``"<name> (2)"`` (the first free number).
- ``merge``: add their images and embeddings to the person of that name, leaving out an image the
  person already has (same bytes and source) and its embeddings.
With a face check (``manyangles import`` runs one: core/enroll/import_check.py), a person whose face is
identified as a person already in the gallery is left out whatever their name, and so is a merge
whose face is not identified as the person it would join; both are reported, and ``force``
imports them.
Everything is checked before anything is written (format, every file's SHA-256, every embedding's
image); each person is then stored atomically, as an enrollment is. Thresholds the gallery lacks
are taken from the export; its own ones win. An export without images can be read (DuckDB,
pandas) but not imported: the gallery keeps the image behind every embedding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa

from core.errors import InvalidInput
from core.store.gallery import GalleryStore
from core.store.names import normalise_name
from core.store.records import Enrollment, FaceConflict, NewEmbedding, NewImage, StoredThreshold
from core.store.sqlutil import utc_now

log = logging.getLogger(__name__)
FORMAT = 1
Conflict = Literal["skip", "rename", "merge"]
CONFLICTS: tuple[str, ...] = ("skip", "rename", "merge")

QUERIES: dict[str, str] = {
    "persons": "SELECT id, name, created_at FROM persons ORDER BY id",
    "images": "SELECT id, person_id, sha256, path, source, display_name, mime, width, height, num_bytes, "
    "generator, created_at, source_image_id FROM images ORDER BY id",
    "embeddings": "SELECT id, person_id, image_id, source, model, dim, vector, det_score, bbox_x1, bbox_y1, "
    "bbox_x2, bbox_y2, created_at FROM embeddings ORDER BY id",
    "thresholds": "SELECT model, kind, rule, target, threshold, n_negative, dataset, created_at, "
    "person_fmr, gallery_size, fmr_pairs FROM thresholds",
}


class ImportFaces(Protocol):
    """What an import asks of the gallery's faces (core/enroll/import_check.py)."""

    def describe(self) -> str: ...

    def begin(self) -> None: ...

    def can_check(self, enrollment: Enrollment) -> bool: ...

    def conflict(self, enrollment: Enrollment, into: int | None) -> FaceConflict | None: ...


@dataclass(frozen=True)
class TransferReport:
    persons: int
    images: int  # stored (a merge leaves out the images the person already had)
    embeddings: int
    seconds: float
    skipped: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    merged: list[str] = field(default_factory=list)
    face_check: str = "off"  # what the import's face check rested on
    face_conflicts: list[FaceConflict] = field(default_factory=list)  # left out, or imported with force
    unchecked: list[str] = field(default_factory=list)  # no vector of the check's model


def _arrow(cursor: Any) -> pa.Table:
    columns = [c[0] for c in cursor.description]
    rows = cursor.fetchall()
    data: dict[str, Any] = {}
    for index, name in enumerate(columns):
        values = [row[index] for row in rows]
        if name == "vector":  # float32 bytes -> a FLOAT list that DuckDB and pandas read as such
            arrays = [np.frombuffer(v, "<f4") for v in values]
            offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int32)
            flat = np.concatenate(arrays) if arrays else np.zeros(0, np.float32)
            data[name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.float32()))
        else:
            data[name] = pa.array(values, type=pa.string() if not rows else None)
    return pa.table(data)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def export_gallery(store: GalleryStore, dest: Path, with_images: bool = True) -> TransferReport:
    import duckdb

    started = time.perf_counter()
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InvalidInput(f"{dest} exists and is not an empty folder")
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    # one moment of the gallery: SQLite holds the write lock (no file removed meanwhile); PostgreSQL
    # reads rows and image bytes in one snapshot, and enrollments go on
    moment = store.snapshot() if store.blobs.in_database else store.write_lock()
    with moment as conn:
        tables = {name: _arrow(conn.execute(sql)) for name, sql in QUERIES.items()}
        if with_images:
            for relative in set(tables["images"].column("path").to_pylist()):
                target = dest / relative
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                store.blobs.copy(relative, target, conn)
    db = duckdb.connect()
    try:
        for name, table in tables.items():
            db.register("exported", table)
            db.execute(f"COPY exported TO '{_sql_path(dest / (name + '.parquet'))}' (FORMAT parquet)")
            db.unregister("exported")
    finally:
        db.close()
    counts = {name: table.num_rows for name, table in tables.items()}
    models = sorted(set(tables["embeddings"].column("model").to_pylist()))
    manifest = {"format": FORMAT, "created_at": utc_now(), "with_images": with_images, "models": models, **counts}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o700 if path.is_dir() else 0o600)
    report = TransferReport(
        counts["persons"], counts["images"], counts["embeddings"], round(time.perf_counter() - started, 3)
    )
    log.info(
        "exported %d persons, %d images, %d embeddings to %s", report.persons, report.images, report.embeddings, dest
    )
    return report


def _read(src: Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    import duckdb

    manifest_path = src / "manifest.json"
    if not manifest_path.is_file():
        raise InvalidInput(f"{src} is not a ManyAngles export (no manifest.json)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{manifest_path} is not valid JSON: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"{src} has export format {manifest.get('format')!r}; this version reads {FORMAT}")
    if not manifest.get("with_images"):
        raise InvalidInput(f"{src} was exported without images (--no-images): it can be read, not imported")
    db = duckdb.connect()
    try:
        rows: dict[str, list[dict[str, Any]]] = {}
        for name in QUERIES:
            path = src / f"{name}.parquet"
            if not path.is_file():
                raise InvalidInput(f"{src} lacks {path.name}")
            cursor = db.execute(f"SELECT * FROM read_parquet('{_sql_path(path)}')")
            columns = [c[0] for c in cursor.description]
            rows[name] = [dict(zip(columns, row)) for row in cursor.fetchall()]
    except duckdb.Error as exc:
        raise InvalidInput(f"{src}: unreadable Parquet: {exc}") from None
    finally:
        db.close()
    return manifest, rows


def _enrollments(src: Path, rows: dict[str, list[dict[str, Any]]]) -> list[Enrollment]:
    """Every person of the export as an enrollment; every file and reference checked first."""
    images_of: dict[int, list[dict[str, Any]]] = {}
    for image in rows["images"]:
        images_of.setdefault(int(image["person_id"]), []).append(image)
    embeddings_of: dict[int, list[dict[str, Any]]] = {}
    for emb in rows["embeddings"]:
        embeddings_of.setdefault(int(emb["image_id"]), []).append(emb)
    out = []
    for person in rows["persons"]:
        images: list[NewImage] = []
        embeddings: list[NewEmbedding] = []
        index_of: dict[int, int] = {}  # export image id -> index in images
        # photos first, then views: a view's photo is known when the view comes (after a merge a
        # view can belong to a photo stored after it)
        theirs = sorted(images_of.get(int(person["id"]), []), key=lambda i: (i["source"] != "original", int(i["id"])))
        for image in theirs:
            path = (src / str(image["path"])).resolve()
            if not path.is_relative_to(src.resolve()) or not path.is_file():
                raise InvalidInput(f"{src}: the image file {image['path']} is missing")
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != image["sha256"]:
                raise InvalidInput(f"{src}: {image['path']} does not match its SHA-256 (damaged export)")
            for emb in embeddings_of.pop(int(image["id"]), []):
                vector = np.asarray(emb["vector"], np.float32)
                if vector.shape != (int(emb["dim"]),) or not np.isfinite(vector).all():
                    raise InvalidInput(f"{src}: embedding {emb['id']} has a bad vector")
                bbox = (float(emb["bbox_x1"]), float(emb["bbox_y1"]), float(emb["bbox_x2"]), float(emb["bbox_y2"]))
                embeddings.append(
                    NewEmbedding(len(images), emb["source"], emb["model"], vector, float(emb["det_score"]), bbox)
                )
            images.append(
                NewImage(
                    data=data,
                    sha256=image["sha256"],
                    extension=Path(str(image["path"])).suffix,
                    mime=image["mime"],
                    width=int(image["width"]),
                    height=int(image["height"]),
                    source=image["source"],
                    display_name=image["display_name"],
                    generator=image["generator"],
                    made_from=index_of.get(int(image.get("source_image_id") or -1)),  # older exports: none
                )
            )
            index_of[int(image["id"])] = len(images) - 1
        out.append(Enrollment(name=normalise_name(str(person["name"])), images=images, embeddings=embeddings))
    if any(embeddings_of.values()):
        raise InvalidInput(f"{src}: embeddings refer to images the export does not have")
    return out


def _free_name(name: str, taken: set[str]) -> str:
    number = 2
    while f"{name} ({number})" in taken:
        number += 1
    return f"{name} ({number})"


@dataclass
class _Import:
    """An import under way: the gallery's names, and what happened to each person so far."""

    store: GalleryStore
    on_conflict: str
    check: ImportFaces | None
    force: bool
    existing: dict[str, int]  # name -> person id, this import's persons included
    skipped: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    conflicts: list[FaceConflict] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    persons: int = 0
    images: int = 0
    embeddings: int = 0

    def person(self, enrollment: Enrollment) -> None:
        """One person of the export, stored atomically, or left out (a name taken under ``skip``,
        a face the check refused)."""
        name = enrollment.name
        into = None
        if name in self.existing:
            if self.on_conflict == "skip":
                self.skipped.append(name)
                return
            if self.on_conflict == "merge":
                into = self.existing[name]
        if not self._face_check_passes(enrollment, into):
            return
        if into is not None:
            self.merged.append(name)
        elif name in self.existing:
            new = _free_name(name, set(self.existing))
            self.renamed[name] = new
            enrollment = Enrollment(new, enrollment.images, enrollment.embeddings)
        had = set() if into is None else {(i.sha256, i.source) for i in self.store.person_detail(into).images}
        person_id = self.store.add_person(enrollment, into=into, any_model=True)  # leaves out what they had
        self.existing[enrollment.name] = person_id
        self.persons += into is None
        added = [(image.sha256, image.source) not in had for image in enrollment.images]
        self.images += sum(added)
        self.embeddings += sum(added[e.image_index] for e in enrollment.embeddings)

    def _face_check_passes(self, enrollment: Enrollment, into: int | None) -> bool:
        """Whether the person goes in: no check, one that cannot be made (reported), none found,
        or one found and ``force`` (reported too)."""
        if self.check is None:
            return True
        if not self.check.can_check(enrollment):
            self.unchecked.append(enrollment.name)
        elif (found := self.check.conflict(enrollment, into)) is not None:
            self.conflicts.append(found)
            return self.force
        return True

    def report(self, seconds: float) -> TransferReport:
        return TransferReport(
            self.persons,
            self.images,
            self.embeddings,
            seconds,
            self.skipped,
            self.renamed,
            self.merged,
            "off" if self.check is None else self.check.describe(),
            self.conflicts,
            self.unchecked,
        )


def _add_missing_thresholds(store: GalleryStore, rows: list[dict[str, Any]]) -> None:
    """Thresholds the gallery lacks, from the export; the gallery's own ones win."""
    have = {(t.model, t.kind, t.rule, t.target) for t in store.thresholds()}
    for row in rows:
        threshold = StoredThreshold(**row)
        if (threshold.model, threshold.kind, threshold.rule, threshold.target) not in have:
            store.set_threshold(threshold)


def import_gallery(
    store: GalleryStore, src: Path, on_conflict: str = "skip", check: ImportFaces | None = None, force: bool = False
) -> TransferReport:
    """``check``: leave out a person whose face is already in the gallery under another name, and
    a merge whose face is identified as someone else (core/enroll/import_check.py); ``force``: import
    them anyway (still reported)."""
    if on_conflict not in CONFLICTS:
        raise InvalidInput(f"unknown conflict rule {on_conflict!r}; use one of {', '.join(CONFLICTS)}")
    started = time.perf_counter()
    src = Path(src)
    _, rows = _read(src)
    enrollments = _enrollments(src, rows)  # raises before anything is written
    existing = {p.name: p.id for p in store.list_persons()}
    if check is not None:
        check.begin()  # the gallery before this import: its own persons are not checked against each other
    done = _Import(store, on_conflict, check, force, existing)
    for enrollment in enrollments:
        done.person(enrollment)
    _add_missing_thresholds(store, rows["thresholds"])
    report = done.report(round(time.perf_counter() - started, 3))
    log.info(
        "imported %d persons (%d skipped, %d renamed, %d merged, %d refused by the face check%s) from %s",
        report.persons,
        len(report.skipped),
        len(report.renamed),
        len(report.merged),
        len(report.face_conflicts),
        ", imported anyway" if force else "",
        src,
    )
    return report

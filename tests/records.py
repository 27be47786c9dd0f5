"""Gallery records made by hand for the store's tests: images, whole enrollments (random unit vectors,
views made from the photo), another photo of a person, a gallery.db at an old schema version, and
what a store holds (every table's rows, the image bytes) on either backend."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from pathlib import Path

import numpy as np

from core.store.gallery import GalleryStore
from core.store.records import Enrollment, GenerationRunRecord, NewEmbedding, NewImage


def image(data: bytes, source: str = "original", ext: str = ".jpg") -> NewImage:
    return NewImage(
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        extension=ext,
        mime="image/jpeg",
        width=10,
        height=10,
        source=source,
        display_name=f"{source}{ext}",
    )


def enrollment(name: str, seed: int, n_views: int = 2, model: str = "m1") -> Enrollment:
    rng = np.random.default_rng(seed)
    images = [image(f"photo of {name}".encode())] + [
        dataclasses.replace(image(f"view {k} of {name}".encode(), f"augmented_v{k}", ".png"), made_from=0)
        for k in range(n_views)
    ]
    embeddings = []
    for index, img in enumerate(images):
        vector = rng.normal(size=8).astype(np.float32)
        embeddings.append(NewEmbedding(index, img.source, model, vector / np.linalg.norm(vector), 1.5, (1, 2, 3, 4)))
    run = GenerationRunRecord("classic", "cpu", "float32", n_views, n_views, 0.5, [{"view": "v0"}])
    return Enrollment(name=name, images=images, embeddings=embeddings, generation_runs=[run])


def gallery_at_schema(data_dir: Path, version: int) -> sqlite3.Connection:
    """A gallery.db as schema ``version`` left it (autocommit), for migration tests."""
    from core.store.schema import MIGRATIONS, _statements

    conn = sqlite3.connect(data_dir / "gallery.db", isolation_level=None)
    for step in range(version):
        for statement in _statements(MIGRATIONS[step]):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    return conn


def second_photo(name: str, seed: int, n_views: int = 1) -> Enrollment:
    """Another photo of ``name`` with its views: different bytes, the same display names."""
    first = enrollment(name, seed, n_views)
    images = [dataclasses.replace(img, data=b"second " + img.data) for img in first.images]
    images = [dataclasses.replace(img, sha256=image(img.data).sha256) for img in images]
    return dataclasses.replace(first, images=images)


def table_names(store: GalleryStore) -> list[str]:
    """Every table of the store's database (its own bookkeeping included)."""
    with store.reader() as conn:
        if store.db.kind == "sqlite":
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
        else:
            rows = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
            ).fetchall()
    return [str(r[0]) for r in rows]


def store_contents(store: GalleryStore) -> dict[str, object]:
    """Every row of every table, and every image file (SQLite), as comparable values: equal
    contents, nothing stored or changed in between (on either backend)."""
    contents: dict[str, object] = {}
    with store.reader() as conn:
        for table in table_names(store):
            rows = conn.execute(f"SELECT * FROM {table}").fetchall()
            contents[table] = sorted(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)) for r in rows)
    files = sorted(p for p in store.images_dir.rglob("*") if p.is_file()) if not store.blobs.in_database else []
    contents["files"] = {str(p.relative_to(store.data_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    return contents


def stored_image_bytes(store: GalleryStore) -> list[bytes]:
    """The bytes of every stored image (files under the data dir, or PostgreSQL's blob rows)."""
    if not store.blobs.in_database:
        return sorted(p.read_bytes() for p in store.images_dir.rglob("*") if p.is_file())
    with store.reader() as conn:
        return sorted(bytes(r[0]) for r in conn.execute("SELECT data FROM image_blobs").fetchall())


def every_stored_byte(store: GalleryStore) -> bytes:
    """What an attacker with the gallery's files could read: on SQLite every file of the data dir
    (the database, its WAL, the images); on PostgreSQL every value of every table (the image bytes
    are rows there), text UTF-8 encoded."""
    if not store.blobs.in_database:
        files = b"".join(p.read_bytes() for p in store.data_dir.rglob("*") if p.is_file())
        store.close()  # reading the database's files dropped this process's locks on them (sqlite_db.py)
        return files
    return every_table_value(store)


def every_table_value(store: GalleryStore) -> bytes:
    """Every value of every row of every table, as bytes (text UTF-8 encoded)."""
    values: list[bytes] = []
    with store.reader() as conn:
        for table in table_names(store):
            for row in conn.execute(f"SELECT * FROM {table}").fetchall():
                values += [bytes(v) if isinstance(v, (bytes, memoryview)) else str(v).encode() for v in row]
    return b"\x00".join(values)

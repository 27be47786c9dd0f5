"""Gallery records made by hand for the store's tests: images, whole enrollments (random unit vectors,
views made from the photo), another photo of a person, and a gallery.db at an old schema version."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from pathlib import Path

import numpy as np

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

"""Embeds every photo of a labelled folder, in parallel worker processes.

Each worker loads the models once and handles one contiguous chunk of the photos (no global
state in the workers). A photo in which no face is found, or that cannot be decoded, yields a
record with ``vector=None`` and the reason.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import InvalidImage
from core.images import decode_image
from core.models import load_face_models
from core.recognition import FaceEngine
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PhotoEmbedding:
    path: Path
    vector: np.ndarray | None  # the largest face's embedding
    num_faces: int
    error: str | None = None


@dataclass(frozen=True)
class EmbeddingTimings:
    seconds: float
    workers: int
    photos: int


def _embed_chunk(settings: Settings, paths: list[Path]) -> list[PhotoEmbedding]:
    engine = FaceEngine(load_face_models(settings))
    out = []
    for path in paths:
        try:
            image = decode_image(
                path.read_bytes(),
                max_bytes=settings.max_upload_bytes,
                max_pixels=settings.max_image_pixels,
            )
        except InvalidImage as exc:
            out.append(PhotoEmbedding(path, None, 0, f"{exc.code}: {exc.message}"))
            continue
        faces = engine.detect(image.rgb)
        if not faces:
            out.append(PhotoEmbedding(path, None, 0, "no face detected"))
            continue
        embedded = engine.embed_faces(image.rgb, faces[:1])[0]
        out.append(PhotoEmbedding(path, embedded.vector, len(faces)))
    return out


def embed_photos(
    settings: Settings, paths: list[Path], workers: int | None = None
) -> tuple[dict[Path, PhotoEmbedding], EmbeddingTimings]:
    started = time.perf_counter()
    workers = max(1, min(workers or (os.cpu_count() or 1), len(paths), 8))
    chunks = [paths[i::workers] for i in range(workers)]
    if workers == 1:
        results = [_embed_chunk(settings, paths)]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            results = list(pool.map(_embed_chunk, [settings] * workers, chunks))
    records = {r.path: r for chunk in results for r in chunk}
    timings = EmbeddingTimings(time.perf_counter() - started, workers, len(paths))
    log.info("embedded %d photos with %d worker(s) in %.1f s", len(paths), workers, timings.seconds)
    return records, timings

"""Embeds every photo of a labelled folder, in parallel worker processes.

Each worker loads the models once and handles one share of the photos (no global state in the
workers). A photo in which no face is found, or that cannot be decoded, yields a record with
``vector=None`` and the reason. Enrollment photos can also be augmented: each requested
generator makes its default views, which pass through the identity gate as in a real enrollment.
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

from core.augment.gate import gate_views
from core.augment.views import plan_views
from core.errors import InvalidImage
from core.images import decode_image
from core.models import load_face_models
from core.recognition import FaceEngine
from core.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ViewEmbedding:
    view: str
    accepted: bool
    reason: str
    similarity: float | None
    vector: np.ndarray | None


@dataclass(frozen=True, eq=False)
class PhotoEmbedding:
    path: Path
    vector: np.ndarray | None  # the largest face's embedding
    num_faces: int
    error: str | None = None
    views: dict[str, list[ViewEmbedding]] | None = None  # generator -> gated views


def _augmentors(settings: Settings, generators: tuple[str, ...], detector: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in generators:
        if name == "classic":
            from core.augment.classic import ClassicAugmentor

            out[name] = ClassicAugmentor()
        elif name == "sd":
            from core.augment.factory import load_augmentor

            out[name] = load_augmentor(settings, detector)  # settings.sd_model is set
        else:
            raise ValueError(f"unknown generator {name!r}")
    return out


@dataclass(frozen=True)
class EmbeddingTimings:
    seconds: float
    workers: int
    photos: int


def _embed_chunk(
    settings: Settings,
    paths: list[Path],
    augment: frozenset[Path] = frozenset(),
    generators: tuple[str, ...] = (),
    gate_threshold: float = 1.0,
) -> list[PhotoEmbedding]:
    engine = FaceEngine(load_face_models(settings))
    augmentors = _augmentors(settings, generators, engine.detector) if augment else {}
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
        views = None
        if path in augment:
            views = {}
            for name, augmentor in augmentors.items():
                requests = plan_views(None, len(augmentor.default_views), 0, augmentor.supported_views, augmentor.default_views)
                result = augmentor.generate(image.rgb, faces[0], requests)
                views[name] = [
                    ViewEmbedding(
                        d.view.request.name,
                        d.accepted,
                        d.reason,
                        d.similarity,
                        None if d.embedded is None else d.embedded.vector,
                    )
                    for d in gate_views(engine, embedded.vector, result.views, gate_threshold)
                ]
        out.append(PhotoEmbedding(path, embedded.vector, len(faces), views=views))
    return out


def embed_photos(
    settings: Settings,
    paths: list[Path],
    workers: int | None = None,
    augment: frozenset[Path] = frozenset(),
    generators: tuple[str, ...] = (),
    gate_threshold: float = 1.0,
) -> tuple[dict[Path, PhotoEmbedding], EmbeddingTimings]:
    started = time.perf_counter()
    workers = max(1, min(workers or (os.cpu_count() or 1), len(paths), 8))
    chunks = [paths[i::workers] for i in range(workers)]
    extra = (augment, generators, gate_threshold)
    if workers == 1:
        results = [_embed_chunk(settings, paths, *extra)]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_embed_chunk, settings, chunk, *extra) for chunk in chunks]
            results = [f.result() for f in futures]
    records = {r.path: r for chunk in results for r in chunk}
    timings = EmbeddingTimings(time.perf_counter() - started, workers, len(paths))
    log.info("embedded %d photos with %d worker(s) in %.1f s", len(paths), workers, timings.seconds)
    return records, timings

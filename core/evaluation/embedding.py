"""Embeds every photo of a labelled folder, in parallel worker processes.

Each worker loads the models once and handles one share of the photos (no global state in the
workers). A photo in which no face is found, or that cannot be decoded, yields a record with
``vector=None`` and the reason. Enrollment photos can also be augmented: each requested
generator makes its default views, which pass through the identity gate as in a real enrollment.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import pickle
import queue
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.augment.base import Augmentor
from core.augment.gate import gate_views
from core.augment.viewmaker import generate_from_photo
from core.augment.views import plan_views
from core.errors import InvalidImage, NoFaceFound
from core.faces.pipeline import FacePipeline
from core.progress import Progress
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


class _Tick:
    """``put(1)`` advances the progress bar (the in-process stand-in for a Manager queue)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def put(self, n: int) -> None:
        self.progress.update(n)


def _augmentors(settings: Settings, generators: tuple[str, ...]) -> dict[str, Augmentor]:
    out: dict[str, Augmentor] = {}
    for name in generators:
        if name == "classic":
            from core.augment.classic import ClassicAugmentor

            out[name] = ClassicAugmentor()
        elif name == "sd":
            from core.augment.factory import load_augmentor

            out[name] = load_augmentor(settings)  # settings.sd_model is set
        else:
            raise ValueError(f"unknown generator {name!r}")
    return out


class EmbeddingCache:
    """Embeddings on disk, one file per photo, keyed by everything that decides them: the
    photo's bytes, the models, the generators and the gate. A second eval of the same folder
    with the same settings embeds nothing."""

    VERSION = 6  # bump when the embedding or view code changes what a key would hold

    def __init__(self, folder: Path, settings: Settings, generators: tuple[str, ...], gate_threshold: float) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        model = (
            settings.detector,
            settings.embedder,
            settings.insightface_pack,
            settings.dlib_upsample_below,
            settings.det_size,
            settings.min_face_px,
        )
        self._salt = repr(
            (self.VERSION, model, generators, round(gate_threshold, 6), settings.sd_model, settings.sd_steps)
        )

    def _file(self, path: Path, augmented: bool) -> Path:
        digest = hashlib.sha256(path.read_bytes() + f"{self._salt}|{augmented}".encode()).hexdigest()
        return self.folder / f"{digest}.pkl"

    def get(self, path: Path, augmented: bool) -> PhotoEmbedding | None:
        file = self._file(path, augmented)
        if not file.exists():
            return None
        with file.open("rb") as handle:
            record: PhotoEmbedding = pickle.load(handle)  # our own cache files
        return replace(record, path=path)

    def put(self, record: PhotoEmbedding, augmented: bool) -> None:
        file = self._file(record.path, augmented)
        tmp = file.with_suffix(".tmp")
        with tmp.open("wb") as handle:
            pickle.dump(record, handle)
        tmp.replace(file)


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
    done: Any = None,
) -> list[PhotoEmbedding]:
    """Embed ``paths`` (the largest face of each) in this process; ``done.put(1)`` per photo."""
    pipeline = FacePipeline(settings, workers=1)
    augmentors = _augmentors(settings, generators) if augment else {}
    out = []
    for path in paths:
        out.append(_embed_one(settings, pipeline, augmentors, path, path in augment, gate_threshold))
        if done is not None:
            done.put(1)
    return out


def _embed_one(
    settings: Settings,
    pipeline: FacePipeline,
    augmentors: dict[str, Augmentor],
    path: Path,
    augment: bool,
    gate_threshold: float,
) -> PhotoEmbedding:
    data = path.read_bytes()
    try:
        analyzed = pipeline.analyze(data, "largest")
    except NoFaceFound:
        return PhotoEmbedding(path, None, 0, "no face detected")
    except InvalidImage as exc:
        return PhotoEmbedding(path, None, 0, f"{exc.code}: {exc.message}")
    original = analyzed.faces[0]
    views = None
    if augment:
        views = {}
        for name, augmentor in augmentors.items():
            every = list(augmentor.supported_views or augmentor.default_views)  # all views: the view-set study
            requests = plan_views(every, None, 0, augmentor.supported_views, augmentor.default_views)
            generation = generate_from_photo(augmentor, settings, data, original.face, requests)
            views[name] = [
                ViewEmbedding(
                    d.request.name,
                    d.accepted,
                    d.reason,
                    d.similarity,
                    None if d.embedded is None else d.embedded.vector,
                )
                for d in gate_views(pipeline, generation, original.vector, gate_threshold).decisions
            ]
    return PhotoEmbedding(path, original.vector, analyzed.num_faces, views=views)


def embed_photos(
    settings: Settings,
    paths: list[Path],
    workers: int | None = None,
    augment: frozenset[Path] = frozenset(),
    generators: tuple[str, ...] = (),
    gate_threshold: float = 1.0,
    cache: EmbeddingCache | None = None,
) -> tuple[dict[Path, PhotoEmbedding], EmbeddingTimings]:
    started = time.perf_counter()
    found: dict[Path, PhotoEmbedding] = {}
    if cache is not None:
        for path in paths:
            hit = cache.get(path, path in augment)
            if hit is not None:
                found[path] = hit
        if found:
            log.info("embedding cache %s: %d of %d photos already embedded", cache.folder, len(found), len(paths))
        paths = [p for p in paths if p not in found]
    if not paths:
        return found, EmbeddingTimings(time.perf_counter() - started, 0, 0)
    workers = max(1, min(workers or (os.cpu_count() or 1), len(paths), 8))
    chunks = [paths[i::workers] for i in range(workers)]
    extra = (augment, generators, gate_threshold)
    what = "embedding photos" + (f" (+{'/'.join(generators)} views of {len(augment)})" if augment else "")
    with Progress(len(paths), what) as progress:
        if workers == 1:
            done = _Tick(progress)
            results = [_embed_chunk(settings, paths, *extra, done)]
        else:
            context = multiprocessing.get_context("spawn")
            with context.Manager() as manager, ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                ticks = manager.Queue()
                futures = [pool.submit(_embed_chunk, settings, chunk, *extra, ticks) for chunk in chunks]
                remaining = len(paths)
                while remaining:
                    try:
                        ticks.get(timeout=1.0)
                    except queue.Empty:
                        if all(f.done() for f in futures):
                            break
                        continue
                    remaining -= 1
                    progress.update()
                results = [f.result() for f in futures]
    records = {r.path: r for chunk in results for r in chunk}
    if cache is not None:
        for record in records.values():
            cache.put(record, record.path in augment)
    records.update(found)
    timings = EmbeddingTimings(time.perf_counter() - started, workers, len(paths))
    log.info("embedded %d photos with %d worker(s) in %.1f s", len(paths), workers, timings.seconds)
    return records, timings

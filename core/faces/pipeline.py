"""A whole photo in, its faces and embeddings out: decode -> detect -> align -> embed.

``FacePipeline`` is what the Embedder deployment and the CLI run. One call handles a whole
photo (or a batch of photos, or all the views of an enrollment), in two stages over the model
pool (core/faces/workers.py):

1. per image, in parallel: decode, detect, select the face, align;
2. the network passes of every crop, split evenly between the workers (a dlib face's two passes,
   face and mirror, run on two cores at once), then summed and normalised.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from core.errors import ManyAnglesError
from core.faces.decode import ImageInfo, decode_image
from core.faces.embedders.base import pool_tta
from core.faces.embedders.shipped import UNCALIBRATED, Shipped
from core.faces.recognition import EmbeddedFace, FaceEngine, FacePolicy, select_face, subject_faces
from core.faces.types import Face
from core.faces.workers import ModelPool, Task
from core.settings import Settings

if TYPE_CHECKING:
    from core.store.search_reads import ReadsAhead

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What callers need to know about the models, without the models."""

    name: str  # the embedding function's name: vectors of different names never meet
    dim: int
    provider: str
    detector: str
    tta: int
    shipped: Shipped = UNCALIBRATED  # thresholds, offsets, rule and views it ships with
    workers: int = 1
    source: str = ""  # where the embedder's weights come from
    licence: str = ""  # and on what terms
    detector_source: str = ""
    detector_licence: str = ""


@dataclass(frozen=True, eq=False)
class AnalyzedPhoto:
    image: ImageInfo
    faces: list[EmbeddedFace]  # the face the policy selected, or every face; largest first
    num_faces: int  # faces detected
    model: ModelInfo  # the model that made the vectors
    timings: dict[str, float] = field(default_factory=dict)  # decode_s, detect_s, embed_s


class FaceAnalyzer(Protocol):
    """Decode -> detect -> align -> embed, one call per photo (``FacePipeline`` or remote)."""

    @property
    def info(self) -> ModelInfo: ...

    def analyze(self, photo: bytes, policy: FacePolicy | None = None) -> AnalyzedPhoto: ...

    def submit(
        self, photo: bytes, policy: FacePolicy | None = None, ahead: ReadsAhead | None = None
    ) -> Callable[[], AnalyzedPhoto]:
        """``analyze``, started: calling the result waits for it (and raises its errors). In
        process the analysis runs then; over Serve the Embedder starts on it now, and the caller
        may read the store meanwhile. ``ahead``: the request's reads of the store
        (core/store/search_reads.py), where an analyzer that follows the active-model pointer
        takes it from (None: it reads the pointer itself)."""
        ...

    def analyze_many(self, items: list[tuple[bytes, FacePolicy | None]]) -> list[AnalyzedPhoto | ManyAnglesError]: ...


def default_workers(settings: Settings, in_service: bool) -> int:
    """``embed_workers`` 0 (auto): one process per core (at most 4) for dlib in the service,
    one copy otherwise (ONNX Runtime already uses every core; a CLI call does not pay for
    starting processes)."""
    if settings.embed_workers:
        return settings.embed_workers
    if in_service and settings.embedder == "dlib" and settings.detector == "dlib":
        return max(1, min(os.cpu_count() or 1, 4))
    return 1


# --- tasks run by the model copies (module level: they travel to worker processes by name) ----
def _model_info(engine: FaceEngine) -> ModelInfo:
    e, d = engine.embedder, engine.detector
    return ModelInfo(
        e.name,
        e.dim,
        e.provider,
        d.name,
        e.tta,
        e.shipped,
        source=e.source,
        licence=e.licence,
        detector_source=d.source,
        detector_licence=d.licence,
    )


def _find_faces(
    engine: FaceEngine, limits: tuple[int, int], photo: bytes, policy: FacePolicy | None
) -> tuple[ImageInfo, list[Face], int, list[np.ndarray], dict[str, float]]:
    started = time.perf_counter()
    image = decode_image(photo, max_bytes=limits[0], max_pixels=limits[1])
    decoded = time.perf_counter()
    faces = engine.detect(image.rgb)
    chosen = faces if policy is None else [select_face(faces, policy)]
    crops = [engine.embedder.align(image.rgb, face) for face in chosen]
    timings = {"decode_s": decoded - started, "detect_s": time.perf_counter() - decoded}
    return image.info, chosen, len(faces), crops, timings


def _view_faces(engine: FaceEngine, rgb: np.ndarray) -> tuple[list[Face], np.ndarray | None]:
    faces = subject_faces(engine.detect(rgb, small_faces=False))
    crop = engine.embedder.align(rgb, faces[0]) if len(faces) == 1 else None
    return faces, crop


def _forward(engine: FaceEngine, crops: list[np.ndarray], start: int, stop: int) -> np.ndarray:
    """Raw network outputs of chips ``start:stop`` of these crops."""
    return engine.embedder.forward(engine.embedder.chips(crops)[start:stop])


class FacePipeline:
    def __init__(self, settings: Settings, workers: int = 1, engine: FaceEngine | None = None) -> None:
        """``workers`` model copies (processes when more than one), or ``engine`` in-process."""
        self.settings = settings
        self.pool = ModelPool(settings, workers, engine)
        info = self.pool.values([(_model_info, ())])[0]
        self.info: ModelInfo = replace(info, workers=self.pool.size)
        self._limits = (settings.max_upload_bytes, settings.max_image_pixels)

    def close(self) -> None:
        self.pool.close()

    # --- photos ----------------------------------------------------------------------------
    def analyze(self, photo: bytes, policy: FacePolicy | None = None) -> AnalyzedPhoto:
        """The photo's faces (``policy`` None: all; else the one it selects) with embeddings."""
        result = self.analyze_many([(photo, policy)])[0]
        if isinstance(result, ManyAnglesError):
            raise result
        return result

    def submit(
        self, photo: bytes, policy: FacePolicy | None = None, ahead: ReadsAhead | None = None
    ) -> Callable[[], AnalyzedPhoto]:
        """(``ahead`` is not used: this pipeline's model is fixed.)"""
        return functools.partial(self.analyze, photo, policy)

    def analyze_many(self, items: list[tuple[bytes, FacePolicy | None]]) -> list[AnalyzedPhoto | ManyAnglesError]:
        """A batch of photos; a bad photo fails alone (its entry is the error)."""
        found = self.pool.run([(_find_faces, (self._limits, photo, policy)) for photo, policy in items])
        crops = [crop for ok, value in found if ok for crop in value[3]]
        started = time.perf_counter()
        vectors = iter(self.embed_crops(crops))
        embed_s = time.perf_counter() - started
        out: list[AnalyzedPhoto | ManyAnglesError] = []
        for ok, value in found:
            if not ok:
                out.append(value if isinstance(value, ManyAnglesError) else _internal(value))
                continue
            info, faces, count, _, timings = value
            embedded = [EmbeddedFace(face, next(vectors)) for face in faces]
            out.append(AnalyzedPhoto(info, embedded, count, self.info, {**timings, "embed_s": embed_s}))
        return out

    def current(self) -> FacePipeline:
        """Itself: one model (``ActiveModelFaces.current`` is the pipeline of the active one)."""
        return self

    # --- generated views -------------------------------------------------------------------
    def view_faces(self, images: list[np.ndarray]) -> list[tuple[list[Face], np.ndarray | None]]:
        """Each generated view's subject faces, and its aligned crop when it holds exactly one
        (the identity gate, core/augment/gate.py, embeds those and decides)."""
        return self.pool.values([(_view_faces, (rgb,)) for rgb in images])

    # --- embedding -------------------------------------------------------------------------
    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, dim) unit vectors; the network passes are split evenly among the workers."""
        tta = self.info.tta
        if not crops:
            return np.zeros((0, self.info.dim), dtype=np.float32)
        total = tta * len(crops)
        parts = min(self.pool.size, total)
        bounds = [round(total * k / parts) for k in range(parts + 1)]
        tasks: list[Task] = []
        for start, stop in zip(bounds, bounds[1:]):
            first, last = start // tta, -(-stop // tta)  # the crops these chips come from
            tasks.append((_forward, (crops[first:last], start - first * tta, stop - first * tta)))
        raw = np.concatenate(self.pool.values(tasks))
        return pool_tta(raw, tta)


def _internal(error: BaseException) -> ManyAnglesError:
    log.error("photo analysis failed: %s", error)
    return ManyAnglesError(f"internal error while analysing the photo ({type(error).__name__})")

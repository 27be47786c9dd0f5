"""The ManyAngles core service: enrollment, identification and verification over one store.

The CLI, the Ray Serve deployments and the batch jobs all go through this class.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.errors import NotCalibrated
from core.images import DecodedImage, decode_image
from core.matching import MatchResult, Matcher
from core.recognition import EmbeddedFace, FaceEngine, FacePolicy
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.records import Enrollment, NewEmbedding, NewImage, Person

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """One step of an enrollment, for streaming to clients."""

    stage: str  # decoded, detected, generated, accepted, rejected, embedded, stored
    message: str
    data: dict[str, object] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class EnrollResult:
    person_id: int
    name: str
    model: str
    num_images: int
    num_embeddings: int
    sources: list[str]
    elapsed_s: float


@dataclass(frozen=True, eq=False)
class FaceIdentification:
    face: EmbeddedFace
    match: MatchResult


@dataclass(frozen=True)
class VerifyResult:
    same_person: bool
    score: float
    threshold: float
    model: str


class ManyAnglesService:
    def __init__(self, settings: Settings, engine: FaceEngine, store: GalleryStore) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self._matcher: Matcher | None = None
        self._matcher_key: tuple[object, ...] | None = None

    # --- inputs ------------------------------------------------------------------------------
    def decode(self, data: bytes) -> DecodedImage:
        return decode_image(
            data,
            max_bytes=self.settings.max_upload_bytes,
            max_pixels=self.settings.max_image_pixels,
        )

    # --- thresholds --------------------------------------------------------------------------
    def threshold(self) -> float:
        """The active model's threshold at the configured FPIR: stored calibration first."""
        model = self.engine.model_name
        target = self.settings.target_fpir
        stored = self.store.get_threshold(model, target)
        if stored is not None:
            return stored.threshold
        default = self.engine.embedder.default_threshold
        if default is not None and abs(target - 0.01) < 1e-12:
            return default
        raise NotCalibrated(
            f"model {model} has no threshold for FPIR {target:g}; run "
            "`python -m core calibrate DIR` on a labelled folder of faces"
        )

    # --- enrollment --------------------------------------------------------------------------
    def enroll(
        self,
        name: str,
        photo: bytes,
        *,
        face: FacePolicy = "single",
        progress: ProgressCallback | None = None,
    ) -> EnrollResult:
        started = time.perf_counter()
        emit = progress or (lambda event: None)
        image = self.decode(photo)
        emit(ProgressEvent("decoded", f"{image.format} {image.width}x{image.height}"))
        embedded = self.engine.embed_one(image.rgb, face)
        emit(
            ProgressEvent(
                "detected",
                "face detected",
                {"bbox": embedded.face.as_dict()["bbox"], "score": embedded.face.score},
            )
        )
        model = self.engine.model_name
        images = [
            NewImage(
                data=photo,
                sha256=image.sha256,
                extension=image.extension,
                mime=image.mime,
                width=image.width,
                height=image.height,
                source="original",
                display_name=f"original{image.extension}",
            )
        ]
        embeddings = [
            NewEmbedding(
                image_index=0,
                source="original",
                model=model,
                vector=embedded.vector,
                det_score=embedded.face.score,
                bbox=embedded.face.bbox,
            )
        ]
        emit(ProgressEvent("embedded", f"{len(embeddings)} embedding(s) with {model}"))
        person_id = self.store.add_person(Enrollment(name=name, images=images, embeddings=embeddings))
        result = EnrollResult(
            person_id=person_id,
            name=self.store.find_person(person_id).name,
            model=model,
            num_images=len(images),
            num_embeddings=len(embeddings),
            sources=[e.source for e in embeddings],
            elapsed_s=time.perf_counter() - started,
        )
        emit(ProgressEvent("stored", f"person {person_id} stored", {"person_id": person_id}))
        return result

    # --- identification ----------------------------------------------------------------------
    def matcher(self) -> Matcher:
        key = (self.store.gallery_version(self.engine.model_name), self.settings.match_mode)
        if self._matcher is None or key != self._matcher_key:
            gallery = self.store.load_gallery(self.engine.model_name)
            self._matcher = Matcher(gallery, mode=self.settings.match_mode)
            self._matcher_key = key
        return self._matcher

    def identify(self, photo: bytes, top_k: int | None = None) -> list[FaceIdentification]:
        """Every face in the photo with its top-k candidates (largest face first)."""
        image = self.decode(photo)
        faces = self.engine.embed_all(image.rgb)
        if not faces:
            return []
        threshold = self.threshold()
        probes = np.stack([f.vector for f in faces])
        matches = self.matcher().match(probes, top_k or self.settings.top_k, threshold)
        return [FaceIdentification(face=f, match=m) for f, m in zip(faces, matches)]

    def verify(self, photo_a: bytes, photo_b: bytes, face: FacePolicy = "largest") -> VerifyResult:
        a = self.engine.embed_one(self.decode(photo_a).rgb, face)
        b = self.engine.embed_one(self.decode(photo_b).rgb, face)
        score = float(np.dot(a.vector, b.vector))
        threshold = self.threshold()
        return VerifyResult(score >= threshold, score, threshold, self.engine.model_name)

    # --- gallery -----------------------------------------------------------------------------
    def persons(self) -> list[Person]:
        return self.store.list_persons()

    def delete(self, key: int | str) -> dict[str, int]:
        person = self.store.find_person(key)
        return self.store.delete_person(person.id)

"""The ManyAngles core service: enrollment, identification and verification over one store.

The CLI, the Ray Serve deployments and the batch jobs all go through this class.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from core.augment.base import Augmentor
from core.augment.views import plan_views
from core.enrollment import ProgressCallback, ProgressEvent, ViewsOutcome, build_enrollment, generate_and_gate
from core.errors import NotCalibrated
from core.images import DecodedImage, decode_image
from core.matching import MatchResult, Matcher
from core.recognition import EmbeddedFace, FaceEngineBase, FacePolicy
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.records import Person

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnrollResult:
    person_id: int
    name: str
    model: str
    num_images: int
    num_embeddings: int
    sources: list[str]
    elapsed_s: float
    views: list[dict[str, object]]  # every generated view with its gate decision


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
    def __init__(
        self,
        settings: Settings,
        engine: FaceEngineBase,
        store: GalleryStore,
        augmentor: Augmentor | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self._augmentor = augmentor
        self._matcher: tuple[tuple[object, ...], Matcher] | None = None  # (gallery version, matcher)
        self._matcher_lock = threading.Lock()  # the HTTP API calls in from many threads

    @classmethod
    def from_settings(cls, settings: Settings) -> ManyAnglesService:
        """The in-process service: models loaded here, store under settings.data_dir."""
        from core.models import load_face_models
        from core.recognition import FaceEngine

        return cls(settings, FaceEngine(load_face_models(settings)), GalleryStore(settings.data_dir))

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
        stored = self.store.get_threshold(model, "fpir", target)
        if stored is not None:
            return stored.threshold
        default = self.engine.embedder.default_threshold
        if default is not None and abs(target - 0.01) < 1e-12:
            return default
        raise NotCalibrated(
            f"model {model} has no threshold for FPIR {target:g}; run "
            "`python -m core calibrate DIR` on a labelled folder of faces"
        )

    def gate_threshold(self) -> float:
        if self.settings.gate_threshold is not None:
            return self.settings.gate_threshold
        model = self.engine.model_name
        stored = self.store.get_threshold(model, "gate_fmr", self.settings.gate_fmr)
        if stored is not None:
            return stored.threshold
        default = self.engine.embedder.default_gate_threshold
        if default is not None and abs(self.settings.gate_fmr - 0.001) < 1e-12:
            return default
        raise NotCalibrated(
            f"model {model} has no identity-gate threshold for FMR {self.settings.gate_fmr:g}; run "
            "`python -m core calibrate DIR` or set MANYANGLES_GATE_THRESHOLD"
        )

    @property
    def augmentor(self) -> Augmentor:
        if self._augmentor is None:
            from core.augment.factory import load_augmentor

            self._augmentor = load_augmentor(self.settings, self.engine.detector)
        return self._augmentor

    # --- enrollment --------------------------------------------------------------------------
    def enroll(
        self,
        name: str,
        photo: bytes,
        *,
        face: FacePolicy = "single",
        augment: bool = False,
        views: list[str] | None = None,
        num_variations: int | None = None,
        seed: int = 0,
        progress: ProgressCallback | None = None,
    ) -> EnrollResult:
        """Enroll from one photo, with generated views when ``augment``; all or nothing."""
        started = time.perf_counter()
        emit = progress or (lambda event: None)
        from core.store.gallery import normalise_name

        name = normalise_name(name)
        requests = None
        if augment:  # validate the request before any work
            requests = plan_views(
                views, num_variations, seed, self.augmentor.supported_views, self.augmentor.default_views
            )
            gate = self.gate_threshold()
        image = self.decode(photo)
        emit(ProgressEvent("decoded", f"{image.format} {image.width}x{image.height}"))
        original = self.engine.embed_one(image.rgb, face)
        emit(ProgressEvent("detected", "face detected", {"bbox": original.face.as_dict()["bbox"], "score": original.face.score}))
        outcome: ViewsOutcome | None = None
        if requests is not None:
            outcome = generate_and_gate(self.engine, self.augmentor, image.rgb, original, requests, gate, emit)
        model = self.engine.model_name
        enrollment = build_enrollment(name, photo, image, original, model, outcome)
        emit(ProgressEvent("embedded", f"{len(enrollment.embeddings)} embedding(s) with {model}"))
        person_id = self.store.add_person(enrollment)
        result = EnrollResult(
            person_id=person_id,
            name=name,
            model=model,
            num_images=len(enrollment.images),
            num_embeddings=len(enrollment.embeddings),
            sources=[e.source for e in enrollment.embeddings],
            elapsed_s=time.perf_counter() - started,
            views=[d.as_record() for d in outcome.decisions] if outcome else [],
        )
        emit(ProgressEvent("stored", f"person {person_id} stored", {"person_id": person_id}))
        return result

    def generate_views(
        self,
        photo: bytes,
        *,
        views: list[str] | None = None,
        num_variations: int | None = None,
        seed: int = 0,
        face: FacePolicy = "largest",
        progress: ProgressCallback | None = None,
    ) -> ViewsOutcome:
        """Generated views of a photo with their gate decisions; only the timing is stored."""
        emit = progress or (lambda event: None)
        requests = plan_views(views, num_variations, seed, self.augmentor.supported_views, self.augmentor.default_views)
        gate = self.gate_threshold()
        image = self.decode(photo)
        original = self.engine.embed_one(image.rgb, face)
        outcome = generate_and_gate(self.engine, self.augmentor, image.rgb, original, requests, gate, emit)
        self.store.add_generation_run(outcome.run_record())
        return outcome

    # --- identification ----------------------------------------------------------------------
    def matcher(self) -> Matcher:
        """The gallery matrix, reloaded only when the model's embeddings changed."""
        with self._matcher_lock:
            key = self.store.gallery_version(self.engine.model_name)
            if self._matcher is None or self._matcher[0] != key:
                gallery = self.store.load_gallery(self.engine.model_name)
                self._matcher = (key, Matcher(gallery, mode=self.settings.match_mode))
            return self._matcher[1]

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

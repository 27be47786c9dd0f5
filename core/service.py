"""The ManyAngles core service: enrollment, identification and verification over one store.

The CLI (models in this process) and the HTTP API (models in Ray Serve deployments) both go
through this class; they differ only in the ``FaceAnalyzer`` and ``ViewMaker`` they give it.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from core.augment.gate import ViewsOutcome
from core.augment.views import plan_views
from core.enrollment import ProgressCallback, ProgressEvent, build_enrollment, views_events
from core.errors import ManyAnglesError
from core.matching import Matcher, MatchResult
from core.pipeline import AnalyzedPhoto, ModelInfo
from core.recognition import EmbeddedFace, FacePolicy
from core.settings import Settings
from core.store.gallery import GalleryStore, normalise_name
from core.store.records import EnrollmentRunRecord, Person
from core.thresholds import resolve_threshold
from core.viewmaker import ViewMaker

log = logging.getLogger(__name__)


class FaceAnalyzer(Protocol):
    """Decode -> detect -> align -> embed, one call per photo (core/pipeline.py or remote)."""

    @property
    def info(self) -> ModelInfo: ...

    def analyze(self, photo: bytes, policy: FacePolicy | None = None) -> AnalyzedPhoto: ...

    def analyze_many(self, items: list[tuple[bytes, FacePolicy | None]]) -> list[AnalyzedPhoto | ManyAnglesError]: ...


@dataclass(frozen=True)
class EnrollResult:
    person_id: int
    name: str
    model: str
    num_images: int
    num_embeddings: int
    sources: list[str]
    elapsed_s: float
    views: list[dict[str, object]]  # every generated view with its gate decision and a small preview
    timings_s: dict[str, float] = field(default_factory=dict)  # per stage


@dataclass(frozen=True, eq=False)
class FaceIdentification:
    face: EmbeddedFace
    match: MatchResult


@dataclass(frozen=True, eq=False)
class IdentifyResult:
    model: str
    threshold: float | None
    match_mode: str
    faces: list[FaceIdentification]  # largest face first


@dataclass(frozen=True)
class VerifyResult:
    same_person: bool
    score: float
    threshold: float
    model: str


class ManyAnglesService:
    def __init__(
        self, settings: Settings, faces: FaceAnalyzer, store: GalleryStore, views: ViewMaker | None = None
    ) -> None:
        self.settings = settings
        self.faces = faces
        self.store = store
        self._views = views
        self._matcher: tuple[tuple[object, ...], Matcher] | None = None  # (gallery version, matcher)
        self._matcher_lock = threading.Lock()  # the HTTP API calls in from many threads

    @classmethod
    def from_settings(cls, settings: Settings) -> ManyAnglesService:
        """The in-process service (CLI): models loaded here, store under settings.data_dir."""
        from core.pipeline import FacePipeline, default_workers
        from core.viewmaker import LocalViews

        pipeline = FacePipeline(settings, default_workers(settings, in_service=False))
        return cls(settings, pipeline, GalleryStore(settings.data_dir), LocalViews(settings, pipeline))

    @property
    def model(self) -> ModelInfo:
        return self.faces.info

    @property
    def views(self) -> ViewMaker:
        if self._views is None:
            raise ManyAnglesError("this service was built without a view generator")
        return self._views

    # --- thresholds --------------------------------------------------------------------------
    def threshold(self) -> float:
        """The active model's identification threshold at the configured FPIR."""
        return resolve_threshold(self.store, self.model, "fpir", self.settings.target_fpir, self.settings.match_mode)

    def gate_threshold(self) -> float:
        return resolve_threshold(
            self.store, self.model, "gate_fmr", self.settings.gate_fmr, explicit=self.settings.gate_threshold
        )

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
        name = normalise_name(name)
        requests, gate = None, 1.0
        if augment:  # validate the request before any work
            info = self.views.generator_info()
            requests = plan_views(views, num_variations, seed, info.supported_views, info.default_views)
            gate = self.gate_threshold()
        analyzed = self.faces.analyze(photo, face)
        timings = {k.removesuffix("_s"): v for k, v in analyzed.timings.items()}
        original = analyzed.faces[0]
        image = analyzed.image
        emit(ProgressEvent("decoded", f"{image.format} {image.width}x{image.height}"))
        emit(
            ProgressEvent(
                "detected", "face detected", {"bbox": original.face.as_dict()["bbox"], "score": original.face.score}
            )
        )
        outcome: ViewsOutcome | None = None
        if requests is not None:
            emit(
                ProgressEvent(
                    "generating", f"generating {len(requests)} view(s)", {"views": [r.name for r in requests]}
                )
            )
            outcome = self.views.make_views(photo, original.face, original.vector, requests, gate)
            for event in views_events(outcome):
                emit(event)
            timings["generate"] = outcome.stats.total_s
            timings["gate"] = outcome.gate_s
        enrollment = build_enrollment(name, photo, image, original, self.model.name, outcome)
        emit(ProgressEvent("embedded", f"{len(enrollment.embeddings)} embedding(s) with {self.model.name}"))
        store_started = time.perf_counter()
        person_id = self.store.add_person(enrollment)
        timings["store"] = time.perf_counter() - store_started
        elapsed = time.perf_counter() - started
        timings["total"] = elapsed
        self._record_run(person_id, len(requests or []), len(outcome.accepted) if outcome else 0, timings)
        emit(ProgressEvent("stored", f"person {person_id} stored", {"person_id": person_id}))
        return EnrollResult(
            person_id=person_id,
            name=name,
            model=self.model.name,
            num_images=len(enrollment.images),
            num_embeddings=len(enrollment.embeddings),
            sources=[e.source for e in enrollment.embeddings],
            elapsed_s=elapsed,
            views=[
                {**d.as_record(), "preview_jpeg_base64": base64.b64encode(d.preview_jpeg()).decode()}
                for d in (outcome.decisions if outcome else [])
            ],
            timings_s={k: round(v, 4) for k, v in timings.items()},
        )

    def _record_run(self, person_id: int, num_views: int, num_accepted: int, timings: dict[str, float]) -> None:
        """The enrollment's end-to-end time for the latency charts; never fails the enrollment."""
        run = EnrollmentRunRecord(
            person_id,
            self.model.name,
            num_views,
            num_accepted,
            timings["total"],
            {k: round(v, 4) for k, v in timings.items()},
        )
        try:
            self.store.add_enrollment_run(run)
        except Exception:  # the person is stored; a lost timing row is only logged
            log.exception("could not record the enrollment's timings")

    def generate_views(
        self,
        photo: bytes,
        *,
        views: list[str] | None = None,
        num_variations: int | None = None,
        seed: int = 0,
        face: FacePolicy = "largest",
    ) -> ViewsOutcome:
        """Generated views of a photo with their gate decisions; only the timing is stored."""
        info = self.views.generator_info()
        requests = plan_views(views, num_variations, seed, info.supported_views, info.default_views)
        gate = self.gate_threshold()
        original = self.faces.analyze(photo, face).faces[0]
        outcome = self.views.make_views(photo, original.face, original.vector, requests, gate)
        self.store.add_generation_run(outcome.run_record())
        return outcome

    # --- identification ----------------------------------------------------------------------
    def matcher(self) -> Matcher:
        """The gallery matrix, reloaded only when the model's embeddings changed."""
        with self._matcher_lock:
            key = self.store.gallery_version(self.model.name)
            if self._matcher is None or self._matcher[0] != key:
                gallery = self.store.load_gallery(self.model.name)
                self._matcher = (key, Matcher(gallery, mode=self.settings.match_mode))
            return self._matcher[1]

    def identify(self, photo: bytes, top_k: int | None = None) -> IdentifyResult:
        """Every face in the photo with its top-k candidates (largest face first)."""
        faces = self.faces.analyze(photo, None).faces
        threshold = self.threshold() if faces else None
        found: list[FaceIdentification] = []
        if faces and threshold is not None:
            probes = np.stack([f.vector for f in faces])
            matches = self.matcher().match(probes, top_k or self.settings.top_k, threshold)
            found = [FaceIdentification(face=f, match=m) for f, m in zip(faces, matches)]
        return IdentifyResult(self.model.name, threshold, self.settings.match_mode, found)

    def verify(self, photo_a: bytes, photo_b: bytes, face: FacePolicy = "largest") -> VerifyResult:
        results = self.faces.analyze_many([(photo_a, face), (photo_b, face)])
        for label, result in zip(("photo_a", "photo_b"), results):
            if isinstance(result, ManyAnglesError):
                result.message = f"{label}: {result.message}"
                raise result
        a, b = (r.faces[0] for r in results)  # type: ignore[union-attr]
        score = float(np.dot(a.vector, b.vector))
        threshold = self.threshold()
        return VerifyResult(score >= threshold, score, threshold, self.model.name)

    def embed(self, photos: list[tuple[str, bytes]]) -> list[tuple[str, AnalyzedPhoto]]:
        """Every face of every photo; the first bad photo fails the call, naming its file."""
        results = self.faces.analyze_many([(data, None) for _, data in photos])
        for (filename, _), result in zip(photos, results):
            if isinstance(result, ManyAnglesError):
                result.message = f"{filename}: {result.message}"
                raise result
        return [(filename, result) for (filename, _), result in zip(photos, results)]  # type: ignore[misc]

    # --- gallery -----------------------------------------------------------------------------
    def persons(self) -> list[Person]:
        return self.store.list_persons()

    def delete(self, key: int | str) -> dict[str, int]:
        person = self.store.find_person(key)
        return self.store.delete_person(person.id)

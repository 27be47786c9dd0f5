"""The ManyAngles core service: enrollment, identification and verification over one store.

The CLI (models in this process) and the HTTP API (models in Ray Serve deployments) both go
through this class; they differ only in the ``FaceAnalyzer`` and ``ViewMaker`` they give it.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.augment.gate import ViewsOutcome
from core.augment.views import plan_views
from core.duplicates import find_duplicates
from core.enrollment import ProgressCallback, ProgressEvent, build_enrollment, views_events
from core.errors import (
    InvalidInput,
    ManyAnglesError,
    ModelMismatch,
    ModelNotReady,
    ModelSwitching,
    NotCalibrated,
    PersonExists,
    PhotoExists,
    TooLargeForRequest,
)
from core.face_check import FaceCheck, recheck_guard, same_face_error
from core.gallery_fpir import OUTGROWN, expected_fpir
from core.matching import Candidate, MatchResult
from core.matching_rules import PHOTOS
from core.pipeline import AnalyzedPhoto, ModelInfo
from core.recognition import FacePolicy
from core.results import EnrollResult, FaceIdentification, IdentifyResult, PersonVerifyResult, VerifyResult
from core.search import GallerySearch, Hit
from core.settings import MAX_TOP_K, Settings
from core.store.gallery import GalleryStore, normalise_name
from core.store.models import active_model
from core.store.records import DuplicatePair, EnrollmentRunRecord, Person
from core.store.removals import prune_removals
from core.thresholds import GalleryFit, gallery_fit, resolve_threshold, resolve_views_offset
from core.viewmaker import ViewMaker

log = logging.getLogger(__name__)


class FaceAnalyzer(Protocol):
    """Decode -> detect -> align -> embed, one call per photo (core/pipeline.py or remote)."""

    @property
    def info(self) -> ModelInfo: ...

    def analyze(self, photo: bytes, policy: FacePolicy | None = None) -> AnalyzedPhoto: ...

    def analyze_many(self, items: list[tuple[bytes, FacePolicy | None]]) -> list[AnalyzedPhoto | ManyAnglesError]: ...


@dataclass(frozen=True)
class PhotoRequest:
    """What to do with a photo being stored: which face, which views, and whether to store it
    even when it is identified as someone else (a new person's: as someone already enrolled)."""

    face: FacePolicy = "single"
    augment: bool = False
    views: list[str] | None = None
    num_variations: int | None = None
    seed: int = 0
    force: bool = False


class ManyAnglesService:
    def __init__(
        self, settings: Settings, faces: FaceAnalyzer, store: GalleryStore, views: ViewMaker | None = None
    ) -> None:
        self.settings = settings
        self.faces = faces
        self.store = store
        self._views = views
        self._search: GallerySearch | None = None  # the active model's gallery in memory
        self._search_lock = threading.Lock()  # the HTTP API calls in from many threads

    @classmethod
    def from_settings(cls, settings: Settings) -> ManyAnglesService:
        """The in-process service (CLI): models loaded here, store under settings.data_dir."""
        from core.active import ActiveModelFaces
        from core.viewmaker import LocalViews

        store = GalleryStore(settings.data_dir)
        faces = ActiveModelFaces(settings, store, in_service=False)
        return cls(settings, faces, store, LocalViews(settings, faces))

    @property
    def model(self) -> ModelInfo:
        return self.faces.info

    @property
    def views(self) -> ViewMaker:
        if self._views is None:
            raise ManyAnglesError("this service was built without a view generator")
        return self._views

    # --- thresholds --------------------------------------------------------------------------
    def threshold(self, model: ModelInfo | None = None) -> float:
        """The model's (default: the active one's) identification threshold at the configured FPIR."""
        return resolve_threshold(
            self.store, model or self.model, "fpir", self.settings.target_fpir, self.settings.match_mode
        )

    def gallery_fit(self) -> GalleryFit:
        """How the active model's identification threshold holds at the gallery's size now: the
        persons a search can name (from the in-memory search, brought up to date: no count
        over the persons table)."""
        settings, model = self.settings, self.model
        with self._search_lock:
            persons = self._refreshed(model.name).num_persons
        return gallery_fit(self.store, model, settings.target_fpir, settings.match_mode, persons)

    def _warn_if_outgrown(self) -> None:
        """Log, once, from the enrollment that takes the gallery past what its identification
        threshold holds (GET /v1/thresholds keeps saying so); never fails the enrollment."""
        try:
            fit = self.gallery_fit()
            if fit.warning is None or fit.person_fmr is None:
                return
            if expected_fpir(fit.person_fmr, fit.persons - 1) <= OUTGROWN * self.settings.target_fpir:
                log.warning("%s", fit.warning)
        except Exception:  # the person is stored; a lost warning is only logged
            log.exception("could not check the gallery's size against its threshold")

    def views_offset(self, model: ModelInfo | None = None) -> float:
        """What a person with generated views loses from their score (core/matching_rules.py)."""
        return resolve_views_offset(
            self.store, model or self.model, self.settings.match_mode, explicit=self.settings.views_offset
        )

    def verify_threshold(self, model: ModelInfo | None = None, person: bool = True) -> tuple[float, float | None]:
        """One-to-one decisions: the threshold at ``verify_fmr`` false matches per claim, a photo
        against a person under the matching rule (``person``) or against another photo; and
        that rate (None: ``verify_fmr`` 0, the identification threshold instead)."""
        fmr = self.settings.verify_fmr
        if not fmr:
            return self.threshold(model), None
        rule = self.settings.match_mode if person else PHOTOS
        return resolve_threshold(self.store, model or self.model, "verify_fmr", fmr, rule), fmr

    def gate_threshold(self, model: ModelInfo | None = None) -> float:
        return resolve_threshold(
            self.store, model or self.model, "gate_fmr", self.settings.gate_fmr, explicit=self.settings.gate_threshold
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
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> EnrollResult:
        """Enroll from one photo, with generated views when ``augment``; all or nothing.
        Refused, unless ``force``, when the face is identified as a person already enrolled."""
        return self._store_photo(
            normalise_name(name),
            None,
            photo,
            PhotoRequest(face, augment, views, num_variations, seed, force),
            progress,
        )

    def add_photo(
        self,
        person_id: int,
        photo: bytes,
        *,
        face: FacePolicy = "single",
        augment: bool = False,
        views: list[str] | None = None,
        num_variations: int | None = None,
        seed: int = 0,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> EnrollResult:
        """Add another photo of an enrolled person (with views of it when ``augment``); all or
        nothing. Refused when the person already has this photo, and, unless ``force``, when the
        photo is identified as someone else and not as them (the wrong person picked)."""
        person = self.store.find_person(person_id)
        request = PhotoRequest(face, augment, views, num_variations, seed, force)
        return self._store_photo(person.name, person.id, photo, request, progress)

    def _store_photo(
        self, name: str, into: int | None, photo: bytes, ask: PhotoRequest, progress: ProgressCallback | None
    ) -> EnrollResult:
        """A new person (``into`` None) or one more photo of person ``into``: the photo, its
        views when asked for, their embeddings, stored in one transaction."""
        started = time.perf_counter()
        emit = progress or (lambda event: None)
        face, augment, views, num_variations, seed = ask.face, ask.augment, ask.views, ask.num_variations, ask.seed
        if into is None and self.store.has_person(name):  # before any work; the store checks again
            raise PersonExists(f"a person named {name!r} is already enrolled")
        requests = None
        if augment:  # validate the request before any work
            info = self.views.generator_info()
            requests = plan_views(
                views, num_variations, seed, info.supported_views, info.default_views, info.repeats_differ
            )
        analyzed = self.faces.analyze(photo, face)
        model = analyzed.model
        timings = {k.removesuffix("_s"): v for k, v in analyzed.timings.items()}
        original = analyzed.faces[0]
        image = analyzed.image
        emit(ProgressEvent("decoded", f"{image.format} {image.width}x{image.height}"))
        emit(
            ProgressEvent(
                "detected", "face detected", {"bbox": original.face.as_dict()["bbox"], "score": original.face.score}
            )
        )
        if into is not None:  # before any view is generated
            known = self.store.find_image(into, image.sha256, "original")
            if known is not None:
                raise PhotoExists(f"person {into} already has this photo (image {known}); nothing was stored")
        checked = None if ask.force else self._check_same_person(into, model, original.vector, image.sha256)
        outcome: ViewsOutcome | None = None
        if requests is not None:
            emit(
                ProgressEvent(
                    "generating", f"generating {len(requests)} view(s)", {"views": [r.name for r in requests]}
                )
            )
            outcome = self.views.make_views(photo, original.face, original.vector, requests, self.gate_threshold(model))
            if outcome.model != model.name:
                raise ModelSwitching(f"the model changed to {outcome.model} during this enrollment; retry")
            for event in views_events(outcome):
                emit(event)
            timings["generate"] = outcome.stats.total_s
            timings["gate"] = outcome.gate_s
        enrollment = build_enrollment(name, photo, image, original, model.name, outcome)
        emit(ProgressEvent("embedded", f"{len(enrollment.embeddings)} embedding(s) with {model.name}"))
        store_started = time.perf_counter()
        # a new person enrolled meanwhile (another request, another replica) was not in the
        # search: the face is checked against what committed since, under the write lock
        guard = None
        if checked is not None and into is None:
            guard = recheck_guard(self.store, self.settings.match_mode, checked, original.vector, image.sha256)
        person_id = self.store.add_person(enrollment, into=into, new_photo=into is not None, guard=guard)
        timings["store"] = time.perf_counter() - store_started
        elapsed = time.perf_counter() - started
        timings["total"] = elapsed
        self._record_run(person_id, model.name, len(requests or []), len(outcome.accepted) if outcome else 0, timings)
        if into is None:
            self._warn_if_outgrown()
        emit(ProgressEvent("stored", f"person {person_id} stored", {"person_id": person_id}))
        return EnrollResult(
            person_id=person_id,
            name=name,
            model=model.name,
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

    def _check_same_person(
        self, person_id: int | None, model: ModelInfo, vector: np.ndarray, sha256: str
    ) -> FaceCheck | None:
        """Refuse, at the identification threshold, a new person's photo (``person_id`` None)
        that is identified as someone already enrolled (a duplicate enrollment, or a lookalike),
        and a photo added to ``person_id`` that is identified as another person and not as them
        (most likely the wrong person was picked). Returns what the check rested on (None: no
        threshold to tell a match by, nothing checked)."""
        self._check_active(model)
        try:
            threshold = self.threshold(model)
        except NotCalibrated:
            return None
        offset = self.views_offset(model)
        with self._search_lock:
            search = self._refreshed(model.name)
            hits = search.search(vector[None], self.settings.top_k, self.settings.match_mode, offset)
            checked = FaceCheck(model.name, threshold, offset, search.last_id)
        [match] = self._named(hits, threshold)
        top = match.identity
        if top is None or top.person_id == person_id:
            return checked
        if any(c.person_id == person_id and c.score >= threshold for c in match.candidates):
            return checked
        raise same_face_error(self.store, person_id, top, threshold, sha256)

    def _record_run(
        self, person_id: int, model: str, num_views: int, num_accepted: int, timings: dict[str, float]
    ) -> None:
        """The enrollment's end-to-end time for the latency charts; never fails the enrollment."""
        run = EnrollmentRunRecord(
            person_id,
            model,
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
        requests = plan_views(
            views, num_variations, seed, info.supported_views, info.default_views, info.repeats_differ
        )
        analyzed = self.faces.analyze(photo, face)
        original = analyzed.faces[0]
        outcome = self.views.make_views(
            photo, original.face, original.vector, requests, self.gate_threshold(analyzed.model)
        )
        self.store.add_generation_run(outcome.run_record())
        return outcome

    # --- identification ----------------------------------------------------------------------
    def _refreshed(self, model: str) -> GallerySearch:
        """The model's gallery in memory, brought up to date with the store (only the changes);
        a model switch loads the new model's gallery once. Call under ``_search_lock``."""
        if self._search is None or self._search.model != model:
            self._search = GallerySearch(model, exact_max=self.settings.search_exact_max, background=True)
        self._search.refresh(self.store)
        return self._search

    def match(
        self, model: str, probes: np.ndarray, top_k: int, threshold: float, views_offset: float = 0.0
    ) -> list[MatchResult]:
        """Top-k persons per probe among ``model``'s gallery, with their current names."""
        with self._search_lock:
            hits = self._refreshed(model).search(probes, top_k, self.settings.match_mode, views_offset)
        return self._named(hits, threshold)

    def _named(self, hits: list[list[Hit]], threshold: float) -> list[MatchResult]:
        """Search hits with the persons' current names."""
        names = self.store.person_names({h.person_id for row in hits for h in row})
        return [
            MatchResult([Candidate(h.person_id, names.get(h.person_id, "?"), h.score) for h in row], threshold)
            for row in hits
        ]

    def _check_active(self, model: ModelInfo) -> None:
        """Answers come only from the active model: vectors of another one are refused (retry)."""
        active = active_model(self.store)
        if active is not None and active.name != model.name:
            raise ModelSwitching(f"the active model is now {active.name} (this request used {model.name}); retry")

    def identify(self, photo: bytes, top_k: int | None = None) -> IdentifyResult:
        """Every face in the photo with its top-k candidates (largest face first)."""
        if top_k is not None and not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        analyzed = self.faces.analyze(photo, None)
        model, faces = analyzed.model, analyzed.faces
        self._check_active(model)
        threshold = self.threshold(model) if faces else None
        found: list[FaceIdentification] = []
        if faces and threshold is not None:
            probes = np.stack([f.vector for f in faces])
            offset = self.views_offset(model)
            matches = self.match(model.name, probes, top_k or self.settings.top_k, threshold, offset)
            found = [FaceIdentification(face=f, match=m) for f, m in zip(faces, matches)]
        return IdentifyResult(model.name, threshold, self.settings.match_mode, found)

    def verify(self, photo_a: bytes, photo_b: bytes, face: FacePolicy = "largest") -> VerifyResult:
        results = self.faces.analyze_many([(photo_a, face), (photo_b, face)])
        for label, result in zip(("photo_a", "photo_b"), results):
            if isinstance(result, ManyAnglesError):
                result.message = f"{label}: {result.message}"
                raise result
        first, second = results  # both AnalyzedPhoto (errors were raised above)
        assert not isinstance(first, ManyAnglesError) and not isinstance(second, ManyAnglesError)
        if first.model.name != second.model.name:
            raise ModelMismatch(f"the photos were embedded by {first.model.name} and {second.model.name}; retry")
        score = float(np.dot(first.faces[0].vector, second.faces[0].vector))
        threshold, fmr = self.verify_threshold(first.model, person=False)
        return VerifyResult(score >= threshold, score, threshold, first.model.name, fmr)

    def verify_person(self, key: int | str, photo: bytes, face: FacePolicy = "largest") -> PersonVerifyResult:
        """Is the face in ``photo`` the enrolled person ``key`` (id or name; 1:1, a claimed identity: a badge,
        a login)? Scored as identification ranks them, under the matching rule over all of the
        person's entries (their photos and generated views; less the views offset), and decided
        at the one-to-one threshold (``verify_threshold``)."""
        person = self.store.find_person(key)  # an unknown person: 404 before any work
        analyzed = self.faces.analyze(photo, face)
        model = analyzed.model
        self._check_active(model)
        (threshold, fmr), offset, rule = (
            self.verify_threshold(model),
            self.views_offset(model),
            self.settings.match_mode,
        )
        with self._search_lock:
            score = self._refreshed(model.name).person_score(analyzed.faces[0].vector, person.id, rule, offset)
        if score is None:
            person = self.store.find_person(person.id)  # erased meanwhile: 404
            raise ModelNotReady(f"person {person.id} has no embedding of the active model {model.name} yet; retry")
        return PersonVerifyResult(person.id, person.name, score >= threshold, score, threshold, rule, model.name, fmr)

    def embed(self, photos: list[tuple[str, bytes]]) -> list[tuple[str, AnalyzedPhoto]]:
        """Every face of every photo; the first bad photo fails the call, naming its file."""
        results = self.faces.analyze_many([(data, None) for _, data in photos])
        for (filename, _), result in zip(photos, results):
            if isinstance(result, ManyAnglesError):
                result.message = f"{filename}: {result.message}"
                raise result
        return [(filename, result) for (filename, _), result in zip(photos, results)]  # type: ignore[misc]

    # --- gallery -----------------------------------------------------------------------------
    def duplicates(self, max_embeddings: int) -> list[DuplicatePair]:
        """Faces the gallery holds twice (core/duplicates.py), as the service identifies now;
        refused over ``max_embeddings`` vectors of the active model (``manyangles duplicates``)."""
        model = self.model
        with self._search_lock:
            size = self._refreshed(model.name).size
        if size > max_embeddings:
            raise TooLargeForRequest(
                f"the gallery holds {size:,} embeddings of {model.name}, over the {max_embeddings:,} one request "
                "searches for faces enrolled twice; search in the background (POST /v1/duplicates/jobs)"
            )
        threshold, offset = self.threshold(model), self.views_offset(model)
        return find_duplicates(self.store, model.name, self.settings.match_mode, threshold, offset)

    def persons(self, prefix: str | None = None) -> list[Person]:
        return self.store.list_persons(prefix=prefix)

    def delete(self, key: int | str) -> dict[str, int]:
        person = self.store.find_person(key)
        counts = self.store.delete_person(person.id)
        prune_removals(self.store)  # the removal log keeps a day (core/store/removals.py)
        return counts

    def delete_image(self, person_id: int, image_id: int) -> dict[str, int]:
        """Erase one image of a person (a view, or one of several photos) with its embeddings."""
        counts = self.store.delete_image(person_id, image_id)
        prune_removals(self.store)
        return counts

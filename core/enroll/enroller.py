"""Storing a photo: a new person from one photo, or one more photo of a person; with its generated
views when asked for, checked against the gallery for the same face, all in one transaction
(core/service.py's ``enroll`` and ``add_photo``)."""

from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass

import numpy as np

from core.augment.gate import ViewsOutcome
from core.augment.viewmaker import ViewMaker, default_views_for
from core.augment.views import ViewRequest, plan_views
from core.enroll.building import ProgressCallback, ProgressEvent, build_enrollment, views_events
from core.enroll.face_check import FORCE, DuplicateCheck, recheck_guard, same_face_error
from core.errors import (
    ManyAnglesError,
    ModelNotReady,
    ModelSwitching,
    NotCalibrated,
    NotThisPerson,
    PersonExists,
    PhotoExists,
)
from core.faces.decode import ImageInfo
from core.faces.pipeline import FaceAnalyzer, ModelInfo
from core.faces.recognition import EmbeddedFace, FacePolicy
from core.results import EnrollResult
from core.search.fpir import OUTGROWN, expected_fpir
from core.search.live import LiveSearch
from core.search.thresholds import Thresholds
from core.settings import Settings
from core.store.records import Enrollment, EnrollmentRunRecord

log = logging.getLogger(__name__)


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


class Enroller:
    def __init__(
        self,
        settings: Settings,
        faces: FaceAnalyzer,
        search: LiveSearch,
        thresholds: Thresholds,
        views: ViewMaker | None = None,
    ) -> None:
        self.settings = settings
        self.faces = faces
        self.search = search
        self.thresholds = thresholds
        self.store = search.store
        self._views = views

    @property
    def views(self) -> ViewMaker:
        if self._views is None:
            raise ManyAnglesError("this service was built without a view generator")
        return self._views

    def plan(
        self, views: list[str] | None, num_variations: int | None, seed: int, model: ModelInfo | None = None
    ) -> list[ViewRequest]:
        """The views to generate, validated against the generator before any work; with no views
        named, ``model``'s chosen ones (``default_views_for``)."""
        info = self.views.generator_info()
        defaults = default_views_for(info, model)
        return plan_views(views, num_variations, seed, info.supported_views, defaults, info.repeats_differ)

    def store_photo(
        self, name: str, into: int | None, photo: bytes, ask: PhotoRequest, progress: ProgressCallback | None
    ) -> EnrollResult:
        """A new person (``into`` None) or one more photo of person ``into``: the photo, its
        views when asked for, their embeddings, stored in one transaction."""
        started = time.perf_counter()
        emit = progress or (lambda event: None)
        if into is None and self.store.has_person(name):  # before any work; the store checks again
            raise PersonExists(f"a person named {name!r} is already enrolled")
        requests = self.plan(ask.views, ask.num_variations, ask.seed) if ask.augment else None
        analyzed = self.faces.analyze(photo, ask.face)
        model = analyzed.model
        if ask.augment and ask.views is None:  # the views chosen for the model that embedded the photo
            requests = self.plan(None, ask.num_variations, ask.seed, model)
        timings = {k.removesuffix("_s"): v for k, v in analyzed.timings.items()}
        original = analyzed.faces[0]
        image = analyzed.image
        _emit_found(emit, image, original)
        if into is not None:  # before any view is generated
            self._refuse_known_photo(into, image.sha256)
        checked = None if ask.force else self._check_same_person(into, model, original.vector, image.sha256)
        outcome = None
        if requests is not None:
            outcome = self._make_views(photo, original, model, requests, emit, timings)
        enrollment = build_enrollment(name, photo, image, original, model.name, outcome)
        emit(ProgressEvent("embedded", f"{len(enrollment.embeddings)} embedding(s) with {model.name}"))
        person_id = self._store_enrollment(enrollment, into, model, checked, original, image.sha256, timings)
        elapsed = time.perf_counter() - started
        timings["total"] = elapsed
        self._record_run(person_id, model.name, len(requests or []), len(outcome.accepted) if outcome else 0, timings)
        if into is None:
            self._warn_if_outgrown(model)
        emit(ProgressEvent("stored", f"person {person_id} stored", {"person_id": person_id}))
        return _result(person_id, name, model.name, enrollment, elapsed, outcome, timings)

    def _refuse_known_photo(self, person_id: int, sha256: str) -> None:
        known = self.store.find_image(person_id, sha256, "original")
        if known is not None:
            raise PhotoExists(f"person {person_id} already has this photo (image {known}); nothing was stored")

    def _make_views(
        self,
        photo: bytes,
        original: EmbeddedFace,
        model: ModelInfo,
        requests: list[ViewRequest],
        emit: ProgressCallback,
        timings: dict[str, float],
    ) -> ViewsOutcome:
        """The photo's views, gated against its face; their times go into ``timings``."""
        emit(ProgressEvent("generating", f"generating {len(requests)} view(s)", {"views": [r.name for r in requests]}))
        gate = self.thresholds.gate(model)
        outcome = self.views.make_views(photo, original.face, original.vector, requests, gate)
        if outcome.model != model.name:
            raise ModelSwitching(f"the model changed to {outcome.model} during this enrollment; retry")
        for event in views_events(outcome):
            emit(event)
        timings["generate"] = outcome.stats.total_s
        timings["gate"] = outcome.gate_s
        return outcome

    def _store_enrollment(
        self,
        enrollment: Enrollment,
        into: int | None,
        model: ModelInfo,
        checked: DuplicateCheck | None,
        original: EmbeddedFace,
        sha256: str,
        timings: dict[str, float],
    ) -> int:
        """The rows, in one transaction; the store's time goes into ``timings``."""
        store_started = time.perf_counter()
        # a new person enrolled meanwhile (another request, another replica) was not in the
        # search: the face is checked against what committed since, under the write lock
        guard = None
        if checked is not None and into is None:
            guard = recheck_guard(self.store, self.thresholds.rule(model), checked, original.vector, sha256)
        person_id = self.store.add_person(enrollment, into=into, new_photo=into is not None, guard=guard)
        timings["store"] = time.perf_counter() - store_started
        return person_id

    def _check_same_person(
        self, person_id: int | None, model: ModelInfo, vector: np.ndarray, sha256: str
    ) -> DuplicateCheck | None:
        """Refuse, at the identification threshold, a new person's photo (``person_id`` None)
        that is identified as someone already enrolled (a duplicate enrollment, or a lookalike),
        and a photo added to ``person_id`` that is identified as another person and not as them
        (most likely the wrong person was picked). Returns what the check rested on (None: no
        threshold to tell a match by, nothing checked)."""
        thresholds = self.thresholds.read_once(model)  # and the active-model check: one statement
        try:
            threshold = thresholds.identify(model)
        except NotCalibrated:
            if person_id is not None:  # is it them at all: a check of its own, at its own threshold
                self.check_is_them(person_id, model, vector)
            return None
        offset, rule = thresholds.views_offset(model), thresholds.rule(model)
        hits, seen = self.search.search(model.name, vector[None], self.settings.top_k, rule, offset)
        [match] = self.search.named(hits, threshold)
        checked = DuplicateCheck(model.name, threshold, offset, seen)
        top = match.identity
        if top is not None and top.person_id != person_id:
            if person_id is None or not any(
                c.person_id == person_id and c.score >= threshold for c in match.candidates
            ):
                raise same_face_error(self.store, person_id, top, threshold, sha256)
        if person_id is not None:
            self.check_is_them(person_id, model, vector)
        return checked

    def check_is_them(
        self, person_id: int, model: ModelInfo, vector: np.ndarray, what: str = "this photo", anyway: str = "add it"
    ) -> None:
        """A photo added to a person must verify as them: scored against all of their entries as
        ``verify_person`` scores a claim (matching rule, views offset), at the one-to-one
        threshold; ``NotThisPerson`` otherwise. A check that cannot be made refuses too (no
        one-to-one threshold for the model, or the person has no vector of it yet): ``force``
        is the admin's way past it, never silence."""
        rule, offset = self.thresholds.rule(model), self.thresholds.views_offset(model)
        try:
            threshold, _ = self.thresholds.verify(model)
        except NotCalibrated:
            raise NotCalibrated(
                f"{model.name} has no one-to-one threshold: {what} cannot be checked against person {person_id}; "
                f"calibrate it (manyangles calibrate DIR), or {anyway} anyway with {FORCE}; nothing was stored"
            ) from None
        score = self.search.person_score(model.name, vector, person_id, rule, offset)
        if score is None:
            raise ModelNotReady(
                f"person {person_id} has no embedding of the active model {model.name} yet to check {what} against; "
                f"retry once re-embedded, or {anyway} anyway with {FORCE}; nothing was stored"
            )
        if score >= threshold:
            return
        name = self.store.person_names({person_id}).get(person_id, "?")
        raise NotThisPerson(
            f"{what} does not verify as person {person_id} ({name}): score {score:.4f} < {threshold:.4f}, "
            f"the one-to-one threshold; {anyway} anyway with {FORCE}; nothing was stored",
            {"person_id": person_id, "name": name, "score": score, "threshold": threshold},
        )

    def _record_run(
        self, person_id: int, model: str, num_views: int, num_accepted: int, timings: dict[str, float]
    ) -> None:
        """The enrollment's end-to-end time for the latency charts; never fails the enrollment."""
        rounded = {k: round(v, 4) for k, v in timings.items()}
        run = EnrollmentRunRecord(person_id, model, num_views, num_accepted, timings["total"], rounded)
        try:
            self.store.add_enrollment_run(run)
        except Exception:  # the person is stored; a lost timing row is only logged
            log.exception("could not record the enrollment's timings")

    def _warn_if_outgrown(self, model: ModelInfo) -> None:
        """Log, once, from the enrollment that takes the gallery past what its identification
        threshold holds (GET /v1/thresholds keeps saying so); never fails the enrollment."""
        try:
            fit = self.thresholds.fit(model, self.search.num_persons(model.name))
            if fit.warning is None or fit.person_fmr is None:
                return
            if expected_fpir(fit.person_fmr, fit.persons - 1) <= OUTGROWN * self.settings.target_fpir:
                log.warning("%s", fit.warning)
        except Exception:  # the person is stored; a lost warning is only logged
            log.exception("could not check the gallery's size against its threshold")


def _emit_found(emit: ProgressCallback, image: ImageInfo, original: EmbeddedFace) -> None:
    """The photo decoded and its face detected, for a caller following the enrollment."""
    emit(ProgressEvent("decoded", f"{image.format} {image.width}x{image.height}"))
    emit(
        ProgressEvent(
            "detected", "face detected", {"bbox": original.face.as_dict()["bbox"], "score": original.face.score}
        )
    )


def _result(
    person_id: int,
    name: str,
    model: str,
    enrollment: Enrollment,
    elapsed: float,
    outcome: ViewsOutcome | None,
    timings: dict[str, float],
) -> EnrollResult:
    """What was stored, with each view's decision and a preview of it."""
    return EnrollResult(
        person_id=person_id,
        name=name,
        model=model,
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

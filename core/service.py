"""The ManyAngles core service: enrollment, identification and verification over one store.

The CLI (models in this process) and the HTTP API (models in Ray Serve deployments) both go
through this class; they differ only in the ``FaceAnalyzer`` and ``ViewMaker`` they give it.
Storing a photo is core/enroll/enroller.py's; the gallery in memory, core/search/live.py's; the
thresholds, core/search/thresholds.py's.

May import: core.errors, core.settings, core.results, core.store, core.faces, core.augment, core.search, core.enroll.
"""

from __future__ import annotations

import logging

import numpy as np

from core.augment.gate import ViewsOutcome
from core.augment.viewmaker import ViewMaker
from core.enroll.building import ProgressCallback
from core.enroll.enroller import Enroller, PhotoRequest
from core.errors import (
    InvalidInput,
    ManyAnglesError,
    ModelMismatch,
    ModelNotReady,
    ModelSwitching,
    TooLargeForRequest,
)
from core.faces.pipeline import AnalyzedPhoto, FaceAnalyzer, ModelInfo
from core.faces.recognition import FacePolicy
from core.results import EnrollResult, FaceIdentification, IdentifyResult, PersonVerifyResult, VerifyResult
from core.search.duplicates import find_duplicates
from core.search.live import LiveSearch, check_active
from core.search.thresholds import GalleryFit, Thresholds
from core.settings import MAX_TOP_K, Settings
from core.store.gallery import GalleryStore
from core.store.names import normalise_name
from core.store.records import DuplicatePair, ModelThresholds, Person
from core.store.removals import ChangeMarks, prune_removals
from core.store.search_reads import ReadsAhead

log = logging.getLogger(__name__)


class ManyAnglesService:
    def __init__(
        self, settings: Settings, faces: FaceAnalyzer, store: GalleryStore, views: ViewMaker | None = None
    ) -> None:
        self.settings = settings
        self.faces = faces
        self.store = store
        self.search = LiveSearch(store, settings.search_exact_max)
        self.thresholds = Thresholds(settings, store)
        self.enroller = Enroller(settings, faces, self.search, self.thresholds, views)

    @classmethod
    def from_settings(cls, settings: Settings) -> ManyAnglesService:
        """The in-process service (CLI): models loaded here, store under settings.data_dir."""
        from core.augment.viewmaker import LocalViews
        from core.faces.active import ActiveModelFaces

        store = GalleryStore.from_settings(settings)
        faces = ActiveModelFaces(settings, store, in_service=False)
        return cls(settings, faces, store, LocalViews(settings, faces))

    @property
    def model(self) -> ModelInfo:
        return self.faces.info

    @property
    def views(self) -> ViewMaker:
        return self.enroller.views

    # --- thresholds (the active model's by default) -----------------------------------------
    def rule(self, model: ModelInfo | None = None) -> str:
        """The matching rule persons are scored by (the setting, else the model's chosen one)."""
        return self.thresholds.rule(model or self.model)

    def threshold(self, model: ModelInfo | None = None) -> float:
        """The identification threshold at the configured FPIR."""
        return self.thresholds.identify(model or self.model)

    def gallery_fit(self) -> GalleryFit:
        """How the active model's identification threshold holds at the gallery's size now: the
        persons a search can name."""
        model = self.model
        return self.thresholds.fit(model, self.search.num_persons(model.name))

    def views_offset(self, model: ModelInfo | None = None) -> float:
        """What a person with generated views loses from their score (core/search/rules.py)."""
        return self.thresholds.views_offset(model or self.model)

    def verify_threshold(self, model: ModelInfo | None = None, person: bool = True) -> tuple[float, float | None]:
        """One-to-one: the threshold and its false match rate per claim (``Thresholds.verify``)."""
        return self.thresholds.verify(model or self.model, person)

    def gate_threshold(self, model: ModelInfo | None = None) -> float:
        return self.thresholds.gate(model or self.model)

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
        return self.enroller.store_photo(
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
        return self.enroller.store_photo(person.name, person.id, photo, request, progress)

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
        requests = self.enroller.plan(views, num_variations, seed)
        analyzed = self.faces.analyze(photo, face)
        if views is None:
            requests = self.enroller.plan(None, num_variations, seed, analyzed.model)
        original = analyzed.faces[0]
        outcome = self.views.make_views(
            photo, original.face, original.vector, requests, self.gate_threshold(analyzed.model)
        )
        if outcome.model != analyzed.model.name:  # the views gated by another model than the photo's
            raise ModelSwitching(f"the model changed to {outcome.model} during this call; retry")
        self.store.add_generation_run(outcome.run_record())
        return outcome

    # --- identification ----------------------------------------------------------------------
    def identify(self, photo: bytes, top_k: int | None = None) -> IdentifyResult:
        """Every face in the photo with its top-k candidates (largest face first)."""
        if top_k is not None and not 1 <= top_k <= MAX_TOP_K:
            raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        clock = self.store.search_clock("identify")  # timings only, for the latency charts
        analyzed, early, marks = self._analyze_reading_ahead(photo, None)
        clock.lap("analyze")
        model, faces = analyzed.model, analyzed.faces
        thresholds = self.thresholds.read_once(model, early)  # and the active-model check
        threshold = thresholds.identify(model) if faces else None
        found: list[FaceIdentification] = []
        if faces and threshold is not None:
            probes = np.stack([f.vector for f in faces])
            offset, rule = thresholds.views_offset(model), thresholds.rule(model)
            matches = self.search.match(
                model.name, probes, top_k or self.settings.top_k, rule, threshold, offset, marks
            )
            found = [FaceIdentification(face=f, match=m) for f, m in zip(faces, matches)]
        clock.lap("search")
        clock.record(len(faces))
        return IdentifyResult(model.name, threshold, thresholds.rule(model), found)

    def _analyze_reading_ahead(
        self, photo: bytes, policy: FacePolicy | None
    ) -> tuple[AnalyzedPhoto, ModelThresholds | None, ChangeMarks | None]:
        """The photo's analysis, and what the search needs of the store, in one statement
        (core/store/search_reads.py): the active model (read first when the analyzer needs it:
        in process or the API replica's own copy of the model; else while the Embedder works),
        its calibrations (``read_once`` uses them when the analysis was that model's, which it is
        unless the model was switched meanwhile) and the change marks (an unchanged gallery: the
        search reads nothing after the analysis). A failed read is read again later, after the
        analysis, whose outcome comes first."""
        ahead = ReadsAhead(self.store)
        pending = self.faces.submit(photo, policy, ahead)
        reads = ahead.get()
        analyzed = pending()
        return analyzed, reads.thresholds if reads else None, reads.marks if reads else None

    def verify(self, photo_a: bytes, photo_b: bytes, face: FacePolicy = "largest") -> VerifyResult:
        clock = self.store.search_clock("verify")  # timings only, for the latency charts
        results = self.faces.analyze_many([(photo_a, face), (photo_b, face)])
        clock.lap("analyze")
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
        clock.lap("compare")
        clock.record(2)
        return VerifyResult(score >= threshold, score, threshold, first.model.name, fmr)

    def verify_person(self, key: int | str, photo: bytes, face: FacePolicy = "largest") -> PersonVerifyResult:
        """Is the face in ``photo`` the enrolled person ``key`` (id or name; 1:1, a claimed identity: a badge,
        a login)? Scored as identification ranks them, under the matching rule over all of the
        person's entries (their photos and generated views; less the views offset), and decided
        at the one-to-one threshold (``verify_threshold``)."""
        clock = self.store.search_clock("verify_person")  # timings only (never who), for the latency charts
        person = self.store.find_person(key)  # an unknown person: 404 before any work
        analyzed, early, marks = self._analyze_reading_ahead(photo, face)
        clock.lap("analyze")
        model = analyzed.model
        thresholds = self.thresholds.read_once(model, early)  # and the active-model check
        (threshold, fmr), offset, rule = (
            thresholds.verify(model),
            thresholds.views_offset(model),
            thresholds.rule(model),
        )
        score = self.search.person_score(model.name, analyzed.faces[0].vector, person.id, rule, offset, marks)
        if score is None:
            person = self.store.find_person(person.id)  # erased meanwhile: 404
            raise ModelNotReady(f"person {person.id} has no embedding of the active model {model.name} yet; retry")
        clock.lap("score")
        clock.record(1)
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
        """Faces the gallery holds twice (core/search/duplicates.py), as the service identifies now;
        refused over ``max_embeddings`` vectors of the active model (``manyangles duplicates``)."""
        model = self.model
        size = self.search.size(model.name)
        if size > max_embeddings:
            raise TooLargeForRequest(
                f"the gallery holds {size:,} embeddings of {model.name}, over the {max_embeddings:,} one request "
                "searches for faces enrolled twice; search in the background (POST /v1/duplicates/jobs)"
            )
        threshold, offset = self.threshold(model), self.views_offset(model)
        return find_duplicates(self.store, model.name, self.rule(model), threshold, offset)

    def persons(self, prefix: str | None = None) -> list[Person]:
        return self.store.list_persons(prefix=prefix)

    def delete(self, key: int | str) -> dict[str, int]:
        person = self.store.find_person(key)
        counts = self.store.delete_person(person.id)
        prune_removals(self.store)  # the removal log keeps a day (core/store/removals.py)
        return counts

    def merge(self, keep: int, other: int, force: bool = False) -> tuple[Person, dict[str, int]]:
        """Merge person ``other`` into ``keep`` (a face enrolled twice): every image, vector and
        run of ``other`` becomes ``keep``'s and ``other`` goes. Refused unless ``force`` when a
        photo of ``other`` does not verify as ``keep`` (as a photo added to them is checked)."""
        kept, merged = self.store.find_person(keep), self.store.find_person(other)
        if not force and kept.id != merged.id:
            model = self.model
            check_active(self.store, model)
            photos = self.store.original_vectors(merged.id, model.name)
            if not len(photos):
                raise ModelNotReady(
                    f"person {merged.id} has no photo embedded with the active model {model.name} to check against "
                    f"person {kept.id}; retry once re-embedded, or merge them anyway with force=true; nothing was changed"
                )
            for vector in photos:
                self.enroller.check_is_them(kept.id, model, vector, f"person {merged.id}'s photo", "merge them")
        counts = self.store.merge_persons(kept.id, merged.id)
        prune_removals(self.store)
        return self.store.find_person(kept.id), counts

    def delete_image(self, person_id: int, image_id: int) -> dict[str, int]:
        """Erase one image of a person (a view, or one of several photos) with its embeddings."""
        counts = self.store.delete_image(person_id, image_id)
        prune_removals(self.store)
        return counts

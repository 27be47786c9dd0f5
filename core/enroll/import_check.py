"""The face check of an import: the rule enrollment follows, applied to a gallery brought in.

``manyangles import`` would otherwise add a person under a new name (``--on-conflict rename``,
or simply another spelling) whose face is already enrolled, and merge a namesake into the wrong
person. Each person of the export is searched, by the vectors of their original photos of the
gallery's active model, against the gallery as it was before the import, at the identification
threshold in use (matching rule and views offset included), as ``POST /v1/persons`` searches a
new photo: a new person identified as someone enrolled is left out; so is a merge that is not
identified as the person of that name it would join (a namesake is not that person; stricter
than adding a photo, where an admin picked the person); both are reported, and ``--force``
imports them.
Persons of one export are not checked against each other: the gallery they come from made
those choices (twins enrolled with ``force``)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from core.errors import NotCalibrated
from core.faces.pipeline import ModelInfo
from core.search.index import GallerySearch
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.records import Enrollment, FaceConflict


class Identifying(Protocol):
    """How the service identifies now (core/service.py's ``ManyAnglesService``)."""

    settings: Settings
    store: GalleryStore

    @property
    def model(self) -> ModelInfo: ...

    def threshold(self) -> float: ...

    def rule(self) -> str: ...

    def views_offset(self) -> float: ...


class ImportFaceCheck:
    """Holds the gallery's vectors of ``model`` as they were when an import began."""

    def __init__(
        self, store: GalleryStore, model: str, rule: str, threshold: float, offset: float, top_k: int = 5
    ) -> None:
        self.store = store
        self.model = model
        self.rule = rule
        self.threshold = threshold
        self.offset = offset
        self.top_k = top_k
        self._search = GallerySearch(model)

    def begin(self) -> None:
        """Take in the gallery as it is now, before an import adds to it (incremental)."""
        self._search.refresh(self.store)

    @classmethod
    def of(cls, service: Identifying) -> ImportFaceCheck | None:
        """The check as the service identifies now; None without a threshold to tell a match by."""
        try:
            threshold = service.threshold()
        except NotCalibrated:
            return None
        settings = service.settings
        return cls(service.store, service.model.name, service.rule(), threshold, service.views_offset(), settings.top_k)

    def describe(self) -> str:
        return f"{self.model}, {self.rule} >= {self.threshold:.4f}, views offset {self.offset:.4f}"

    def _originals(self, enrollment: Enrollment) -> list[np.ndarray]:
        return [e.vector for e in enrollment.embeddings if e.model == self.model and e.source == "original"]

    def can_check(self, enrollment: Enrollment) -> bool:
        """Whether the export holds a vector of this model for one of the person's own photos."""
        return bool(self._originals(enrollment))

    def conflict(self, enrollment: Enrollment, into: int | None) -> FaceConflict | None:
        """Why ``enrollment`` may not be imported as it would be, if it may not: a new person
        (``into`` None) whose original photo is identified as anyone, or a merge into ``into``
        none of whose original photos is identified as that person."""
        originals = self._originals(enrollment)
        if not originals:
            return None
        rows = self._search.search(np.stack(originals), self.top_k, self.rule, self.offset)
        tops = [row[0] for row in rows if row and row[0].score >= self.threshold]
        if into is None:
            if not tops:
                return None
            top = max(tops, key=lambda h: h.score)
            name = self.store.person_names({top.person_id}).get(top.person_id, "?")
            score = round(float(top.score), 6)
            return FaceConflict(enrollment.name, "already_enrolled", self.threshold, top.person_id, name, score)
        joins = [h.score for row in rows for h in row if h.person_id == into]
        if joins and max(joins) >= self.threshold:
            return None
        others = [h for h in tops if h.person_id != into]
        into_name = self.store.person_names({into}).get(into, "?")
        if others:
            top = max(others, key=lambda h: h.score)
            name = self.store.person_names({top.person_id}).get(top.person_id, "?")
            score = round(float(top.score), 6)
            return FaceConflict(
                enrollment.name, "another_person", self.threshold, top.person_id, name, score, into_name
            )
        best = round(float(max(joins)), 6) if joins else None
        return FaceConflict(enrollment.name, "not_identified", self.threshold, score=best, into=into_name)

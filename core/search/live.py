"""The active model's gallery in memory, shared by the threads of one process (the HTTP API calls
in from many): every call first brings it up to date with the store (only the changes), under
one lock; a model switch loads the new model's gallery once (core/search/index.py holds the search)."""

from __future__ import annotations

import threading

import numpy as np

from core.errors import ModelSwitching
from core.faces.pipeline import ModelInfo
from core.search.index import GallerySearch, Hit
from core.search.matching import Candidate, MatchResult
from core.store.gallery import GalleryStore
from core.store.model_versions import active_model
from core.store.removals import ChangeMarks

NAMES_KEPT = 100_000  # names held in memory at most (then dropped, read again as hits need them)


class LiveSearch:
    def __init__(self, store: GalleryStore, exact_max: int) -> None:
        self.store = store
        self._exact_max = exact_max
        self._search: GallerySearch | None = None
        self._lock = threading.Lock()
        # persons' names as read at the store's change counter ``_names_at`` (a rename or an
        # erasure moves it, and the next refresh drops them all): a search of an unchanged
        # gallery names its hits without a read
        self._names: dict[int, str] = {}
        self._names_at: int | None = None
        self._names_lock = threading.Lock()  # taken inside ``_lock``, or alone: naming never waits on a search

    def _refreshed(self, model: str, marks: ChangeMarks | None = None) -> GallerySearch:
        """Call under ``_lock``."""
        if self._search is None or self._search.model != model:
            if self._search is not None:
                # a call analysed by a model this search has moved on from (a request that started
                # before a switch, answered after another that followed it): refused, so a switch
                # never reloads the retired model's gallery (at a million vectors, seconds) and back
                active = active_model(self.store)
                ModelSwitching.unless(active.name if active is not None else None, model)
            self._search = GallerySearch(model, exact_max=self._exact_max, background=True)
        self._search.refresh(self.store, marks)
        with self._names_lock:
            if self._search.changes_seen != self._names_at or len(self._names) > NAMES_KEPT:
                self._names, self._names_at = {}, self._search.changes_seen
        return self._search

    def size(self, model: str) -> int:
        """Embeddings of ``model`` a search goes over."""
        with self._lock:
            return self._refreshed(model).size

    def num_persons(self, model: str) -> int:
        """Persons a search can name (no count over the persons table)."""
        with self._lock:
            return self._refreshed(model).num_persons

    def search(
        self, model: str, probes: np.ndarray, top_k: int, rule: str, offset: float, marks: ChangeMarks | None = None
    ) -> tuple[list[list[Hit]], int]:
        """Top-k persons per probe, scored under the matching ``rule``, and the newest embedding
        id the search saw (``marks``: the store's, read since the request began; see ``refresh``)."""
        with self._lock:
            search = self._refreshed(model, marks)
            return search.search(probes, top_k, rule, offset), search.last_id

    def match(
        self,
        model: str,
        probes: np.ndarray,
        top_k: int,
        rule: str,
        threshold: float,
        offset: float,
        marks: ChangeMarks | None = None,
    ) -> list[MatchResult]:
        """Top-k persons per probe, with their current names."""
        return self.named(self.search(model, probes, top_k, rule, offset, marks)[0], threshold)

    def named(self, hits: list[list[Hit]], threshold: float) -> list[MatchResult]:
        """Search hits with the persons' current names (as of the search's refresh, or newer)."""
        wanted = {h.person_id for row in hits for h in row}
        with self._names_lock:
            names, at = {p: self._names[p] for p in wanted if p in self._names}, self._names_at
        if len(names) < len(wanted):
            read = self.store.person_names(wanted - names.keys())  # an erased person: no name, never kept
            names.update(read)
            with self._names_lock:
                if self._names_at == at:  # no refresh saw a change meanwhile
                    self._names.update(read)
        return [
            MatchResult([Candidate(h.person_id, names.get(h.person_id, "?"), h.score) for h in row], threshold)
            for row in hits
        ]

    def person_score(
        self,
        model: str,
        probe: np.ndarray,
        person_id: int,
        rule: str,
        offset: float,
        marks: ChangeMarks | None = None,
    ) -> float | None:
        """One person's score for ``probe`` as a search ranks them (None: no entry of ``model``)."""
        with self._lock:
            return self._refreshed(model, marks).person_score(probe, person_id, rule, offset)


def check_active(store: GalleryStore, model: ModelInfo) -> None:
    """Answers come only from the active model: vectors of another one are refused (retry)."""
    active = active_model(store)
    ModelSwitching.unless(active.name if active is not None else None, model.name)

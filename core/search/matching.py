"""1:N matching by cosine similarity against one model's gallery."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.search.rules import RULES, GalleryIndex, person_scores
from core.settings import MatchMode
from core.store.records import GalleryMatrix


@dataclass(frozen=True)
class Candidate:
    person_id: int
    name: str
    score: float


@dataclass(frozen=True)
class MatchResult:
    """Top-k candidates for one probe; ``identity`` is the top one if it clears the threshold."""

    candidates: list[Candidate]
    threshold: float

    @property
    def identity(self) -> Candidate | None:
        if self.candidates and self.candidates[0].score >= self.threshold:
            return self.candidates[0]
        return None


class Matcher:
    """Scores probes against a gallery with a matching rule (core/search/rules.py)."""

    def __init__(self, gallery: GalleryMatrix, mode: MatchMode = "max", views_offset: float = 0.0) -> None:
        if mode not in RULES:
            raise ValueError(f"unknown match mode {mode!r}; rules: {', '.join(RULES)}")
        self.gallery = gallery
        self.mode = mode
        self.views_offset = views_offset
        self.person_ids, inverse = np.unique(gallery.person_ids, return_inverse=True)
        original = np.array([s == "original" for s in gallery.sources], dtype=bool)
        self._index = GalleryIndex.build(gallery.vectors, inverse, original)

    def person_scores(self, probes: np.ndarray) -> np.ndarray:
        """(n_probes, n_persons) scores, persons in the order of ``self.person_ids``."""
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        if self.gallery.size == 0:
            return np.zeros((probes.shape[0], 0), dtype=np.float32)
        return person_scores(self.mode, self._index, probes, self.views_offset)

    def match(self, probes: np.ndarray, top_k: int, threshold: float) -> list[MatchResult]:
        scores = self.person_scores(probes)
        results = []
        k = min(top_k, scores.shape[1])
        for row in scores:
            order = np.argsort(-row, kind="stable")[:k]
            candidates = [
                Candidate(
                    person_id=int(self.person_ids[i]),
                    name=self.gallery.names.get(int(self.person_ids[i]), "?"),
                    score=float(row[i]),
                )
                for i in order
            ]
            results.append(MatchResult(candidates=candidates, threshold=threshold))
        return results

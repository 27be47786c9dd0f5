"""Matching rules: how a person's several gallery embeddings become one score for a probe.

A gallery mixes persons enrolled from one photo and persons with generated views, so a rule
must score both on the same scale. Each rule is a small pure function of the probe-to-embedding
cosine similarities (and, for the template rules, of the embeddings themselves):

- ``max``: the best single embedding. A person with six entries gets six chances to out-score a
  stranger, so impostor scores rise with the number of views (the threshold at a fixed FPIR
  rises with them).
- ``mean``: cosine to the person's mean template (the normalised sum of all their embeddings):
  one vector per person whatever the number of views.
- ``blend``: original-anchored, ``w * sim(original) + (1 - w) * sim(views' mean template)``;
  a person without views scores ``sim(original)``.
- ``top2``: the mean of the person's two best similarities (one entry: that one).

Whatever the rule, a person with generated views draws higher impostor scores than a person
enrolled from the photo alone (more entries, more chances). ``views_offset`` puts both on one
scale: it is subtracted from the score of every person who has views. It is calibrated per
model and rule (``calibrate_views_offsets`` in core/evaluation/crossval.py: how far the tail
of impostor scores moves when the same persons get views) and stored beside the thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

RuleName = Literal["max", "mean", "blend", "top2"]
RULES: tuple[RuleName, ...] = ("max", "mean", "blend", "top2")
BLEND_WEIGHT = 0.5
# the tail of impostor scores a views offset is measured at (calibrate_views_offsets)
VIEWS_OFFSET_TAIL = 0.001


@dataclass(frozen=True, eq=False)
class GalleryIndex:
    """A gallery laid out for the rules: embeddings grouped by person (0..P-1)."""

    vectors: np.ndarray  # (n, d) float32, unit rows
    person: np.ndarray  # (n,) int64 in [0, P)
    original: np.ndarray  # (n,) bool: the embedding of an uploaded photo (not a generated view)
    num_persons: int

    @classmethod
    def build(cls, vectors: np.ndarray, person: np.ndarray, original: np.ndarray) -> GalleryIndex:
        person = np.asarray(person, dtype=np.int64)
        count = int(person.max()) + 1 if person.size else 0
        return cls(np.asarray(vectors, dtype=np.float32), person, np.asarray(original, dtype=bool), count)

    @property
    def has_views(self) -> np.ndarray:
        """(P,) bool: the person has at least one generated view."""
        out = np.zeros(self.num_persons, dtype=bool)
        out[self.person[~self.original]] = True
        return out


def _template(index: GalleryIndex, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, d) normalised sums of the masked embeddings per person, and which persons have any."""
    d = index.vectors.shape[1] if index.vectors.ndim == 2 else 0
    sums = np.zeros((index.num_persons, d), dtype=np.float64)
    np.add.at(sums, index.person[mask], index.vectors[mask])
    norms = np.linalg.norm(sums, axis=1)
    has = norms > 1e-12
    sums[has] /= norms[has, None]
    return sums.astype(np.float32), has


def score_max(index: GalleryIndex, probes: np.ndarray) -> np.ndarray:
    sims = probes @ index.vectors.T  # (q, n)
    out = np.full((probes.shape[0], index.num_persons), -np.inf, dtype=np.float32)
    for row in range(probes.shape[0]):
        np.maximum.at(out[row], index.person, sims[row])
    return out


def score_mean(index: GalleryIndex, probes: np.ndarray) -> np.ndarray:
    templates, _ = _template(index, np.ones(index.person.shape, dtype=bool))
    return probes @ templates.T


def score_blend(index: GalleryIndex, probes: np.ndarray, weight: float = BLEND_WEIGHT) -> np.ndarray:
    originals, has_original = _template(index, index.original)
    views, has_views = _template(index, ~index.original)
    s_orig, s_views = probes @ originals.T, probes @ views.T
    out = np.where(has_views[None, :], weight * s_orig + (1.0 - weight) * s_views, s_orig)
    return np.where(has_original[None, :], out, s_views).astype(np.float32)


def score_top2(index: GalleryIndex, probes: np.ndarray) -> np.ndarray:
    """Mean of each person's two best similarities (the best alone for a person with one)."""
    sims = probes @ index.vectors.T
    out = np.full((probes.shape[0], index.num_persons), -np.inf, dtype=np.float32)
    if sims.shape[1] == 0:
        return out
    order = np.argsort(index.person, kind="stable")
    person = index.person[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(person)) + 1])
    counts = np.diff(np.concatenate([starts, [len(person)]]))
    grouped = sims[:, order]  # (q, n), each person's similarities side by side
    best = np.maximum.reduceat(grouped, starts, axis=1)
    is_best = grouped == np.repeat(best, counts, axis=1)
    second = np.maximum.reduceat(np.where(is_best, -np.inf, grouped), starts, axis=1)
    tied = np.add.reduceat(is_best, starts, axis=1) >= 2  # the best twice: it is also the second
    second = np.where(tied, best, second)
    out[:, person[starts]] = np.where(counts[None, :] == 1, best, (best + second) / 2)
    return out


SCORERS: dict[str, Callable[[GalleryIndex, np.ndarray], np.ndarray]] = {
    "max": score_max,
    "mean": score_mean,
    "blend": score_blend,
    "top2": score_top2,
}


def person_scores(rule: str, index: GalleryIndex, probes: np.ndarray, views_offset: float = 0.0) -> np.ndarray:
    """(q, P) scores of ``probes`` against every person under ``rule``, less ``views_offset``
    for the persons who have generated views."""
    if rule not in SCORERS:
        raise ValueError(f"unknown matching rule {rule!r}; rules: {', '.join(RULES)}")
    probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
    if index.num_persons == 0:
        return np.zeros((probes.shape[0], 0), dtype=np.float32)
    scores = SCORERS[rule](index, probes)
    if views_offset:
        scores = scores - np.float32(views_offset) * index.has_views[None, :]
    return scores

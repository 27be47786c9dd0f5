"""The enrollment/probe protocol of ``core eval`` and ``core calibrate``.

Each identity enrolls its first photo (plus, depending on the condition, views generated from it)
and probes with the rest.
- Closed set: every identity is enrolled; rank-1 over all probes.
- Open set: every other identity (even positions in name order) is enrolled; probes of enrolled
  identities are mated searches, probes of the others are impostor (non-mated) searches.
  ``swapped=True`` enrolls the odd positions instead (calibration pools both halves).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.evaluation.metrics import SearchOutcome
from core.search.matching import Matcher
from core.settings import MatchMode
from core.store.records import GalleryMatrix

# identity -> (k, dim) gallery vectors; identity -> list of probe vectors (None: no face)
GalleryVectors = dict[str, np.ndarray]
ProbeVectors = dict[str, list[np.ndarray | None]]


@dataclass(frozen=True)
class Searches:
    mated: list[SearchOutcome]
    impostor: list[SearchOutcome]


def _matrix(gallery: GalleryVectors, enrolled: list[str]) -> tuple[GalleryMatrix, dict[int, str]]:
    ids = {name: i for i, name in enumerate(enrolled)}
    rows = [(ids[name], v) for name in enrolled for v in gallery.get(name, np.zeros((0, 0)))]
    names = {i: name for name, i in ids.items()}
    if not rows:
        return GalleryMatrix("eval", np.zeros((0, 0), np.float32), np.zeros(0, np.int64), [], names), names
    return (
        GalleryMatrix(
            model="eval",
            vectors=np.stack([v for _, v in rows]).astype(np.float32),
            person_ids=np.array([i for i, _ in rows], dtype=np.int64),
            sources=["?"] * len(rows),
            names=names,
        ),
        names,
    )


def search(
    gallery: GalleryVectors,
    probes: ProbeVectors,
    enrolled: list[str],
    probing: list[str],
    mode: MatchMode,
) -> list[SearchOutcome]:
    matrix, names = _matrix(gallery, enrolled)
    matcher = Matcher(matrix, mode=mode)
    outcomes = []
    for identity in probing:
        vectors = probes.get(identity, [])
        found = [v for v in vectors if v is not None]
        scores = matcher.person_scores(np.stack(found)) if found and matrix.size else None
        row = 0
        for vector in vectors:
            if vector is None or scores is None:
                outcomes.append(SearchOutcome(float("-inf"), False))
                continue
            person_scores = scores[row]
            row += 1
            best = int(np.argmax(person_scores))
            top_name = names[int(matcher.person_ids[best])]
            outcomes.append(SearchOutcome(float(person_scores[best]), top_name == identity))
    return outcomes


def closed_set(
    gallery: GalleryVectors, probes: ProbeVectors, identities: list[str], mode: MatchMode
) -> list[SearchOutcome]:
    return search(gallery, probes, identities, identities, mode)


def open_set(
    gallery: GalleryVectors,
    probes: ProbeVectors,
    identities: list[str],
    mode: MatchMode,
    swapped: bool = False,
) -> Searches:
    enrolled = identities[1::2] if swapped else identities[0::2]
    others = identities[0::2] if swapped else identities[1::2]
    return Searches(
        mated=search(gallery, probes, enrolled, enrolled, mode),
        impostor=search(gallery, probes, enrolled, others, mode),
    )

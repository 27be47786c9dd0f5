"""Faces enrolled twice: pairs of persons of the gallery whose photos identify each other.

Enrollment and import refuse a face already in the gallery unless forced, but a gallery can
still hold one twice: persons enrolled with ``force`` (twins, or a mistake), imported with
``--no-face-check``, enrolled through the seed document's ``/api/enroll`` (which never
checks), or before the check existed. ``manyangles duplicates`` searches every original photo
of every person in the gallery at the identification threshold in use (matching rule and views
offset included), as an enrollment of that photo would be searched, and lists each pair of
persons once, with the higher of its scores: an admin then deletes one, or keeps twins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from core.search import GallerySearch
from core.store.gallery import GalleryStore
from core.store.models import embeddings_after

log = logging.getLogger(__name__)
PROBES_PER_CALL = 64  # original photos scored at once: bounds the score matrix of an exact search


@dataclass(frozen=True)
class DuplicatePair:
    """Two persons one of whose photos is identified as the other (``person_id`` < ``other_id``)."""

    person_id: int
    name: str
    other_id: int
    other: str
    score: float  # the highest score of a photo of one of them for the other
    threshold: float


def find_duplicates(
    store: GalleryStore,
    model: str,
    rule: str,
    threshold: float,
    offset: float,
    top_k: int = 3,
    exact_max: int = 50_000,
) -> list[DuplicatePair]:
    """Every pair, highest score first (over ``exact_max`` embeddings: the HNSW search)."""
    ids, persons, originals, vectors = embeddings_after(store, model, 0)
    search = GallerySearch(model, exact_max)
    search.add(ids, persons, originals, vectors)
    probes, owners = vectors[originals], persons[originals]
    best: dict[tuple[int, int], float] = {}
    for start in range(0, len(probes), PROBES_PER_CALL):
        chunk = slice(start, start + PROBES_PER_CALL)
        for owner, hits in zip(owners[chunk].tolist(), search.search(probes[chunk], top_k + 1, rule, offset)):
            for hit in hits:
                if hit.person_id != owner and hit.score >= threshold:
                    pair = (min(owner, hit.person_id), max(owner, hit.person_id))
                    best[pair] = max(best.get(pair, -np.inf), float(hit.score))
    names = store.person_names({p for pair in best for p in pair})
    found = [
        DuplicatePair(a, names.get(a, "?"), b, names.get(b, "?"), round(score, 6), threshold)
        for (a, b), score in best.items()
    ]
    log.info(
        "searched %d original photos of %d persons: %d pair(s)", len(probes), len(set(owners.tolist())), len(found)
    )
    return sorted(found, key=lambda d: (-d.score, d.person_id, d.other_id))

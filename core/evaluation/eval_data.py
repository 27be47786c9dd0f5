"""The vectors of a labelled folder, and the galleries and searches the studies build from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.search.rules import GalleryIndex, person_scores


@dataclass(frozen=True, eq=False)
class EvalData:
    """Vectors of a labelled folder: one original per identity, its views, and the probes."""

    identities: list[str]
    originals: np.ndarray  # (I, d)
    views: list[dict[str, np.ndarray]]  # per identity: view name -> vector (gate-accepted only)
    probe_identity: np.ndarray  # (Q,) identity index of each probe
    probe_vectors: np.ndarray  # (Q, d); rows of probes without a face are zeros
    probe_found: np.ndarray  # (Q,) bool: a face was found

    def subset(self, identities: np.ndarray) -> EvalData:
        """The same data restricted to ``identities`` (indices), renumbered in ascending order."""
        keep = np.sort(np.asarray(identities, dtype=np.int64))
        renumber = np.full(len(self.identities), -1, dtype=np.int64)
        renumber[keep] = np.arange(len(keep))
        probes = np.isin(self.probe_identity, keep)
        return EvalData(
            [self.identities[i] for i in keep],
            self.originals[keep],
            [self.views[i] for i in keep],
            renumber[self.probe_identity[probes]],
            self.probe_vectors[probes],
            self.probe_found[probes],
        )


def gallery_index(
    data: EvalData, enrolled: np.ndarray, views: tuple[str, ...] | None, with_views: np.ndarray | None = None
) -> GalleryIndex:
    """Persons 0..len(enrolled)-1 in ``enrolled`` order; ``with_views`` limits who gets views."""
    vectors, person, original = [], [], []
    for p, identity in enumerate(enrolled):
        vectors.append(data.originals[identity])
        person.append(p)
        original.append(True)
        if views and (with_views is None or with_views[p]):
            for name in views:
                vector = data.views[identity].get(name)
                if vector is not None:
                    vectors.append(vector)
                    person.append(p)
                    original.append(False)
    return GalleryIndex.build(np.stack(vectors), np.array(person), np.array(original))


def top_searches(
    data: EvalData, index: GalleryIndex, enrolled: np.ndarray, rule: str, views_offset: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per probe: top score (-inf without a face), whether the top person is the probe's own
    identity, and the top person's index."""
    scores = person_scores(rule, index, data.probe_vectors, views_offset)
    top = np.argmax(scores, axis=1)
    top_score = scores[np.arange(len(top)), top].astype(np.float64)
    top_score[~data.probe_found] = -np.inf
    own = enrolled[top] == data.probe_identity
    return top_score, own & data.probe_found, top

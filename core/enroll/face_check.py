"""The duplicate-face check of an enrollment: the error it answers, and its second pass under
the store's write lock (core/enroll/enroller.py runs the first, against the in-memory search)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.errors import AlreadyEnrolled, ManyAnglesError, MatchesAnotherPerson
from core.search.matching import Candidate
from core.search.rules import GalleryIndex, person_scores
from core.store.db import Connection
from core.store.gallery import GalleryStore
from core.store.model_versions import read_embeddings_after


@dataclass(frozen=True)
class DuplicateCheck:
    """What a face check at enrollment rested on: the model, threshold and views offset, and
    the newest embedding id its search saw."""

    model: str
    threshold: float
    offset: float
    seen: int


FORCE = "force=true (--force on the command line)"  # the messages reach HTTP clients and the CLI alike


def same_face_error(
    store: GalleryStore, person_id: int | None, top: Candidate, threshold: float, sha256: str
) -> ManyAnglesError:
    """A new person's face (``person_id`` None) identified as ``top``: already enrolled; a photo
    added to ``person_id`` identified as ``top`` and not as them: another person."""
    who: dict[str, object] = {"person_id": top.person_id, "name": top.name, "score": top.score}
    who["threshold"] = threshold
    found = f"this photo is identified as person {top.person_id} (score {top.score:.4f} >= {threshold:.4f})"
    if person_id is None:
        same = store.find_image(top.person_id, sha256, "original") is not None
        then = "; " if same else "; add the photo to that person, or "
        return AlreadyEnrolled(
            f"{found}, already enrolled{' with this very photo' if same else ''}{then}enroll a new person "
            f"anyway with {FORCE}; nothing was stored",
            {**who, "same_photo": same},
        )
    return MatchesAnotherPerson(
        f"{found}, not as person {person_id}; add it anyway with {FORCE}; nothing was stored", who
    )


def recheck_guard(
    store: GalleryStore, rule: str, checked: DuplicateCheck, vector: np.ndarray, sha256: str
) -> Callable[[Connection], None]:
    """The check again, under the store's write lock (``GalleryStore.add_person``'s guard),
    against the embeddings that committed after the search: two enrollments of one face at
    once each searched a gallery without the other. Scores a person by their new entries only
    (a new person has no others)."""

    def guard(conn: Connection) -> None:
        ids, persons, originals, vectors = read_embeddings_after(conn, checked.model, checked.seen)
        if not ids.size:
            return
        owners, slot = np.unique(persons, return_inverse=True)
        index = GalleryIndex.build(vectors, slot, originals)
        scores = person_scores(rule, index, vector[None], checked.offset)[0]
        best = int(np.argmax(scores))
        if scores[best] < checked.threshold:
            return
        owner = int(owners[best])
        name = store.person_names({owner}).get(owner, "?")
        raise same_face_error(store, None, Candidate(owner, name, float(scores[best])), checked.threshold, sha256)

    return guard

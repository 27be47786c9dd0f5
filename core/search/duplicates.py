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
import time
from collections.abc import Callable

import numpy as np

from core.search.index import GallerySearch
from core.store.audits import AuditSearch, save_audit
from core.store.gallery import GalleryStore
from core.store.jobs import finish_job, start_job, update_job
from core.store.model_versions import embeddings_after
from core.store.records import DuplicatePair

log = logging.getLogger(__name__)
PROBES_PER_CALL = 64  # original photos scored at once: bounds the score matrix of an exact search
PROGRESS_EVERY_S = 1.0  # a running job's progress is written at most this often


def find_duplicates(
    store: GalleryStore,
    model: str,
    rule: str,
    threshold: float,
    offset: float,
    top_k: int = 3,
    exact_max: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> list[DuplicatePair]:
    """Every pair, highest score first (over ``exact_max`` embeddings: the HNSW search).
    ``progress(photos searched, photos to search)`` is called before the search index is built
    and after each chunk of photos."""
    ids, persons, originals, vectors = embeddings_after(store, model, 0)
    if progress is not None:
        progress(0, int(originals.sum()))
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
        if progress is not None:
            progress(min(start + PROBES_PER_CALL, len(probes)), len(probes))
    names = store.person_names({p for pair in best for p in pair})
    found = [
        DuplicatePair(a, names.get(a, "?"), b, names.get(b, "?"), round(score, 6), threshold)
        for (a, b), score in best.items()
    ]
    log.info(
        "searched %d original photos of %d persons: %d pair(s)", len(probes), len(set(owners.tolist())), len(found)
    )
    return sorted(found, key=lambda d: (-d.score, d.person_id, d.other_id))


class _JobProgress:
    """A running job's progress in the ``jobs`` table, written at most every PROGRESS_EVERY_S."""

    def __init__(self, store: GalleryStore, job_id: int) -> None:
        self.store, self.job_id, self.photos, self._written = store, job_id, 0, 0.0

    def __call__(self, done: int, total: int) -> None:
        self.photos = total
        now = time.monotonic()
        if done in (0, total) or now - self._written >= PROGRESS_EVERY_S:
            self._written = now
            message = "building the search index" if done == 0 else "searching"
            update_job(self.store, self.job_id, done, 0, message, total)


def audit_duplicates(
    store: GalleryStore, search: AuditSearch, job_id: int | None = None, exact_max: int = 50_000
) -> list[DuplicatePair]:
    """``find_duplicates`` as a job: its progress in ``jobs``, its pairs stored for the API and the
    console (core/store/audits.py). ``job_id``: a job the API created for this process to claim;
    None starts one (refused while another search for duplicates runs)."""
    job_id = start_job(store, "duplicates", search.model, 0, job_id)
    progress = _JobProgress(store, job_id)
    try:
        pairs = find_duplicates(
            store, search.model, search.match_mode, search.threshold, search.views_offset, 3, exact_max, progress
        )
        save_audit(store, job_id, search, progress.photos, pairs)
    except BaseException as exc:
        finish_job(store, job_id, False, f"failed: {type(exc).__name__}: {exc}")
        raise
    return pairs

"""1:N search over one model's gallery, held in memory and refreshed incrementally.

The vectors live in one contiguous float32 matrix (rows appended on enroll, a removed row filled
with the last one), keyed by embedding id. ``refresh`` reads only what changed since the last call:
embeddings with a larger id, and the ids recorded in ``embedding_removals`` (a trigger fills it on
every delete, cascades included; core/store/removals.py). No request reloads the gallery, unless
the index was idle for longer than the removal log keeps its rows (a day).

Up to ``exact_max`` vectors a query scores every person exactly (the matching rules of
core/search/rules.py). Above it an HNSW index (usearch) over one template per person (the
normalised sum of their embeddings, kept up to date as they change) proposes the nearest persons;
those are then scored exactly, with all their embeddings, under the matching rule (exact re-rank),
so ``max``, ``top2`` or ``mean`` still see each candidate whole. One key per person instead of one
per embedding: a gallery with views indexes several times fewer vectors, and the candidate list
holds distinct persons.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.search.rules import GalleryIndex, person_scores
from core.store.gallery import GalleryStore
from core.store.model_versions import embeddings_after
from core.store.removals import ChangeMarks, Removals, removed_embeddings

log = logging.getLogger(__name__)


SERIAL_HEAD = 10_000  # templates inserted one thread at a time before the parallel build


@dataclass(frozen=True)
class AnnParams:
    connectivity: int = 32  # HNSW graph degree (16: recall@1 0.95 at 1M x 512-D, BENCHMARKS.md)
    expansion_add: int = 128
    expansion_search: int = 0  # 0: by dimension, see ``search_width``
    candidates: int = 32  # nearest persons re-scored exactly (at least 8 x top_k)
    dtype: str = "f16"  # the index's copy of the templates: f32, f16 or i8 (the re-rank is float32)
    # f16 halves the memory the graph walk reads: 1M x 128-D 1.28 ms vs 2.69 ms at the same recall
    threads: int = 0  # 0: every core (index build)

    def search_width(self, dim: int) -> int:
        """HNSW expansion at search time: wider for wider vectors. At 1M vectors (BENCHMARKS.md)
        128-D reached recall@1 1.000 at 128 and 512-D needed 256 (0.98 at 128)."""
        return self.expansion_search or max(128, dim // 2)


@dataclass(frozen=True)
class Hit:
    person_id: int
    score: float


class _IndexBuild(threading.Thread):
    """Builds the HNSW index from a snapshot of the templates, off the request path."""

    def __init__(self, model: str, dim: int, ann: AnnParams, person_ids: np.ndarray, templates: np.ndarray) -> None:
        super().__init__(name=f"search-index-{model}", daemon=True)
        self.args = (model, dim, ann, person_ids, templates)
        self.index: Any = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.index = _new_index(*self.args)
        except Exception as exc:  # noqa: BLE001 - reported by the owner when it looks
            self.error = exc


class GallerySearch:
    """Not thread-safe by itself: the service holds a lock around refresh + search.

    With ``background``, crossing ``exact_max`` starts the index build on a thread and searches
    stay exact until it is ready (a restarted service answers at once instead of building a
    million-vector index inside the first request); templates that change meanwhile are applied
    when the index is installed, at the next refresh or search."""

    def __init__(
        self, model: str, exact_max: int = 50_000, ann: AnnParams | None = None, background: bool = False
    ) -> None:
        self.model = model
        self.exact_max = exact_max
        self.ann = ann or AnnParams()
        self.background = background
        self._reset()

    def _reset(self) -> None:
        """Hold nothing: the next refresh loads the whole gallery."""
        self._build: _IndexBuild | None = None
        self._dirty: set[int] = set()  # persons changed while the index was being built
        self.dim = 0
        self._n = 0
        self._vectors = np.zeros((0, 0), np.float32)
        self._ids = np.zeros(0, np.int64)
        self._person = np.zeros(0, np.int64)
        self._original = np.zeros(0, bool)
        self._row = np.full(0, -1, np.int64)  # embedding id -> row (-1: not held); ids are dense
        self._by_person: dict[int, set[int]] = {}  # person id -> embedding ids
        self._index: Any = None  # usearch.index.Index above exact_max
        self._last_id = 0
        self._last_removal = 0
        self._changes_seen: int | None = None  # the store's change counter at the last refresh
        self._exact: tuple[np.ndarray, GalleryIndex] | None = None  # cached for the exact path

    @property
    def size(self) -> int:
        return self._n

    @property
    def num_persons(self) -> int:
        """Persons with at least one vector here: those a search can name."""
        return len(self._by_person)

    @property
    def last_id(self) -> int:
        """The newest embedding id this search holds: what a search saw of the store."""
        return self._last_id

    @property
    def changes_seen(self) -> int | None:
        """The store's change counter (core/store/changes.py) at the last refresh (None: never)."""
        return self._changes_seen

    @property
    def approximate(self) -> bool:
        return self._index is not None

    # --- keeping up with the store ----------------------------------------------------------
    def up_to(self, marks: ChangeMarks) -> bool:
        """Whether this search has applied exactly what the store held at ``marks``."""
        return marks.changes == self._changes_seen and marks.last == self._last_removal

    def refresh(self, store: GalleryStore, marks: ChangeMarks | None = None) -> tuple[int, int]:
        """Apply what changed in the store since the last refresh; returns (added, removed).
        ``marks``: the store's, read after the caller's request began; when this search is up to
        them, nothing is read (what a client saw answered before it asked is in them)."""
        self._install_built()
        if marks is not None and self.up_to(marks):
            return 0, 0
        if marks is not None and marks.last == self._last_removal:  # no removal since: additions to read
            removals = Removals(marks.last, [], marks.floor, marks.changes)
        else:
            removals = removed_embeddings(store, self.model, self._last_removal)
        if removals.floor > self._last_removal and (self._last_id or self._last_removal):
            # removals this index never saw were pruned from the log: start again from the store
            log.info(
                "search %s: behind the pruned removal log (%d < %d), reloading",
                self.model,
                self._last_removal,
                removals.floor,
            )
            self._reset()
        added = 0
        if removals.changes != self._changes_seen:  # unmoved: no embedding was added (one round trip less)
            ids, persons, originals, vectors = embeddings_after(store, self.model, self._last_id)
            self.add(ids, persons, originals, vectors)
            added = int(ids.size)
            if ids.size:
                self._last_id = int(ids.max())
        removed = self.remove(removals.ids)
        self._last_removal = removals.last
        self._changes_seen = removals.changes
        return added, removed

    def add(self, ids: np.ndarray, persons: np.ndarray, originals: np.ndarray, vectors: np.ndarray) -> None:
        if ids.size == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._grow_ids(int(ids.max()) + 1)
        fresh = self._row[ids] < 0
        ids, persons, originals, vectors = ids[fresh], persons[fresh], originals[fresh], vectors[fresh]
        if not self.dim:
            self.dim = int(vectors.shape[1])
            self._vectors = np.zeros((0, self.dim), np.float32)
        self._reserve(self._n + ids.size)
        start, stop = self._n, self._n + ids.size
        self._vectors[start:stop] = vectors
        self._ids[start:stop] = ids
        self._person[start:stop] = persons
        self._original[start:stop] = originals
        self._row[ids] = np.arange(start, stop)
        for eid, pid in zip(ids.tolist(), persons.tolist()):
            self._by_person.setdefault(pid, set()).add(eid)
        self._n = stop
        self._exact = None
        if self._index is not None:
            self._update_templates(np.unique(persons).tolist())
        elif self._build is not None:
            self._dirty.update(np.unique(persons).tolist())
        elif self._n > self.exact_max:
            self._build_index()

    def remove(self, ids: list[int] | np.ndarray) -> int:
        removed = [int(i) for i in ids if 0 <= int(i) < self._row.shape[0] and self._row[int(i)] >= 0]
        touched = set()
        for eid in removed:
            row = int(self._row[eid])
            self._row[eid] = -1
            last = self._n - 1
            pid = int(self._person[row])
            touched.add(pid)
            members = self._by_person[pid]
            members.discard(eid)
            if not members:
                del self._by_person[pid]
            if row != last:  # the last row fills the hole
                for array in (self._vectors, self._ids, self._person, self._original):
                    array[row] = array[last]
                self._row[int(self._ids[row])] = row
            self._n = last
        if removed:
            self._exact = None
            if self._index is not None:
                self._update_templates(sorted(touched))
            elif self._build is not None:
                self._dirty.update(touched)
        return len(removed)

    def _grow_ids(self, size: int) -> None:
        if size > self._row.shape[0]:
            grown = np.full(max(size, 2 * self._row.shape[0]), -1, np.int64)
            grown[: self._row.shape[0]] = self._row
            self._row = grown

    def _reserve(self, n: int) -> None:
        capacity = self._ids.shape[0]
        if n <= capacity:
            return
        grown = max(n, capacity + capacity // 4, 1024)  # 1.25x: a million rows of 512-D is 2 GiB
        vectors = np.zeros((grown, self.dim), np.float32)
        vectors[: self._n] = self._vectors[: self._n]  # (0 rows before the first add)
        self._vectors = vectors
        for name in ("_ids", "_person", "_original"):
            old = getattr(self, name)
            new = np.zeros(grown, old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def _build_index(self) -> None:
        """The HNSW index over every person's template (normalised sum of their embeddings)."""
        n = self._n
        person_ids, inverse = np.unique(self._person[:n], return_inverse=True)
        sums = np.zeros((person_ids.size, self.dim), np.float32)
        np.add.at(sums, inverse, self._vectors[:n])
        if self.background:
            self._dirty = set()
            self._build = _IndexBuild(self.model, self.dim, self.ann, person_ids, _unit(sums))
            self._build.start()
            log.info("building the %s search index over %d persons in the background", self.model, person_ids.size)
            return
        self._index = _new_index(self.model, self.dim, self.ann, person_ids, _unit(sums))

    def _install_built(self) -> None:
        """Take a finished background build (and apply what changed while it ran)."""
        build = self._build
        if build is None or build.is_alive():
            return
        self._build = None
        if build.error is not None:
            log.error("building the %s search index failed (searching exactly): %s", self.model, build.error)
            return  # the next add past exact_max tries again
        self._index = build.index
        dirty, self._dirty = sorted(self._dirty), set()
        self._update_templates(dirty)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until a background build (if any) has finished and is installed."""
        if self._build is not None:
            self._build.join(timeout)
        self._install_built()
        return self._build is None

    def _update_templates(self, persons: list[int]) -> None:
        """Re-insert the templates of persons whose embeddings changed (removed when none left)."""
        if not persons:
            return
        self._index.remove(_keys(np.array(persons, np.int64)))
        alive = [pid for pid in persons if pid in self._by_person]
        if alive:
            sums = np.stack([self._vectors[self._row[list(self._by_person[pid])]].sum(axis=0) for pid in alive])
            self._index.add(_keys(np.array(alive, np.int64)), _unit(sums))

    # --- search -----------------------------------------------------------------------------
    def search(self, probes: np.ndarray, top_k: int, rule: str, views_offset: float = 0.0) -> list[list[Hit]]:
        """The ``top_k`` persons for each probe under the matching ``rule`` (persons with views
        scored ``views_offset`` lower: core/search/rules.py), best first."""
        probes = np.atleast_2d(np.asarray(probes, dtype=np.float32))
        self._install_built()
        if self._n == 0:
            return [[] for _ in probes]
        if self._index is None:
            person_ids, index = self._exact_index()
            return [_top(person_ids, row, top_k) for row in person_scores(rule, index, probes, views_offset)]
        count = min(len(self._by_person), max(self.ann.candidates, 8 * top_k))
        found = self._index.search(probes, count)
        keys = np.atleast_2d(found.keys)
        counts = getattr(found, "counts", None)  # one query: Matches, full up to ``count``
        counts = np.full(keys.shape[0], keys.shape[1]) if counts is None else np.atleast_1d(counts)
        out = []
        for probe, row_keys, k in zip(probes, keys, counts):
            persons = [
                pid for pid in np.asarray(row_keys[:k], np.uint64).astype(np.int64).tolist() if pid in self._by_person
            ]
            person_ids, index = self._subset(persons)
            out.append(_top(person_ids, person_scores(rule, index, probe[None], views_offset)[0], top_k))
        return out

    def person_score(self, probe: np.ndarray, person_id: int, rule: str, views_offset: float = 0.0) -> float | None:
        """``probe``'s score against one person under the matching ``rule`` (less ``views_offset``
        when they have views), as a search would rank them; None: no vector of theirs here."""
        if person_id not in self._by_person:
            return None
        _, index = self._subset([person_id])
        probe = np.asarray(probe, dtype=np.float32).reshape(1, -1)
        return float(person_scores(rule, index, probe, views_offset)[0, 0])

    def _exact_index(self) -> tuple[np.ndarray, GalleryIndex]:
        if self._exact is None:
            n = self._n
            person_ids, inverse = np.unique(self._person[:n], return_inverse=True)
            self._exact = (person_ids, GalleryIndex.build(self._vectors[:n], inverse, self._original[:n]))
        return self._exact

    def _subset(self, persons: list[int]) -> tuple[np.ndarray, GalleryIndex]:
        rows, inverse = [], []
        for position, pid in enumerate(persons):
            members = self._row[list(self._by_person[pid])].tolist()
            rows.extend(members)
            inverse.extend([position] * len(members))
        take = np.array(rows, dtype=np.int64)
        return np.array(persons, dtype=np.int64), GalleryIndex.build(
            self._vectors[take], np.array(inverse, dtype=np.int64), self._original[take]
        )


def _new_index(model: str, dim: int, a: AnnParams, person_ids: np.ndarray, templates: np.ndarray) -> Any:
    from usearch.index import Index

    started = time.perf_counter()
    index = Index(
        ndim=dim,
        metric="ip",
        dtype=a.dtype,
        connectivity=a.connectivity,
        expansion_add=a.expansion_add,
        expansion_search=a.search_width(dim),
    )
    keys = _keys(person_ids)
    # The first templates one thread at a time: parallel inserts into a graph of a few nodes
    # leave it poorly connected (recall@1 0.98 instead of 1.000 on 600 persons, tests/unit/test_search.py).
    head = min(len(keys), SERIAL_HEAD)
    index.add(keys[:head], templates[:head], threads=1)
    if head < len(keys):
        index.add(keys[head:], templates[head:], threads=a.threads)
    log.info("built the %s search index over %d persons in %.1f s", model, len(keys), time.perf_counter() - started)
    return index


def _keys(person_ids: np.ndarray) -> np.ndarray:
    return np.asarray(person_ids, np.int64).astype(np.uint64)  # usearch keys (a negative id wraps)


def _unit(sums: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return np.ascontiguousarray(sums / np.maximum(norms, 1e-12), dtype=np.float32)


def _top(person_ids: np.ndarray, scores: np.ndarray, k: int) -> list[Hit]:
    k = min(k, scores.shape[0])
    if k == 0:
        return []
    best = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
    best = best[np.argsort(-scores[best], kind="stable")]
    return [Hit(int(person_ids[i]), float(scores[i])) for i in best]

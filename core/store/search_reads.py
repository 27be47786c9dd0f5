"""What an identify reads of the store before its search, in one statement.

The active-model pointer (which model analyses the photo), that model's calibrations (the
search's threshold and views offset, core/search/thresholds.py) and the change marks (whether the
in-memory search has anything to catch up on, core/store/removals.py): three reads of a few rows
each. On SQLite each costs ~20 us; on PostgreSQL each is a round trip and a pooled connection's
checkout (0.15-0.22 ms measured after an analysis), so they are one statement (BENCHMARKS.md).

``ReadsAhead`` makes it once per request, when first asked: by the analyzer when it needs the
pointer first (in process, or the API replica's own copy of the model: serve/near.py), else by
the service after the photo was sent to the Embedder (the read overlaps its work).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.errors import ManyAnglesError
from core.store.gallery import GalleryStore
from core.store.model_versions import MODEL_COLUMNS, ModelRecord, model_record
from core.store.records import ModelThresholds, StoredThreshold
from core.store.removals import MARKS_COLUMNS, ChangeMarks, marks_of, read_marks
from core.store.threshold_rows import THRESHOLD_COLUMNS

log = logging.getLogger(__name__)

_MODEL_WIDTH = len(MODEL_COLUMNS.split(", "))
_SQL = (
    f"SELECT {MODEL_COLUMNS}, {MARKS_COLUMNS}, {', '.join(f't.{c}' for c in THRESHOLD_COLUMNS.split(', '))} "
    "FROM models AS m LEFT JOIN thresholds AS t ON t.model = m.name WHERE m.status = 'active'"
)


@dataclass(frozen=True)
class SearchReads:
    active: ModelRecord | None  # None: a gallery with no active model yet
    thresholds: ModelThresholds | None  # the active model's calibrations (None: no active model)
    marks: ChangeMarks


def read_ahead(store: GalleryStore) -> SearchReads:
    """The active model, its calibrations and the change marks, of one moment: one statement (a
    second one only in a gallery with no active model yet)."""
    with store.reader() as conn:
        rows = conn.execute(_SQL).fetchall()
        if not rows:
            return SearchReads(None, None, read_marks(conn))
    first = rows[0]
    active = model_record((*first[:_MODEL_WIDTH], 0))
    marks = marks_of(*first[_MODEL_WIDTH : _MODEL_WIDTH + 3])
    stored = tuple(StoredThreshold(*r[_MODEL_WIDTH + 3 :]) for r in rows if r[_MODEL_WIDTH + 3] is not None)
    return SearchReads(active, ModelThresholds(active.name, active.name, stored), marks)


class ReadsAhead:
    """``read_ahead`` for one request (one thread), made at most once: the first ``get`` reads,
    later ones answer the same. A failed read answers None (logged), and is not tried again:
    whoever needed it reads what it needs itself (the pointer, the thresholds, the marks)."""

    def __init__(self, store: GalleryStore) -> None:
        self._store = store
        self._done = False
        self._reads: SearchReads | None = None

    def get(self) -> SearchReads | None:
        if not self._done:
            self._done = True
            try:
                self._reads = read_ahead(self._store)
            except ManyAnglesError:  # the store unreachable: read again later, where it is needed
                log.debug("the reads ahead of a search failed", exc_info=True)
            except Exception:  # not a store outage: a fault to be seen, though the request goes on
                log.warning("the reads ahead of a search failed; reading them one by one", exc_info=True)
        return self._reads

    def active(self) -> ModelRecord | None:
        """The active model as read (None: not read, or a gallery with none yet)."""
        reads = self.get()
        return reads.active if reads is not None else None

"""What an identify reads of the store before its search, in one statement.

The active-model pointer (which model analyses the photo), that model's calibrations (the
search's threshold and views offset, core/search/thresholds.py) and the change marks (whether the
in-memory search has anything to catch up on, core/store/removals.py): three reads of a few rows
each. On SQLite each costs ~20 us; on PostgreSQL each is a round trip and a pooled connection's
checkout (0.15-0.22 ms measured after an analysis), so they are one statement, read before the
photo is analysed.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.store.gallery import GalleryStore
from core.store.model_versions import MODEL_COLUMNS, ModelRecord, model_record
from core.store.records import ModelThresholds, StoredThreshold
from core.store.removals import MARKS_COLUMNS, ChangeMarks, marks_of, read_marks
from core.store.threshold_rows import THRESHOLD_COLUMNS

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

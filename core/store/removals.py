"""The removal log: which embeddings were deleted, for the in-memory search indexes to follow.

A trigger records every deleted embedding (``embedding_removals``: sequence number, id, model,
time). Each search index (core/search/index.py) remembers the last sequence number it applied and reads
only what came after. The log is pruned: rows older than ``KEEP_S`` go, and ``removals_floor``
records the highest sequence number pruned; an index that last looked before the floor may have
missed removals, so it reloads the gallery from scratch instead (correct, only slower). A replica
that serves requests refreshes on every one, so only one idle for longer than ``KEEP_S`` reloads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from core.store.db import Connection
from core.store.gallery import GalleryStore

log = logging.getLogger(__name__)

KEEP_S = 24 * 3600.0


@dataclass(frozen=True)
class Removals:
    last: int  # the log's newest sequence number (never below the floor)
    ids: list[int]  # the model's embedding ids removed after the reader's position
    floor: int  # removals up to this sequence number were pruned from the log
    # the change counter (core/store/changes.py: every insert, update or delete of a person, an
    # image or an embedding moves it) when the log was read: unmoved, nothing was added either
    changes: int = 0


@dataclass(frozen=True)
class ChangeMarks:
    """Where the removal log and the change counter stood at one read: a search that applied
    exactly this much has nothing to catch up on (core/search/index.py, ``GallerySearch.up_to``)."""

    last: int  # the log's newest sequence number (never below the floor)
    floor: int
    changes: int


# the marks as three columns of a SELECT (core/store/search_reads.py reads them with more)
MARKS_COLUMNS = (
    "(SELECT value FROM store_meta WHERE key = 'removals_floor'), "
    "(SELECT COALESCE(MAX(seq), 0) FROM embedding_removals), "
    "(SELECT value FROM store_meta WHERE key = 'change_seq')"
)


def marks_of(floor: Any, newest: Any, changes: Any) -> ChangeMarks:
    """The marks from MARKS_COLUMNS' three values."""
    return ChangeMarks(max(int(floor), int(newest)), int(floor), int(changes))


def read_marks(conn: Connection) -> ChangeMarks:
    return marks_of(*conn.execute(f"SELECT {MARKS_COLUMNS}").fetchone())


def removed_embeddings(store: GalleryStore, model: str, after_seq: int) -> Removals:
    """What ``model`` lost after sequence number ``after_seq``, and the change counter."""
    with store.reader() as conn:
        marks = read_marks(conn)
        if marks.last <= after_seq:
            return Removals(marks.last, [], marks.floor, marks.changes)
        ids = conn.execute(
            "SELECT embedding_id FROM embedding_removals WHERE seq > ? AND seq <= ? AND model = ?",
            (after_seq, marks.last, model),
        ).fetchall()
    return Removals(marks.last, [int(r[0]) for r in ids], marks.floor, marks.changes)


def prune_removals(store: GalleryStore, keep_s: float = KEEP_S, now: float | None = None) -> int:
    """Drop the log's rows older than ``keep_s`` (a prefix in sequence order) and raise the
    floor to the last one dropped; returns how many rows went."""
    cutoff = int((time.time() if now is None else now) - keep_s)
    with store.write_lock() as conn:
        row = conn.execute("SELECT MAX(seq) FROM embedding_removals WHERE removed_at < ?", (cutoff,)).fetchone()
        if row is None or row[0] is None:
            return 0
        upto = int(row[0])
        dropped = conn.execute("DELETE FROM embedding_removals WHERE seq <= ?", (upto,)).rowcount
        conn.execute("UPDATE store_meta SET value = ? WHERE key = 'removals_floor' AND value < ?", (upto, upto))
    if dropped:
        log.info("removal log: pruned %d row(s) older than %.0f h (floor now %d)", dropped, keep_s / 3600, upto)
    return int(dropped)

"""Small helpers shared by the store's modules."""

from __future__ import annotations

from datetime import UTC, datetime

from core.store.db import Cursor

MAX_ROW_ID = 2**63 - 1  # SQLite's largest INTEGER: a larger id cannot be a row (and cannot be bound)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def rowid(cursor: Cursor) -> int:
    """The id of the row an ``INSERT ... RETURNING id`` just wrote."""
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError("INSERT wrote no row")
    return int(row[0])

"""Small helpers shared by the store's modules."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

MAX_ROW_ID = 2**63 - 1  # SQLite's largest INTEGER: a larger id cannot be a row (and cannot be bound)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def rowid(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just wrote."""
    if cursor.lastrowid is None:
        raise RuntimeError("INSERT wrote no row")
    return int(cursor.lastrowid)

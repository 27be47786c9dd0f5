"""Small helpers shared by the store's modules."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def rowid(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just wrote."""
    if cursor.lastrowid is None:
        raise RuntimeError("INSERT wrote no row")
    return int(cursor.lastrowid)

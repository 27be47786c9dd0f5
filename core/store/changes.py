"""Which persons changed since a client's snapshot (schema 10's change log).

Every insert, update or delete of a person, image or embedding takes the next number of a
counter (``store_meta.change_seq``) and records it against the person (``person_changes``: one
row per person, their latest number). A snapshot taken at number ``n`` is brought up to date by
re-reading the rows of the persons recorded above ``n``: a handful of persons instead of a
million rows. A deleted person's row is erased with them (nothing in the store names them
after an erasure); the number of the latest deletion (``change_deleted``) tells a client that
persons went, and it drops those whose id is no longer in the persons table.

A token is ``EPOCH-SEQ``: the epoch is a random value of the store (a restore draws a new one),
so a token from another copy of the gallery, or one ahead of the store, is refused
(``ChangesUnavailable``) rather than answered with a wrong list.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from core.errors import ChangesUnavailable, InvalidInput, StoreSchemaError
from core.store.db import Connection, Snapshots
from core.store.snapshot import STAMP_SQL, format_stamp

MAX_CHANGED = 10_000
_TOKEN = re.compile(r"^([0-9a-f]{16})-([0-9]{1,19})$")
_META = "SELECT key, value FROM store_meta WHERE key IN ('change_epoch', 'change_seq', 'change_deleted')"


@dataclass(frozen=True)
class Changes:
    """The persons added or changed after ``since`` (ascending ids), read in one transaction with
    the token and the gallery stamp of that moment; ``deleted``: persons were deleted after
    ``since``. ``complete`` is False when more than ``limit`` changed (``person_ids`` is then
    empty): reading the tables again is cheaper."""

    token: str
    stamp: str
    person_ids: tuple[int, ...]
    deleted: bool
    complete: bool


def _meta(conn: Connection) -> tuple[str, int, int]:
    meta = dict(conn.execute(_META).fetchall())
    if len(meta) != 3:
        raise StoreSchemaError("the gallery has no change log (schema older than 10): open it with ManyAngles")
    epoch = f"{int(meta['change_epoch']) & 0xFFFF_FFFF_FFFF_FFFF:016x}"
    return epoch, int(meta["change_seq"]), int(meta["change_deleted"])


def parse_token(token: str) -> tuple[str, int]:
    match = _TOKEN.match(token.strip())
    if match is None:
        raise InvalidInput(f"since: {token!r} is not a change token (EPOCH-SEQ, as a previous answer gave it)")
    return match.group(1), int(match.group(2))


def changes_since(store: Snapshots, since: str | None = None, limit: int = MAX_CHANGED) -> Changes:
    """The persons changed after the token ``since`` (None: none, only the current token)."""
    wanted = parse_token(since) if since is not None else None
    with store.snapshot() as conn:  # the ids, the token and the stamp of one moment
        epoch, seq, deleted_at = _meta(conn)
        token = f"{epoch}-{seq}"
        stamp = format_stamp(conn.execute(STAMP_SQL).fetchone()[0])
        if wanted is None:
            return Changes(token, stamp, (), False, True)
        if wanted[0] != epoch or wanted[1] > seq:
            raise ChangesUnavailable(
                f"the change token {since} is from another copy of this gallery (restored or replaced): "
                "read the tables again"
            )
        rows = conn.execute(
            "SELECT person_id FROM person_changes WHERE seq > ? ORDER BY person_id LIMIT ?", (wanted[1], limit + 1)
        ).fetchall()
    deleted = deleted_at > wanted[1]
    if len(rows) > limit:
        return Changes(token, stamp, (), deleted, False)
    return Changes(token, stamp, tuple(int(r[0]) for r in rows), deleted, True)


def new_epoch(conn: Connection) -> None:
    """A restored copy is another sequence: tokens of the original are refused, not misread."""
    conn.execute("UPDATE store_meta SET value = ? WHERE key = 'change_epoch'", (secrets.randbits(62),))

"""Who did what to the gallery, over HTTP and on the command line: the access log (table
``access_log``).

One row per action and person concerned: when, which key (its id and name; the service's own
admin key has no id; a ``manyangles`` command is logged as ``command line (USER)``, USER the
account that ran it, no id), what (``ACTIONS``), the person (an identification that found two enrolled
persons writes two rows; one that found nobody, a row with none) and a short detail (counts, a
model, a table: never a name, image bytes or a vector; a person's name is joined when read, so
a renamed person shows their name of now). Written after the action succeeded;
refused requests are not logged here (the service log has them, without keys).

Seeing a face is logged too: ``view``, when a person's stored image is served (the photo or a
view; what the console's Gallery shows). A page shows many thumbnails and is drawn again on every
click, so a key's views of one person are one entry per ``VIEW_WINDOW_S``: the first image seen
names the entry, and the key's later views of that person within the window write nothing.

A grid of persons (the console's Gallery) shows each one's cover photo (their first uploaded
photo) as a small thumbnail; a person nobody opened is not named by it: the covers a key is served
are one ``browse`` entry per ``VIEW_WINDOW_S`` that names no person and counts them (``N cover
thumbnails``: how much of the gallery the key looked through). Only covers are served as
thumbnails, at most 192 px; opening a person (their record, or any image at full size) is their
``view``.

Erasure keeps its promise: a person's id goes from every row when they are deleted
(``ON DELETE SET NULL``), so the log still says that the actions happened, and by which key, but
no row names the person any more. Rows older than the ``access_log_days`` setting are removed.
"""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from core.store.gallery import GalleryStore
from core.store.sqlutil import utc_now

if TYPE_CHECKING:
    from core.settings import Settings

ACTIONS: tuple[str, ...] = (
    "enroll",
    "add_photo",
    "rename",
    "delete_person",
    "delete_image",
    "merge",
    "identify",
    "verify",
    "embed",
    "generate",
    "export",
    "export_gallery",
    "reembed",
    "activate_model",
    "prune_model",
    "duplicates",
    "duplicates_job",
    "backup",  # the command line's own: the whole gallery copied, restored or added to,
    "restore",  # and the keys that reach it
    "import",
    "key_create",
    "key_revoke",
    "calibrate",
    "view",  # a person's record or stored image served: one entry per key and person per VIEW_WINDOW_S
    "browse",  # cover thumbnails of a page of persons served: one entry per key per VIEW_WINDOW_S, no person
)
SERVICE_KEY = "service key"  # the name logged for the service's own admin key (it has no row)
COMMAND_LINE = "command line"  # the name logged for a ``manyangles`` command, with the OS account
PRUNE_EVERY_S = 3600.0
VIEW_WINDOW_S = 900.0  # a key's views of one person within 15 minutes are one entry


@dataclass(frozen=True)
class Caller:
    """Who made a request: a stored key (its id and name) or the service's own key (id None)."""

    key_id: int | None
    key_name: str
    scope: str


@dataclass(frozen=True)
class AccessEntry:
    id: int
    at: str  # UTC, ISO 8601
    key_id: int | None
    key_name: str
    action: str
    person_id: int | None  # None: no one in particular, or a person erased since
    detail: str
    name: str | None = None  # the person's name now, joined when read (the log stores none)


def command_line_caller() -> Caller:
    """Who runs a ``manyangles`` command: the operating-system account (the command line needs no
    key: whoever can run it can read the data dir)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (some containers)
        user = f"uid {os.getuid()}"
    return Caller(None, f"{COMMAND_LINE} ({user})", "admin")


def log_access(
    store: GalleryStore, caller: Caller, action: str, person_ids: Sequence[int] = (), detail: str = ""
) -> None:
    """One row per person in ``person_ids`` (none: one row for no one). A person deleted in the
    meantime is logged as no one."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    now = utc_now()
    targets: Sequence[int | None] = list(dict.fromkeys(person_ids)) or [None]
    rows = [(now, caller.key_id, caller.key_name, action, person, detail) for person in targets]
    with store.write_lock() as conn:
        conn.executemany(
            "INSERT INTO access_log(at, key_id, key_name, action, person_id, detail) "
            "SELECT ?, CAST(? AS BIGINT), ?, ?, (SELECT id FROM persons WHERE id = ?), ?",
            rows,
        )


def log_view(store: GalleryStore, caller: Caller, person_id: int, detail: str, window_s: float = VIEW_WINDOW_S) -> bool:
    """The ``view`` entry of a person's record or image served to ``caller``, unless the caller's last view
    of that person is less than ``window_s`` old; returns whether it wrote one. Looked up first
    without the write lock (a thumbnail grid asks once per image) and again under it."""
    since = (datetime.now(UTC) - timedelta(seconds=window_s)).isoformat(timespec="milliseconds")
    seen = (
        "SELECT 1 FROM access_log WHERE person_id = ? AND action = 'view' AND key_name = ? AND key_id IS NOT DISTINCT FROM ? "
        "AND at >= ? LIMIT 1"
    )
    params = (person_id, caller.key_name, caller.key_id, since)
    with store.reader() as conn:
        if conn.execute(seen, params).fetchone() is not None:
            return False
    with store.write_lock() as conn:
        if conn.execute(seen, params).fetchone() is not None:
            return False
        written = conn.execute(
            "INSERT INTO access_log(at, key_id, key_name, action, person_id, detail) "
            "SELECT ?, CAST(? AS BIGINT), ?, 'view', id, ? FROM persons WHERE id = ?",
            (utc_now(), caller.key_id, caller.key_name, detail, person_id),
        ).rowcount
    return written == 1  # 0: the person was erased meanwhile (nothing to name)


BROWSED = " cover thumbnails"  # a browse entry's detail: how many the key was served in its window


def log_browse(store: GalleryStore, caller: Caller, window_s: float = VIEW_WINDOW_S) -> bool:
    """Count one cover thumbnail served to ``caller`` in their ``browse`` entry of the last
    ``window_s`` (``N cover thumbnails``; no person named), or start one; returns whether it
    started one. The count shows how much of the gallery a key looked through."""
    since = (datetime.now(UTC) - timedelta(seconds=window_s)).isoformat(timespec="milliseconds")
    with store.write_lock() as conn:
        row = conn.execute(
            "SELECT id, detail FROM access_log WHERE action = 'browse' AND key_name = ? AND key_id IS NOT DISTINCT FROM ? AND at >= ? "
            "ORDER BY id DESC LIMIT 1",
            (caller.key_name, caller.key_id, since),
        ).fetchone()
        if row is not None:
            served = int(str(row[1]).split(" ", 1)[0] or 0) + 1
            conn.execute("UPDATE access_log SET detail = ? WHERE id = ?", (f"{served}{BROWSED}", row[0]))
            return False
        conn.execute(
            "INSERT INTO access_log(at, key_id, key_name, action, person_id, detail) VALUES (?, ?, ?, 'browse', NULL, ?)",
            (utc_now(), caller.key_id, caller.key_name, f"1{BROWSED}"),
        )
    return True


def access_page(
    store: GalleryStore,
    limit: int,
    offset: int = 0,
    action: str | None = None,
    person_id: int | None = None,
    key_name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AccessEntry], int]:
    """The newest entries first, ``limit`` from ``offset``, and how many match in all; ``since``
    (at or after) and ``until`` (before) bound the time (a time without an offset is UTC)."""
    clauses: list[str] = []
    params: list[object] = []
    for condition, value in (
        ("action = ?", action),
        ("person_id = ?", person_id),
        ("key_name = ?", key_name),
        ("at >= ?", None if since is None else stored_time(since)),
        ("at < ?", None if until is None else stored_time(until)),
    ):
        if value is not None:
            clauses.append(condition)
            params.append(value)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    with store.reader() as conn:
        total = int(conn.execute(f"SELECT COUNT(*) FROM access_log {where}", params).fetchone()[0])
        rows = conn.execute(
            "SELECT a.id, a.at, a.key_id, a.key_name, a.action, a.person_id, a.detail, p.name "
            f"FROM (SELECT * FROM access_log {where} ORDER BY id DESC LIMIT ? OFFSET ?) a "
            "LEFT JOIN persons p ON p.id = a.person_id ORDER BY a.id DESC",
            [*params, limit, offset],
        ).fetchall()
    return [AccessEntry(*row) for row in rows], total


def stored_time(moment: datetime) -> str:
    """A time as the log stores it (UTC, ISO 8601 to the millisecond), so that the text compares
    in time order; a time without an offset is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def counted(counts: dict[str, int]) -> str:
    """A detail of counts: ``2 images, 12 embeddings``."""
    return ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in counts.items())


def prune_access_log(store: GalleryStore, days: float) -> int:
    """Remove the entries older than ``days``; returns how many."""
    cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="milliseconds")
    with store.write_lock() as conn:
        return int(conn.execute("DELETE FROM access_log WHERE at < ?", (cutoff,)).rowcount)


class AccessLog:
    """The API's writer: logs an action, and removes the entries past their retention at most
    once an hour (``days`` 0 keeps them all)."""

    def __init__(self, store: GalleryStore, days: float) -> None:
        self.store, self.days = store, days
        self._pruned_at: float | None = None

    def record(self, caller: Caller, action: str, person_ids: Sequence[int] = (), detail: str = "") -> None:
        log_access(self.store, caller, action, person_ids, detail)
        self._prune()

    def viewed(self, caller: Caller, person_id: int, detail: str) -> None:
        if log_view(self.store, caller, person_id, detail):
            self._prune()

    def browsed(self, caller: Caller) -> None:
        if log_browse(self.store, caller):
            self._prune()

    def _prune(self) -> None:
        now = time.monotonic()
        if self.days > 0 and (self._pruned_at is None or now - self._pruned_at > PRUNE_EVERY_S):
            self._pruned_at = now
            prune_access_log(self.store, self.days)


def log_command(settings: Settings, action: str, person_ids: Sequence[int] = (), detail: str = "") -> None:
    """The entry of a ``manyangles`` command that succeeded, by the account that ran it (and the
    pruning of the entries past ``access_log_days``)."""
    store = GalleryStore.from_settings(settings)
    try:
        AccessLog(store, settings.access_log_days).record(command_line_caller(), action, person_ids, detail)
    finally:
        store.close()


def log_command_view(settings: Settings, person_id: int, detail: str) -> None:
    """The ``view`` entry of a ``manyangles`` command that showed a person's record, by the
    account that ran it (one per account and person per VIEW_WINDOW_S, as over HTTP)."""
    store = GalleryStore.from_settings(settings)
    try:
        AccessLog(store, settings.access_log_days).viewed(command_line_caller(), person_id, detail)
    finally:
        store.close()

"""Batch jobs' progress in the gallery (the ``jobs`` table): what the status route and the
console's progress bar read. A job whose process died is marked failed by the next one, and by
every read of the API's job routes (``reap_dead_jobs``)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from core.errors import ManyAnglesError
from core.store.db import Connection
from core.store.gallery import GalleryStore
from core.store.sqlutil import rowid, utc_now


@dataclass(frozen=True)
class JobRecord:
    id: int
    kind: str
    model: str
    state: str  # running, done, failed
    total: int
    done: int
    skipped: int
    pid: int | None
    host: str | None
    message: str | None
    started_at: str
    updated_at: str
    finished_at: str | None


_COLUMNS = "id, kind, model, state, total, done, skipped, pid, host, message, started_at, updated_at, finished_at"


OTHER_HOST_STALE_S = 3600.0  # another host's job that wrote no progress for this long is taken as dead


def _alive(pid: int | None, host: str | None, updated_at: str) -> bool:
    if pid is None:
        return False
    if host != socket.gethostname():
        # another machine's process cannot be checked from here: its progress must be recent (a
        # job on a host that died would otherwise refuse every later job of its kind)
        age = (datetime.now(UTC) - datetime.fromisoformat(updated_at)).total_seconds()
        return age < OTHER_HOST_STALE_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunning(ManyAnglesError):
    code = "job_running"
    http_status = 409
    exit_code = 5


def _reap(conn: Connection, now: str) -> int:
    """Running jobs whose process no longer exists are marked failed; how many were."""
    reaped = 0
    running = conn.execute("SELECT id, pid, host, updated_at FROM jobs WHERE state = 'running'").fetchall()
    for job_id, pid, host, updated_at in running:
        if not _alive(pid, host, updated_at):
            reaped += conn.execute(
                "UPDATE jobs SET state = 'failed', message = 'interrupted (its process ended)', finished_at = ? "
                "WHERE id = ?",
                (now, job_id),
            ).rowcount
    return reaped


def reap_dead_jobs(store: GalleryStore) -> int:
    """Mark failed the running jobs whose process has ended (killed, crashed, the host restarted),
    so that a reader sees the truth before the next job of that kind starts; how many were."""
    with store.reader() as conn:
        running = conn.execute("SELECT pid, host, updated_at FROM jobs WHERE state = 'running'").fetchall()
    if all(_alive(pid, host, updated_at) for pid, host, updated_at in running):
        return 0  # the common case: no write
    with store.write_lock() as conn:
        return _reap(conn, utc_now())


def start_job(store: GalleryStore, kind: str, model: str, total: int, job_id: int | None = None) -> int:
    """A new running job (or ``job_id``, created by whoever launched this process, now claimed).

    One job of a kind runs at a time: a second is refused while the first one's process lives."""
    now = utc_now()
    with store.write_lock() as conn:
        _reap(conn, now)
        if job_id is not None:
            conn.execute(
                "UPDATE jobs SET model = ?, total = ?, pid = ?, host = ?, updated_at = ? WHERE id = ?",
                (model, total, os.getpid(), socket.gethostname(), now, job_id),
            )
            return job_id
        running = conn.execute("SELECT id FROM jobs WHERE state = 'running' AND kind = ?", (kind,)).fetchone()
        if running is not None:
            raise JobRunning(f"{kind} job {running[0]} is still running; wait for it (GET /v1/jobs/{running[0]})")
        cursor = conn.execute(
            "INSERT INTO jobs(kind, model, state, total, done, skipped, pid, host, started_at, updated_at) "
            "VALUES (?, ?, 'running', ?, 0, 0, ?, ?, ?, ?) RETURNING id",
            (kind, model, total, os.getpid(), socket.gethostname(), now, now),
        )
        return rowid(cursor)


def set_pid(store: GalleryStore, job_id: int, pid: int) -> None:
    with store.write_lock() as conn:
        conn.execute("UPDATE jobs SET pid = ?, host = ? WHERE id = ?", (pid, socket.gethostname(), job_id))


def update_job(
    store: GalleryStore, job_id: int, done: int, skipped: int, message: str | None = None, total: int | None = None
) -> None:
    with store.write_lock() as conn:
        conn.execute(
            "UPDATE jobs SET done = ?, skipped = ?, message = COALESCE(CAST(? AS TEXT), message), total = COALESCE(CAST(? AS BIGINT), total), "
            "updated_at = ? WHERE id = ?",
            (done, skipped, message, total, utc_now(), job_id),
        )


def mark_finished(conn: Connection, job_id: int, ok: bool, message: str) -> None:
    """Within a write transaction already open (the job's results commit with its end)."""
    now = utc_now()
    conn.execute(
        "UPDATE jobs SET state = ?, message = ?, updated_at = ?, finished_at = ? WHERE id = ?",
        ("done" if ok else "failed", message, now, now, job_id),
    )


def finish_job(store: GalleryStore, job_id: int, ok: bool, message: str) -> None:
    with store.write_lock() as conn:
        mark_finished(conn, job_id, ok, message)


def list_jobs(store: GalleryStore, limit: int = 20, kind: str | None = None) -> list[JobRecord]:
    """The newest jobs first (of one ``kind``: reembed, duplicates)."""
    with store.reader() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE CAST(? AS TEXT) IS NULL OR kind = ? ORDER BY id DESC LIMIT ?",
            (kind, kind, limit),
        ).fetchall()
    return [JobRecord(*r) for r in rows]


def get_job(store: GalleryStore, job_id: int) -> JobRecord | None:
    with store.reader() as conn:
        row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return JobRecord(*row) if row else None

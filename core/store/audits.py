"""The last search for faces enrolled twice run as a job (tables ``duplicate_audits`` and
``duplicate_pairs``): what the API's ``GET /v1/duplicates/audit`` and the console's System page
read. Pairs name persons by id only and go with either person (``ON DELETE CASCADE``); names are
joined when read, so a renamed person shows their new name and a deleted one is gone."""

from __future__ import annotations

from dataclasses import dataclass

from core.store.gallery import GalleryStore
from core.store.jobs import JobRecord, list_jobs, mark_finished
from core.store.records import DuplicatePair
from core.store.sqlutil import MAX_ROW_ID


@dataclass(frozen=True)
class AuditSearch:
    """What a search for faces enrolled twice searched with."""

    model: str
    match_mode: str
    threshold: float
    views_offset: float


@dataclass(frozen=True)
class DuplicateAudit:
    job_id: int
    search: AuditSearch
    photos: int  # original photos searched
    finished_at: str
    pairs: tuple[DuplicatePair, ...]  # highest score first (a page of them); without the persons deleted since
    total_pairs: int  # on every page


def save_audit(store: GalleryStore, job_id: int, search: AuditSearch, photos: int, pairs: list[DuplicatePair]) -> None:
    """Store a finished search and end its job, in one transaction; older searches' pairs go.
    A pair whose person was deleted while the job ran is not stored."""
    with store.write_lock() as conn:
        conn.execute("DELETE FROM duplicate_audits")  # their pairs go with them
        conn.execute(
            "INSERT INTO duplicate_audits(job_id, model, match_mode, threshold, views_offset, photos) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, search.model, search.match_mode, search.threshold, search.views_offset, photos),
        )
        stored = conn.executemany(
            "INSERT INTO duplicate_pairs(job_id, person_id, other_id, score) SELECT ?, ?, ?, ? "
            "WHERE (SELECT COUNT(*) FROM persons WHERE id IN (?, ?)) = 2",
            [(job_id, p.person_id, p.other_id, p.score, p.person_id, p.other_id) for p in pairs],
        ).rowcount
        mark_finished(conn, job_id, True, f"{max(stored, 0)} pair(s) in {photos:,} photos")


def latest_audit(store: GalleryStore, limit: int | None = None, offset: int = 0) -> DuplicateAudit | None:
    """The newest finished search, its pairs as they stand now, ``limit`` of them from ``offset``
    (None: none has finished)."""
    with store.reader() as conn:
        row = conn.execute(
            "SELECT a.job_id, a.model, a.match_mode, a.threshold, a.views_offset, a.photos, j.finished_at "
            "FROM duplicate_audits a JOIN jobs j ON j.id = a.job_id ORDER BY a.job_id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        job_id, model, rule, threshold, views, photos, finished_at = row
        rows = conn.execute(
            "SELECT d.person_id, a.name, d.other_id, b.name, d.score FROM duplicate_pairs d "
            "JOIN persons a ON a.id = d.person_id JOIN persons b ON b.id = d.other_id "
            "WHERE d.job_id = ? ORDER BY d.score DESC, d.person_id, d.other_id LIMIT ? OFFSET ?",
            (job_id, MAX_ROW_ID if limit is None else limit, offset),
        ).fetchall()
        total = int(conn.execute("SELECT COUNT(*) FROM duplicate_pairs WHERE job_id = ?", (job_id,)).fetchone()[0])
    pairs = tuple(DuplicatePair(int(a), name, int(b), other, float(s), threshold) for a, name, b, other, s in rows)
    return DuplicateAudit(job_id, AuditSearch(model, rule, threshold, views), photos, finished_at, pairs, total)


def latest_audit_job(store: GalleryStore) -> JobRecord | None:
    """The newest search for faces enrolled twice run as a job, whatever its state."""
    return next((j for j in list_jobs(store, limit=1, kind="duplicates")), None)

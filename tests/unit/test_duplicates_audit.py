"""The search for faces enrolled twice as a job (core/search/duplicates.py ``audit_duplicates``,
core/store/audits.py): its progress, its stored pairs, what a deletion, a rename and a newer
search do to them. Over a synthetic gallery of real stored rows (bench/gallery_scale.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.search.duplicates import audit_duplicates
from core.store.audits import AuditSearch, latest_audit, latest_audit_job, save_audit
from core.store.gallery import GalleryStore
from core.store.jobs import JobRunning, get_job, reap_dead_jobs, set_pid, start_job
from core.store.records import DuplicatePair

from conftest import dead_pid

PERSONS = 300


@pytest.fixture
def planted(tmp_path: Path) -> tuple[GalleryStore, set[tuple[int, int]], AuditSearch]:
    from bench.duplicates import MODEL, plant
    from bench.gallery_scale import build_store

    build_store(tmp_path, PERSONS)
    pairs = plant(tmp_path / "gallery.db", PERSONS, 3)
    return GalleryStore(tmp_path), pairs, AuditSearch(MODEL, "top2", 0.9372, 0.0052)


def _rows(store: GalleryStore, sql: str, *args: object) -> list[tuple]:
    conn = sqlite3.connect(store.db_path)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def test_a_job_stores_its_pairs_and_its_progress(planted):
    store, pairs, search = planted
    assert latest_audit(store) is None and latest_audit_job(store) is None
    found = audit_duplicates(store, search, exact_max=500)  # over 500 embeddings: the HNSW search
    assert {(p.person_id, p.other_id) for p in found} == pairs

    [(photos,)] = _rows(store, "SELECT COUNT(*) FROM embeddings WHERE source = 'original' AND model = ?", search.model)
    assert photos == PERSONS + 3  # one original each, and the three planted copies
    job = latest_audit_job(store)
    assert job is not None and (job.kind, job.state, job.model) == ("duplicates", "done", search.model)
    assert (job.total, job.done, job.message) == (photos, photos, f"3 pair(s) in {photos:,} photos")
    audit = latest_audit(store)
    assert audit is not None and (audit.job_id, audit.search, audit.photos) == (job.id, search, photos)
    assert list(audit.pairs) == found and audit.total_pairs == 3  # highest score first, the names joined
    page = latest_audit(store, limit=1, offset=1)
    assert page is not None and page.pairs == (found[1],) and page.total_pairs == 3


def test_the_pairs_follow_renames_and_deletions_and_a_newer_search_replaces_them(planted):
    store, pairs, search = planted
    first = audit_duplicates(store, search)
    victim, copy = sorted(pairs)[0]
    store.rename_person(copy, "Renamed Copy")
    audit = latest_audit(store)
    assert audit is not None
    assert [p.other for p in audit.pairs if p.other_id == copy] == ["Renamed Copy"]

    store.delete_person(copy)  # erasure: no pair names them any more
    audit = latest_audit(store)
    assert audit is not None and len(audit.pairs) == len(first) - 1
    assert all(copy not in (p.person_id, p.other_id) for p in audit.pairs)
    assert _rows(store, "SELECT * FROM duplicate_pairs WHERE ? IN (person_id, other_id)", copy) == []

    second = audit_duplicates(store, search)
    assert len(second) == len(first) - 1
    newer = latest_audit(store)
    assert newer is not None and newer.job_id > audit.job_id
    assert _rows(store, "SELECT DISTINCT job_id FROM duplicate_pairs") == [(newer.job_id,)]  # the older pairs went
    old = get_job(store, audit.job_id)
    assert old is not None and old.state == "done"  # the job itself stays in the list


def test_one_search_at_a_time_and_a_pair_of_a_person_deleted_meanwhile_is_not_stored(planted):
    store, pairs, search = planted
    running = start_job(store, "duplicates", search.model, 0)  # this process: alive
    with pytest.raises(JobRunning, match=f"duplicates job {running} is still running"):
        audit_duplicates(store, search)
    start_job(store, "reembed", "another-model", 0)  # another kind does not block it

    victim, copy = sorted(pairs)[0]
    gone = DuplicatePair(victim, "?", 10_000, "?", 0.99, search.threshold)  # 10,000: no such person
    kept = DuplicatePair(victim, "?", copy, "?", 0.98, search.threshold)
    save_audit(store, running, search, 7, [gone, kept])
    audit = latest_audit(store)
    assert audit is not None and [(p.person_id, p.other_id) for p in audit.pairs] == [(victim, copy)]
    job = get_job(store, running)
    assert job is not None and (job.state, job.message) == ("done", "1 pair(s) in 7 photos")


def test_a_search_whose_process_died_reads_as_failed(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    job = start_job(store, "duplicates", "m1", 100)
    assert reap_dead_jobs(store) == 0  # its process (this one) lives: nothing written
    set_pid(store, job, dead_pid())  # as if killed
    assert reap_dead_jobs(store) == 1 and reap_dead_jobs(store) == 0
    record = get_job(store, job)
    assert record is not None and (record.state, record.message) == ("failed", "interrupted (its process ended)")

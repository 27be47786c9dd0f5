"""Persons a page at a time, and per-request paths that read an index, not a whole table."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from core.schemas.gallery import PersonsPage
from core.store.gallery import PERSON_SELECT, GalleryStore
from core.store.model_versions import EMBEDDINGS_AFTER_SQL, embeddings_after

from conftest import photo_bytes
from records import enrollment

NAMES = ["Ada", "Adam", "Ádám", "Bob", "adam", "Zoë"]


def test_pages_cover_everyone_once_in_name_order(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    for seed, name in enumerate(NAMES):
        store.add_person(enrollment(name, seed, n_views=seed % 3))
    everyone = store.list_persons()
    assert [p.name for p in everyone] == sorted(NAMES)  # binary order of the stored (NFC) names
    pages, offset = [], 0
    while True:
        page = PersonsPage.of(store.list_persons(limit=4, offset=offset), store.count_persons(), 4, offset)
        pages.append(page)
        if page.next_offset is None:
            break
        offset = page.next_offset
    assert [len(p.persons) for p in pages] == [4, 2] and [p.next_offset for p in pages] == [4, None]
    assert [p.name for page in pages for p in page.persons] == [p.name for p in everyone]
    assert all(page.total == 6 for page in pages)
    ada = next(p for p in pages[0].persons if p.name == "Ada")
    assert (ada.num_images, ada.num_embeddings) == (1, 1)  # seed 0: no views
    assert PersonsPage.of(store.list_persons(limit=4, offset=6), 6, 4, 6).persons == []
    newest = store.list_persons(limit=2, offset=1, newest_first=True)
    assert [p.name for p in newest] == [NAMES[-2], NAMES[-3]]  # enrolled in NAMES order


def test_prefix_is_a_case_sensitive_range(tmp_path: Path):
    store = GalleryStore(tmp_path)
    for seed, name in enumerate(NAMES):
        store.add_person(enrollment(name, seed))
    assert [p.name for p in store.list_persons(prefix="Ad")] == ["Ada", "Adam"]
    assert store.count_persons("Ad") == 2 and store.count_persons("ad") == 1
    decomposed = "A\u0301d"  # A + combining acute: the NFC form of Ád
    assert [p.name for p in store.list_persons(prefix=decomposed)] == ["Ádám"]
    assert store.list_persons(prefix="Zz") == [] and store.count_persons("Zz") == 0
    assert store.count_persons("") == store.count_persons() == 6


def _plan(conn: sqlite3.Connection, sql: str, args: tuple[object, ...]) -> str:
    return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_per_person_statements_search_an_index(tmp_path: Path):
    """What a delete, a person's detail and a page of persons run, each for one person: a
    whole-table SCAN here costs seconds per call at a million embeddings (bench/person_ops.py)."""
    store = GalleryStore(tmp_path)
    store.add_person(enrollment("Ada", 1))
    conn = sqlite3.connect(store.db_path)
    statements = [
        ("SELECT COUNT(*) FROM embeddings WHERE person_id = ?", (1,)),
        ("SELECT model, source, COUNT(*) FROM embeddings WHERE person_id = ? GROUP BY model, source", (1,)),
        ("DELETE FROM embeddings WHERE person_id = ?", (1,)),  # the ON DELETE CASCADE lookups
        ("DELETE FROM generation_runs WHERE person_id = ?", (1,)),
        ("UPDATE enrollment_runs SET person_id = NULL WHERE person_id = ?", (1,)),  # ON DELETE SET NULL
        ("DELETE FROM images WHERE person_id = ?", (1,)),
        ("SELECT 1 FROM images WHERE path = ? LIMIT 1", ("images/ab/x.jpg",)),
        (f"{PERSON_SELECT} WHERE p.name >= ? AND p.name < ? ORDER BY p.name LIMIT 100 OFFSET 0", ("A", "B")),
        (f"{PERSON_SELECT} WHERE p.id = ?", (1,)),
    ]
    for sql, args in statements:
        plan = _plan(conn, sql, args)
        scans = [step for step in plan.split(" | ") if step.startswith("SCAN")]
        assert not scans, f"{sql}: {plan}"
    conn.close()


def test_identify_refresh_reads_only_the_new_rows(tmp_path: Path):
    """Each identification brings its in-memory gallery up to date: the query must be a range of
    the rowid past the last id it holds, not a walk over every vector of the model."""
    store = GalleryStore(tmp_path)
    store.add_person(enrollment("Ada", 1))
    conn = sqlite3.connect(store.db_path)
    plan = _plan(conn, EMBEDDINGS_AFTER_SQL, ("m1", 2))
    conn.close()
    assert "USING INTEGER PRIMARY KEY (rowid>?)" in plan and "SCAN" not in plan and "TEMP B-TREE" not in plan, plan
    ids, persons, _, vectors = embeddings_after(store, "m1", 1)
    assert list(ids) == [2, 3] and list(persons) == [1, 1] and vectors.shape == (2, 8)
    assert embeddings_after(store, "other", 0)[0].size == 0


def test_no_request_scans_a_table(service, monkeypatch: pytest.MonkeyPatch):
    """Every statement the service runs for enroll, identify, verify, detail, rename and delete,
    traced as executed and planned against the same store: none walks a whole table or all of a
    model's vectors (a page of persons walks the name index, bounded by its LIMIT)."""
    executed: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(executed.append)
        return conn

    service.enroll("Barack Obama", photo_bytes("Barack_Obama"), augment=True)
    monkeypatch.setattr(sqlite3, "connect", traced)
    service.store.close()  # its open connections closed: the next ones go through the trace
    service.identify(photo_bytes("Barack_Obama", 2))
    service.verify(photo_bytes("Barack_Obama", 2), photo_bytes("Barack_Obama", 3))
    person_id = service.enroll("Ari Fleischer", photo_bytes("Ari_Fleischer"), augment=True).person_id
    service.store.person_detail(person_id)
    service.store.list_persons(limit=10, prefix="Ari")
    service.store.rename_person(person_id, "Ari F")
    service.delete(person_id)
    service.identify(photo_bytes("Barack_Obama", 2))
    monkeypatch.undo()
    planned = [s for s in dict.fromkeys(executed) if s.split()[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE")]
    assert len(planned) > 20  # the trace saw the session
    conn = sqlite3.connect(service.store.db_path)
    scans = {}
    for sql in planned:
        steps = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        bounded = "LIMIT" in sql and "ORDER BY p.name" in sql
        # model=?: every vector; a SELECT with no FROM scans its one constant row, no table
        walks = [s for s in steps if (s.startswith("SCAN") and s != "SCAN CONSTANT ROW") or s.endswith("(model=?)")]
        if walks and not bounded:
            scans[sql[:200]] = steps
    conn.close()
    assert not scans, scans

"""The store's parts whose SQL differs by backend, on both (model versions, jobs, keys, the
start-up check), and what only PostgreSQL has: pg_dump backups, a server that is down, two
service processes sharing one database (an enrollment or deletion answered by one is seen by
the other's next identify), and moving a SQLite gallery into PostgreSQL with export/import."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidInput, KeyRevoked, ModelNotReady, StoreCorrupt, StoreUnavailable
from core.settings import Settings
from core.store.backup import backup, restore
from core.store.gallery import GalleryStore
from core.store.jobs import finish_job, list_jobs, reap_dead_jobs, start_job, update_job
from core.store.keys import KeyStore
from core.store.maintenance import check_store
from core.store.model_versions import (
    EmbeddedImage,
    activate_model,
    active_model,
    prune_model,
    register_model,
    work_list,
    write_embedded,
)
from core.store.transfer import export_gallery, import_gallery

from conftest import dead_pid, local_service, photo_bytes
from records import enrollment, store_contents


def test_a_model_is_built_switched_to_and_pruned(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    register_model(store, "m1", 8, {"embedder": "dlib"}, {"max": 0.9}, activate_if_none=True)
    ada = store.add_person(enrollment("Ada", 1, n_views=1))
    store.add_person(enrollment("Bob", 2, n_views=0))
    register_model(store, "m2", 4, {"embedder": "arcface"}, {"max": 0.5})
    todo = work_list(store, "m2")
    assert len(todo) == 3 and todo[0].bbox == (1.0, 2.0, 3.0, 4.0)  # where m1 found the face
    with pytest.raises(ModelNotReady):
        activate_model(store, "m2", {"max": 0.5})
    results = [EmbeddedImage(w.image_id, w.source, np.ones(4, np.float32) / 2, 0.9, (0, 0, 1, 1)) for w in todo[::2]]
    results.append(EmbeddedImage(todo[1].image_id, todo[1].source, None, reason="no face"))  # Ada's view
    assert write_embedded(store, "m2", results) == (2, 1)
    assert write_embedded(store, "m2", results) == (0, 0)  # a resumed job writes nothing twice
    assert work_list(store, "m2") == []
    activate_model(store, "m2", {"max": 0.5})
    assert active_model(store).name == "m2"
    assert prune_model(store, "m1") == 3
    assert store.load_gallery("m1").size == 0 and store.load_gallery("m2").size == 2
    assert store.person_detail(ada).embedding_counts == {"m2": {"original": 1}}


def test_jobs_and_keys(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    job = start_job(store, "reembed", "m2", 10)
    update_job(store, job, 4, 1, message=None, total=None)
    update_job(store, job, 5, 1, message="halfway", total=12)
    finish_job(store, job, True, "done")
    (record,) = list_jobs(store, kind="reembed")
    assert (record.id, record.state, record.done, record.total, record.message) == (job, "done", 5, 12, "done")
    assert list_jobs(store, kind="duplicates") == []
    orphan = start_job(store, "duplicates", "m2", 3)
    with store.write_lock() as conn:
        conn.execute("UPDATE jobs SET pid = ? WHERE id = ?", (dead_pid(), orphan))
    assert reap_dead_jobs(store) == 1 and list_jobs(store, kind="duplicates")[0].state == "failed"
    elsewhere = start_job(store, "duplicates", "m2", 3)  # on another host: judged by its progress
    with store.write_lock() as conn:
        conn.execute("UPDATE jobs SET host = 'another-host' WHERE id = ?", (elsewhere,))
    assert reap_dead_jobs(store) == 0  # progress written just now
    with store.write_lock() as conn:
        conn.execute("UPDATE jobs SET updated_at = '2026-01-01T00:00:00.000+00:00' WHERE id = ?", (elsewhere,))
    assert reap_dead_jobs(store) == 1  # silent for hours: its host is gone
    keys = KeyStore(store)
    record, secret = keys.create("front desk", "identify")
    assert keys.scope_of(secret) == "identify" and keys.find("ma_wrong") is None
    keys.revoke(record.id)
    assert keys.scope_of(secret) is None
    with pytest.raises(KeyRevoked):
        keys.revoke(record.id)


def test_the_start_up_check_finds_nothing_to_do_on_a_whole_store(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    store.add_person(enrollment("Ada", 1))
    before = store_contents(store)
    report = check_store(store)
    assert (report.integrity, report.orphan_files, report.temp_files) == ("ok", 0, 0)
    assert store_contents(store) == before


def test_a_server_that_cannot_be_reached_is_a_clear_error(tmp_path: Path, postgres):
    url = postgres.url("postgres").replace(f":{postgres.port}/", ":1/")
    with pytest.raises(StoreUnavailable, match=r"PostgreSQL at postgresql://manyangles@127.0.0.1:1/postgres"):
        GalleryStore(tmp_path, busy_timeout_s=2.0, url=url)
    with pytest.raises(ValueError, match="store_url"):
        Settings(store_url="mysql://somewhere/db")


def test_connections_the_server_dropped_are_replaced(tmp_path: Path, postgres):
    """Every backend of the store's pool terminated (a server restart, a proxy's idle cut): a
    connection used within CHECK_AFTER_IDLE_S is handed out unchecked, so it may fail one
    operation, as a 503 (StoreUnavailable), never an internal error, and then leaves the pool;
    after the idle time each connection is checked first and the first operation works."""
    import psycopg

    from core.store.db import CHECK_AFTER_IDLE_S

    store = GalleryStore(tmp_path, busy_timeout_s=5.0, url=postgres.new_database())
    keys = KeyStore(store)

    def drop_every_connection() -> int:
        with psycopg.connect(store.db.url, autocommit=True) as admin:
            return len(
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
            )

    assert keys.records() == []
    pooled = store.db.pool.get_stats()["pool_size"]
    assert drop_every_connection() >= 1
    failures = 0
    for _ in range(pooled + 1):  # each dropped connection fails one operation at most, then leaves
        try:
            assert keys.records() == []
            break
        except StoreUnavailable as exc:
            assert "did not answer" in exc.message
            failures += 1
    assert failures <= pooled and keys.records() == []
    created = keys.create("door", "identify")
    assert drop_every_connection() >= 1
    time.sleep(CHECK_AFTER_IDLE_S + 0.2)
    assert [k.name for k in keys.records()] == ["door"]  # checked, replaced: no failure at all
    assert keys.find(created[1]) is not None
    store.close()


def test_a_failed_timing_write_leaves_its_pooled_connection_usable(
    tmp_path: Path, postgres, caplog: pytest.LogCaptureFixture
):
    """``brief`` (the timing rows) runs in psycopg's pipeline mode: a statement the server refuses,
    or the caller's own exception, inside it stores nothing, ends the transaction (after an explicit
    BEGIN the server keeps a failed one open: the store's ROLLBACK, and psycopg's connection context
    behind it) and leaves the pool whole: the next write commits."""
    import psycopg

    from core.store.runs import SearchRunRecord

    store = GalleryStore(tmp_path, busy_timeout_s=5.0, url=postgres.new_database())
    caplog.set_level("WARNING", logger="psycopg.pool")
    row = "INSERT INTO search_runs(id, kind, faces, total_s, timings_json, created_at) VALUES (?, 'identify', 1, 0.1, '{}', 't')"
    with pytest.raises(psycopg.errors.UniqueViolation), store.db.brief(0.25) as conn:
        conn.execute(row, (10**9,))
        conn.execute(row, (10**9,))  # refused by the server at the pipeline's sync
    with pytest.raises(RuntimeError, match="the caller's"), store.db.brief(0.25) as conn:
        conn.execute(row, (10**9 + 1,))
        raise RuntimeError("the caller's own error, mid-pipeline")
    # none came back to the pool mid-transaction (the pool would roll it back, or close it, and say so)
    assert "returned connection" not in caplog.text and store.db.pool.get_stats().get("returns_bad", 0) == 0
    store.add_search_run(SearchRunRecord("identify", 1, 0.25, {"total": 0.25}))
    assert [(r["id"] < 10**9, r["total_s"]) for r in store.search_runs()] == [(True, 0.25)]
    with store.db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM search_runs").fetchone()[0] == 1
    store.close()


def test_pg_dump_backup_under_enrollments_restores_the_same_gallery(tmp_path: Path, postgres):
    live = GalleryStore(tmp_path / "live", url=postgres.new_database())
    for k in range(5):
        live.add_person(enrollment(f"Before {k}", 100 + k))
    stop = threading.Event()

    def keep_enrolling() -> None:
        k = 0
        while not stop.is_set():
            live.add_person(enrollment(f"During {k}", 200 + k))
            k += 1

    writer = threading.Thread(target=keep_enrolling)
    writer.start()
    time.sleep(0.05)
    report = backup(live, tmp_path / "backup")
    stop.set()
    writer.join()
    assert report.persons >= 5 and oct((tmp_path / "backup" / "gallery.pgdump").stat().st_mode & 0o777) == "0o600"
    target = postgres.new_database()
    assert restore(tmp_path / "backup", tmp_path / "unused", url=target).persons >= 5
    restored = GalleryStore(tmp_path / "unused", url=target)
    persons = {p.name: p for p in restored.list_persons()}
    assert {f"Before {k}" for k in range(5)} <= set(persons)
    for name, person in persons.items():  # whole persons, the same bytes and vectors as live
        twin = live.find_person(name)
        assert (person.num_images, person.num_embeddings) == (twin.num_images, twin.num_embeddings)
        for image in restored.person_detail(person.id).images:
            assert restored.image(person.id, image.id)[1] == live.image(twin.id, image.id)[1]
    with pytest.raises(InvalidInput, match="already holds a gallery"):
        restore(tmp_path / "backup", tmp_path / "unused", url=target)
    (tmp_path / "backup" / "gallery.pgdump").write_bytes(b"not a dump")
    with pytest.raises(StoreCorrupt, match="not a usable backup"):
        restore(tmp_path / "backup", tmp_path / "unused", url=postgres.new_database())
    live.close()
    restored.close()


@pytest.fixture()
def two_replicas(tmp_path: Path, postgres, default_models):
    """Two services on one PostgreSQL database, each with its own data dir, pool and in-memory
    search (what two API replicas on two hosts are)."""
    url = postgres.new_database()
    first = local_service(Settings(data_dir=tmp_path / "host-a", store_url=url), default_models)
    second = local_service(Settings(data_dir=tmp_path / "host-b", store_url=url), default_models)
    yield first, second
    first.store.close()
    second.store.close()


def _identified(service, photo: bytes) -> set[str]:
    return {f.match.identity.name for f in service.identify(photo).faces if f.match.identity is not None}


def _candidates(service, photo: bytes) -> set[str]:
    return {c.name for f in service.identify(photo).faces for c in f.match.candidates}


def test_what_one_replica_answered_the_other_sees_at_its_next_identify(two_replicas, tmp_path: Path):
    first, second = two_replicas
    first.enroll("Angelina Jolie", photo_bytes("Angelina_Jolie"))
    probe = photo_bytes("Angelina_Jolie", 2)
    answered = time.perf_counter()
    assert "Angelina Jolie" in _identified(second, probe)  # the very next identify: no wait
    seen_after_s = time.perf_counter() - answered
    person = second.store.find_person("Angelina Jolie")
    second.store.delete_person(person.id)
    assert "Angelina Jolie" not in _candidates(first, probe)  # deleted on one, never named by the other
    assert seen_after_s < 1.0
    assert not any(p.is_file() for p in (tmp_path / "host-a").rglob("*") if "images" in p.parts)  # no image file


def test_a_sqlite_gallery_moves_into_postgres_with_export_and_import(tmp_path: Path, postgres, default_models):
    source = local_service(Settings(data_dir=tmp_path / "sqlite"), default_models)
    source.enroll("Barack Obama", photo_bytes("Barack_Obama"), augment=True, views=["left"])
    source.enroll("George Clooney", photo_bytes("George_Clooney"))
    export_gallery(source.store, tmp_path / "export")
    target = local_service(Settings(data_dir=tmp_path / "pg", store_url=postgres.new_database()), default_models)
    imported = import_gallery(target.store, tmp_path / "export")
    assert imported.persons == 2
    for who, n in (("Barack_Obama", 2), ("George_Clooney", 2), ("Matt_Damon", 1)):
        mine = [
            (c.name, round(c.score, 5)) for f in source.identify(photo_bytes(who, n)).faces for c in f.match.candidates
        ]
        theirs = [
            (c.name, round(c.score, 5)) for f in target.identify(photo_bytes(who, n)).faces for c in f.match.candidates
        ]
        assert mine == theirs
    target.store.close()


def test_the_password_is_never_shown(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    from core.errors import InvalidSetting
    from core.store.db import libpq_environment

    with pytest.raises(StoreUnavailable) as refused:  # the server is not there
        GalleryStore(tmp_path, busy_timeout_s=2.0, url="postgresql://manyangles:hunter2@127.0.0.1:1/gallery")
    assert "postgresql://manyangles@127.0.0.1:1/gallery" in str(refused.value)
    with pytest.raises(InvalidSetting) as unreadable:  # libpq would repeat this one in its errors
        GalleryStore(tmp_path, url="postgresql://manyangles:hunter2@[::1/gallery")
    with pytest.raises(InvalidSetting) as typo:
        Settings.load(store_url="postgresq://manyangles:hunter2@db/gallery")
    assert "store_url" in str(typo.value)
    for shown in (str(refused.value), str(unreadable.value), str(typo.value), caplog.text):
        assert "hunter2" not in shown
    # pg_dump and pg_restore get it in their environment, never on a command line
    assert libpq_environment("postgresql://manyangles:hunter2@db:5433/gallery?sslmode=require") == {
        "PGUSER": "manyangles",
        "PGPASSWORD": "hunter2",
        "PGHOST": "db",
        "PGPORT": "5433",
        "PGDATABASE": "gallery",
        "PGSSLMODE": "require",
    }

"""What keeps the gallery safe: file modes, the shared-file race, concurrent deletes, the start-up
check after a crash."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pytest

from core.errors import PersonNotFound, StoreCorrupt
from core.settings import Settings
from core.store.access_log import Caller, log_access
from core.store.gallery import GalleryStore
from core.store.maintenance import check_store, remove_orphans
from core.store.records import EnrollmentRunRecord
from serve.auth import ensure_api_key

from conftest import cli
from records import enrollment, every_table_value, stored_image_bytes, table_names


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_and_files_are_private(tmp_path: Path):
    data_dir = tmp_path / "data"
    store = GalleryStore(data_dir)
    store.add_person(enrollment("Private Person", 1))
    ensure_api_key(Settings(data_dir=data_dir))
    held = sqlite3.connect(store.db_path)  # a writer still open: the -wal and -shm files exist
    held.execute("INSERT INTO persons(name, created_at) VALUES ('Writer', 'now')")
    held.commit()
    assert mode(data_dir) == 0o700 and mode(store.images_dir) == 0o700
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"gallery.db", "gallery.db-wal", "api_key"}
    assert {p.relative_to(data_dir).as_posix(): mode(p) for p in files} == {
        p.relative_to(data_dir).as_posix(): 0o600 for p in files
    }
    assert all(mode(p) == 0o700 for p in data_dir.rglob("*") if p.is_dir())
    held.close()
    os.chmod(data_dir, 0o755)  # an existing store is tightened when opened
    os.chmod(store.db_path, 0o644)
    GalleryStore(data_dir)
    assert mode(data_dir) == 0o700 and mode(store.db_path) == 0o600


class Interleaved(GalleryStore):
    """Runs ``before_commit`` when add_person takes the write lock: after it wrote (or found) its
    files, before its rows. That is where another enrollment's failure cleanup can strike."""

    before_commit: list = []

    def _transaction(self) -> AbstractContextManager:  # type: ignore[override]
        while self.before_commit:
            self.before_commit.pop()()
        return super()._transaction()


def test_a_failed_enrollment_never_removes_a_file_another_one_commits(tmp_path: Path):
    store = GalleryStore(tmp_path)
    first = enrollment("Alpha", 1)
    # enrollment B (same photo bytes) wrote the shared file, then fails and cleans up ...
    created_by_b: list[Path] = []
    shared = store.blobs.before(first.images[0], created_by_b)
    assert created_by_b == [tmp_path / shared]
    racing = Interleaved(tmp_path)
    racing.before_commit = [lambda: store.remove_unreferenced(created_by_b)]
    # ... exactly after A found the file present and before A's rows are committed
    person_id = racing.add_person(first)
    assert not racing.before_commit  # the interleaving happened
    detail = racing.person_detail(person_id)
    for record in detail.images:
        assert (tmp_path / record.path).is_file(), f"{record.path} is referenced but gone"
    record, data = racing.image(person_id, detail.images[0].id)
    assert data == first.images[0].data


def test_concurrent_deletes_one_succeeds_the_rest_are_not_found(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    person_id = store.add_person(enrollment("Twice Deleted", 2))
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def delete() -> None:
        barrier.wait()
        try:
            store.delete_person(person_id)
            outcomes.append("deleted")
        except PersonNotFound:
            outcomes.append("not found")

    threads = [threading.Thread(target=delete) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["deleted"] + ["not found"] * 7
    assert stored_image_bytes(store) == []


def test_deleting_a_person_keeps_their_timings_anonymous(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    person_id = store.add_person(enrollment("Timed Person", 3))
    store.add_enrollment_run(EnrollmentRunRecord(person_id, "m1", 2, 2, 1.5, {"total": 1.5}))
    store.delete_person(person_id)
    (run,) = store.enrollment_runs()
    assert run["person_id"] is None and run["total_s"] == 1.5


def crash_leftovers(store: GalleryStore) -> dict[str, Path]:
    """What a process killed mid-enrollment leaves: a file without rows, half-written files."""
    orphan = store.images_dir / "ab" / ("ab" + "0" * 62 + ".jpg")
    stale = store.images_dir / "ab" / ".tmp-killed"
    fresh = store.images_dir / "ab" / ".tmp-in-flight"
    orphan.parent.mkdir(mode=0o700, exist_ok=True)
    for path in (orphan, stale, fresh):
        path.write_bytes(b"left behind")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    return {"orphan": orphan, "stale": stale, "fresh": fresh}


def test_start_up_check_removes_what_a_crash_left(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    store = GalleryStore(tmp_path)
    person_id = store.add_person(enrollment("Survivor", 4))
    kept = {p for p in store.images_dir.rglob("*") if p.is_file()}
    left = crash_leftovers(store)
    with caplog.at_level("INFO", logger="core.store.maintenance"):
        report = check_store(store)
    assert (report.integrity, report.orphan_files, report.temp_files) == ("ok", 1, 1)
    assert not left["orphan"].exists() and not left["stale"].exists()
    assert left["fresh"].exists()  # may belong to a write in flight
    assert kept <= {p for p in store.images_dir.rglob("*") if p.is_file()}
    assert store.person_detail(person_id).person.num_images == 3
    assert "removed 1 orphan image file(s) and 1 half-written temp file(s)" in caplog.text
    assert check_store(store).orphan_files == 0  # nothing left to do


def test_check_command(tmp_path: Path):
    store = GalleryStore(tmp_path)
    crash_leftovers(store)
    done = cli(tmp_path, "check")
    assert done.returncode == 0, done.stderr
    assert "integrity ok; removed 1 orphan image file(s) and 1 half-written temp file(s)" in done.stdout


def test_a_corrupt_store_refuses_to_start(tmp_path: Path):
    store = GalleryStore(tmp_path)
    for seed in range(3):
        store.add_person(enrollment(f"Person {seed}", seed))
    with sqlite3.connect(store.db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'embeddings'").fetchone()[0]
    with open(store.db_path, "r+b") as db:  # the table's b-tree page header: an invalid page type
        db.seek((root - 1) * page_size)
        db.write(b"\x00" * 8)
    for full in (False, True):
        with pytest.raises(StoreCorrupt, match="integrity check"):
            check_store(store, full=full)
    done = cli(tmp_path, "check", "--full")
    assert done.returncode != 0 and "store_corrupt" in done.stderr, (done.returncode, done.stderr)


def test_an_orphan_committed_after_the_walk_is_kept(tmp_path: Path):
    store = GalleryStore(tmp_path)
    person_id = store.add_person(enrollment("Late Commit", 5))
    files = [tmp_path / r.path for r in store.person_detail(person_id).images]
    orphan = crash_leftovers(store)["orphan"]
    assert remove_orphans(store, [*files, orphan]) == 1  # the walk's list was stale: rows name these
    assert all(f.exists() for f in files) and not orphan.exists()


def test_erasure_leaves_no_row_no_file_and_no_bytes(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    erased = enrollment("Erased Person Zqx", 7, n_views=3)
    kept = enrollment("Kept Person", 8)
    erased_id = store.add_person(erased)
    store.add_person(kept)
    store.add_enrollment_run(EnrollmentRunRecord(erased_id, "m1", 3, 3, 2.0, {"total": 2.0}))
    log_access(store, Caller(None, "service key", "admin"), "enroll", [erased_id], "10 image(s)")  # the access log
    their_files = [tmp_path / r.path for r in store.person_detail(erased_id).images]
    store.delete_person(erased_id)
    with store.reader() as conn:
        for table in table_names(store):
            columns = [c[0] for c in conn.execute(f"SELECT * FROM {table} LIMIT 0").description]
            if "person_id" in columns:
                count = conn.execute(f"SELECT count(*) FROM {table} WHERE person_id = ?", (erased_id,)).fetchone()[0]
                assert count == 0, f"{table} still names person {erased_id}"
    secrets = [b"Erased Person Zqx", *(e.vector.astype("<f4").tobytes() for e in erased.embeddings)]
    secrets += [image.data for image in erased.images]
    in_tables = every_table_value(store)  # every table read, PostgreSQL's image bytes included
    for secret in secrets:
        assert secret not in in_tables, f"{secret[:20]!r} is still in a table"
    assert b"Kept Person" in in_tables  # the scan would see it
    assert (kept.images[0].data in in_tables) == store.blobs.in_database  # the image bytes too, where they are rows
    if store.blobs.in_database:
        return
    assert not any(path.exists() for path in their_files)
    on_disk = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for secret in secrets:
        assert secret not in on_disk, f"{secret[:20]!r} is still readable in the data dir"
    assert b"Kept Person" in on_disk  # the scan would see it


def test_backup_under_concurrent_enrollments_restores_the_same_gallery(tmp_path: Path):
    from core.store.backup import backup, restore, verify_backup

    live = GalleryStore(tmp_path / "live")
    for k in range(5):
        live.add_person(enrollment(f"Before {k}", 100 + k))
    stop = threading.Event()
    enrolled: list[str] = []

    def keep_enrolling() -> None:
        k = 0
        while not stop.is_set():
            live.add_person(enrollment(f"During {k}", 200 + k))
            enrolled.append(f"During {k}")
            k += 1

    writer = threading.Thread(target=keep_enrolling)
    writer.start()
    time.sleep(0.05)
    report = backup(live, tmp_path / "backup")
    time.sleep(0.05)
    stop.set()
    writer.join()
    assert enrolled and report.persons >= 5  # enrollments ran before, during and after the copy
    assert verify_backup(tmp_path / "backup") == []
    restored_report = restore(tmp_path / "backup", tmp_path / "restored")
    restored = GalleryStore(tmp_path / "restored")
    assert restored_report.persons == report.persons
    persons = {p.name: p for p in restored.list_persons()}
    assert {f"Before {k}" for k in range(5)} <= set(persons)
    for name, person in persons.items():  # every restored person is whole and the same as live
        live_person = live.find_person(name)
        assert (person.num_images, person.num_embeddings) == (live_person.num_images, live_person.num_embeddings)
        for record in restored.person_detail(person.id).images:
            assert restored.image(person.id, record.id)[1] == live.image(live_person.id, record.id)[1]
    gallery, source = restored.load_gallery("m1"), live.load_gallery("m1")
    keep = np.isin(source.person_ids, gallery.person_ids)
    assert np.array_equal(gallery.vectors, source.vectors[keep])  # same vectors: the same answers
    assert mode(tmp_path / "restored") == 0o700 and mode(tmp_path / "restored" / "gallery.db") == 0o600


def test_a_restored_gallery_shares_no_database_file_with_its_backup(tmp_path: Path):
    """The image files may be linked (named by their content, never changed); the database is
    copied: the restored gallery's writes, its restore's own included, leave the backup as it was,
    and the same backup restores again to the same gallery."""
    from core.store.backup import backup, restore, verify_backup

    live = GalleryStore(tmp_path / "live")
    live.add_person(enrollment("First Person", 1))
    backup(live, tmp_path / "backup")
    saved = (tmp_path / "backup" / "gallery.db").read_bytes()
    restore(tmp_path / "backup", tmp_path / "one")
    one = GalleryStore(tmp_path / "one")
    one.add_person(enrollment("Only In One", 2))
    one.close()
    assert not os.path.samefile(tmp_path / "backup" / "gallery.db", tmp_path / "one" / "gallery.db")
    assert (tmp_path / "backup" / "gallery.db").read_bytes() == saved
    assert verify_backup(tmp_path / "backup") == []
    restore(tmp_path / "backup", tmp_path / "two")
    assert [p.name for p in GalleryStore(tmp_path / "two").list_persons()] == ["First Person"]


def test_restore_refuses_a_damaged_backup_or_a_used_data_dir(tmp_path: Path):
    from core.errors import InvalidInput, StoreCorrupt
    from core.store.backup import backup, restore

    live = GalleryStore(tmp_path / "live")
    live.add_person(enrollment("Only Person", 1))
    backup(live, tmp_path / "backup")
    with pytest.raises(InvalidInput, match="empty or new folder"):
        restore(tmp_path / "backup", tmp_path / "live")
    next((tmp_path / "backup" / "images").rglob("*.png")).write_bytes(b"tampered")
    with pytest.raises(StoreCorrupt, match="does not match its sha256"):
        restore(tmp_path / "backup", tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()

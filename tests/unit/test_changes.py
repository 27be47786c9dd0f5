"""The change log (schema 10): which persons changed after a token, in the store (over HTTP:
tests/service/test_changes_http.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ChangesUnavailable, InvalidInput
from core.store.backup import backup, restore
from core.store.changes import changes_since, parse_token
from core.store.gallery import GalleryStore
from core.store.snapshot import gallery_stamp

from records import enrollment, gallery_at_schema


def seq(token: str) -> int:
    return parse_token(token)[1]


def test_each_row_written_takes_a_number_and_marks_its_person(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    start = changes_since(store)
    assert seq(start.token) == 0 and start.person_ids == () and start.complete
    ada = store.add_person(enrollment("Ada", 1, n_views=2))  # 1 person + 3 images + 3 embeddings
    after_ada = changes_since(store, start.token)
    assert after_ada.person_ids == (ada,) and seq(after_ada.token) == 7
    bob = store.add_person(enrollment("Bob", 2, n_views=0))  # 1 + 1 + 1
    assert seq(changes_since(store).token) == 10
    assert changes_since(store, start.token).person_ids == (ada, bob)
    assert changes_since(store, after_ada.token).person_ids == (bob,)  # Ada is not re-read

    quiet = changes_since(store)
    assert changes_since(store, quiet.token).person_ids == ()
    store.rename_person(ada, "Ada L")  # one update
    renamed = changes_since(store, quiet.token)
    assert renamed.person_ids == (ada,) and seq(renamed.token) == 11
    assert not renamed.deleted
    store.delete_person(bob)  # 1 person + the cascade of 1 image and 1 embedding
    deleted = changes_since(store, renamed.token)
    assert deleted.person_ids == () and deleted.deleted and seq(deleted.token) == 14
    assert deleted.stamp == gallery_stamp(store)  # the ETag of the same moment
    # an erased person leaves no row behind, not even in the change log
    with store.reader() as conn:
        assert conn.execute("SELECT person_id FROM person_changes ORDER BY person_id").fetchall() == [(ada,)]
    assert changes_since(store, start.token).person_ids == (ada,)
    after = changes_since(store, deleted.token)
    assert after.person_ids == () and not after.deleted


def test_too_many_changes_are_not_listed(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    start = changes_since(store).token
    for seed in range(3):
        store.add_person(enrollment(f"P{seed}", seed, n_views=0))
    assert changes_since(store, start, limit=3).complete
    too_many = changes_since(store, start, limit=2)
    assert not too_many.complete and too_many.person_ids == ()


def test_a_token_of_another_copy_or_from_the_future_is_refused(tmp_path: Path):
    store = GalleryStore(tmp_path / "live")
    store.add_person(enrollment("Ada", 1, n_views=0))
    token = changes_since(store).token
    epoch, number = parse_token(token)
    with pytest.raises(ChangesUnavailable, match="another copy"):
        changes_since(store, f"{epoch}-{number + 1}")
    backup(store, tmp_path / "backup")
    restore(tmp_path / "backup", tmp_path / "restored")
    copy = GalleryStore(tmp_path / "restored")
    with pytest.raises(ChangesUnavailable):  # same rows, same counter: another epoch
        changes_since(copy, token)
    assert seq(changes_since(copy).token) == number
    for bad in ("", "12-3", "zzzzzzzzzzzzzzzz-1", f"{epoch}-", f"{epoch}-1-2"):
        with pytest.raises(InvalidInput, match="not a change token"):
            changes_since(store, bad)


def test_a_schema_9_gallery_starts_its_log_empty(tmp_path: Path):
    conn = gallery_at_schema(tmp_path, 9)
    conn.execute("INSERT INTO persons(id, name, created_at) VALUES (1, 'Old', '2026-11-26')")
    conn.close()
    store = GalleryStore(tmp_path)
    start = changes_since(store)
    assert seq(start.token) == 0
    new = store.add_person(enrollment("New", 1, n_views=0))
    assert changes_since(store, start.token).person_ids == (new,)

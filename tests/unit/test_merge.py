"""Two persons made one (a face enrolled twice): in the store and with the service's face check
(over HTTP: tests/service/test_merge_http.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.errors import InvalidRequest, NotThisPerson, PersonNotFound
from core.search.index import GallerySearch
from core.store.access_log import Caller, access_page, log_access
from core.store.changes import changes_since

from conftest import photo_bytes, tree_digest
from records import enrollment, second_photo, store_contents, stored_image_bytes


def test_every_row_moves_and_the_other_person_goes(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    ada = store.add_person(enrollment("Ada", 1, n_views=2))
    twin = store.add_person(second_photo("Ada Twin", 2, n_views=1))
    bob = store.add_person(enrollment("Bob", 3))
    bob_before = store.person_detail(bob)
    log_access(store, Caller(None, "service key", "admin"), "enroll", [twin])
    search = GallerySearch("m1")
    search.refresh(store)
    token = changes_since(store).token
    files = stored_image_bytes(store)

    moved = store.merge_persons(ada, twin)

    assert moved == {"images": 2, "duplicate_images": 0, "embeddings": 2}
    with pytest.raises(PersonNotFound):
        store.find_person(twin)
    detail = store.person_detail(ada)
    assert [i.display_name for i in detail.images] == [
        "original.jpg",
        "augmented_v0.png",
        "augmented_v1.png",
        "original_2.jpg",
        "augmented_v0_2.png",
    ]
    photo, view = detail.images[3], detail.images[4]
    assert view.source_image_id == photo.id  # the moved view still belongs to its photo
    assert detail.embedding_counts == {"m1": {"original": 2, "augmented_v0": 2, "augmented_v1": 1}}
    assert store.person_detail(bob) == bob_before
    assert stored_image_bytes(store) == files  # nothing copied, nothing lost
    entries, _ = access_page(store, 10, action="enroll")
    assert [e.person_id for e in entries] == [ada]  # the history goes on naming whose data it is
    assert entries[0].detail.startswith(f"as person {twin}:")  # and whom it happened to
    with store.reader() as conn:
        assert conn.execute("SELECT COUNT(*) FROM embeddings WHERE person_id = ?", (twin,)).fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM generation_runs WHERE person_id = ?", (twin,)).fetchone()[0] == 0
    changed = changes_since(store, token)
    assert changed.person_ids == (ada,) and changed.deleted
    # a search index kept up to date incrementally sees the moved vectors under the person kept
    search.refresh(store)
    fresh = GallerySearch("m1")
    fresh.refresh(store)
    probe = store.load_gallery("m1").vectors[3][None]
    assert search.search(probe, 3, "max") == fresh.search(probe, 3, "max")
    assert {h.person_id for h in search.search(probe, 3, "max")[0]} == {ada, bob}


def test_a_photo_both_have_is_kept_once_and_its_views_follow(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    ada = store.add_person(enrollment("Ada", 1, n_views=0))
    twin = store.add_person(dataclasses.replace(enrollment("Ada", 1, n_views=1), name="Ada Again"))  # same photo
    moved = store.merge_persons(ada, twin)
    assert moved["duplicate_images"] == 1 and moved["images"] == 1
    detail = store.person_detail(ada)
    [photo] = [i for i in detail.images if i.source == "original"]
    [view] = [i for i in detail.images if i.source != "original"]
    assert view.source_image_id == photo.id
    assert detail.embedding_counts == {"m1": {"original": 1, "augmented_v0": 1}}


def test_refusals_change_nothing(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    ada = store.add_person(enrollment("Ada", 1))
    before = store_contents(store)
    with pytest.raises(InvalidRequest, match="themself"):
        store.merge_persons(ada, ada)
    with pytest.raises(PersonNotFound):
        store.merge_persons(ada, ada + 100)
    with pytest.raises(PersonNotFound):
        store.merge_persons(ada + 100, ada)
    assert store_contents(store) == before


def test_the_service_merges_only_the_same_face_unless_forced(service):
    obama = service.enroll("Barack Obama", photo_bytes("Barack_Obama"), augment=True, views=["left"]).person_id
    again = service.enroll("B. Obama", photo_bytes("Barack_Obama", 2), force=True).person_id
    clooney = service.enroll("George Clooney", photo_bytes("George_Clooney")).person_id
    before = tree_digest(service.store.data_dir)
    with pytest.raises(NotThisPerson) as refused:
        service.merge(obama, clooney)
    assert refused.value.match is not None and refused.value.match["person_id"] == obama
    assert "merge them anyway" in refused.value.message
    assert tree_digest(service.store.data_dir) == before
    was = service.identify(photo_bytes("Barack_Obama", 2)).faces[0].match.identity
    assert was is not None and was.person_id == again  # his second photo answered for the second record
    kept, moved = service.merge(obama, again)
    assert kept.id == obama and kept.name == "Barack Obama" and moved["embeddings"] == 1
    found = service.identify(photo_bytes("Barack_Obama", 3)).faces[0].match.identity
    assert found is not None and found.person_id == obama
    probe = service.identify(photo_bytes("Barack_Obama", 2)).faces[0].match
    assert probe.identity is not None and probe.identity.person_id == obama  # now his
    assert {c.person_id for c in probe.candidates} == {obama, clooney}


# --- over HTTP -----------------------------------------------------------------------------------

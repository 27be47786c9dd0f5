"""One more photo of an enrolled person, and one image of a person erased: in the store and the
service (over HTTP: tests/service/test_person_photos_http.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.errors import LastPhoto, PersonNotFound, PhotoExists
from core.store.changes import changes_since
from core.store.enroll_rows import free_display_name
from core.store.gallery import GalleryStore
from core.store.records import Enrollment

from conftest import photo_bytes
from records import (
    enrollment,
    every_stored_byte,
    gallery_at_schema,
    image,
    second_photo,
    store_contents,
)

# --- the store ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, taken, expected",
    [
        ("original.jpg", set(), "original.jpg"),
        ("original.jpg", {"original.jpg"}, "original_2.jpg"),
        ("original.jpg", {"original.jpg", "original_2.jpg"}, "original_3.jpg"),
        ("augmented_left_1.png", {"augmented_left_1.png"}, "augmented_left_2.png"),
        ("augmented_left_1.png", {"augmented_left_1.png", "augmented_left_2.png"}, "augmented_left_3.png"),
        ("augmented_up_2.png", {"augmented_up_2.png"}, "augmented_up_3.png"),
        ("noextension", {"noextension"}, "noextension_2"),
    ],
)
def test_display_names_get_the_next_free_number(name: str, taken: set[str], expected: str):
    picked = free_display_name(dataclasses.replace(image(b"x"), display_name=name), taken)
    assert picked.display_name == expected and expected in taken


def test_a_second_photo_joins_the_person_with_names_of_its_own(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    ada = store.add_person(enrollment("Ada", 1, n_views=1))
    token = changes_since(store).token
    assert store.add_person(second_photo("Ada", 2), into=ada, new_photo=True) == ada
    detail = store.person_detail(ada)
    assert [i.display_name for i in detail.images] == [
        "original.jpg",
        "augmented_v0.png",
        "original_2.jpg",
        "augmented_v0_2.png",
    ]
    assert detail.embedding_counts == {"m1": {"augmented_v0": 2, "original": 2}}
    assert store.find_image(ada, image(b"second photo of Ada").sha256, "original") == detail.images[2].id
    assert changes_since(store, token).person_ids == (ada,)


def test_the_same_photo_twice_is_refused_and_changes_nothing(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    ada = store.add_person(enrollment("Ada", 1, n_views=1))
    before = store_contents(store)
    with pytest.raises(PhotoExists, match="already has this photo"):
        store.add_person(enrollment("Ada", 3, n_views=2), into=ada, new_photo=True)
    assert store_contents(store) == before
    with pytest.raises(PersonNotFound):
        store.add_person(second_photo("Ada", 2), into=ada + 100, new_photo=True)
    assert store_contents(store) == before


def test_deleting_a_view_erases_its_rows_vector_and_bytes(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    ada_enrollment = enrollment("Ada", 1, n_views=2)
    ada = store.add_person(ada_enrollment)
    bob = store.add_person(enrollment("Bob", 2))
    bob_before = store.person_detail(bob)
    view = store.person_detail(ada).images[1]
    token = changes_since(store).token
    assert store.delete_image(ada, view.id) == {"images": 1, "views": 0, "embeddings": 1, "files": 1}
    detail = store.person_detail(ada)
    assert [i.id for i in detail.images] == [i.id for i in store.person_detail(ada).images]
    assert view.id not in {i.id for i in detail.images} and len(detail.images) == 2
    assert detail.embedding_counts == {"m1": {"augmented_v1": 1, "original": 1}}
    assert store.person_detail(bob) == bob_before
    assert not (tmp_path / view.path).exists()
    assert changes_since(store, token).person_ids == (ada,)
    with store.reader() as conn:
        assert conn.execute("SELECT COUNT(*) FROM embeddings WHERE image_id = ?", (view.id,)).fetchone()[0] == 0
        removed = conn.execute("SELECT COUNT(*) FROM embedding_removals").fetchone()[0]
    assert removed == 1  # the search index drops the vector at its next refresh
    on_disk = every_stored_byte(store)
    erased = ada_enrollment.embeddings[1]
    assert erased.vector.astype("<f4").tobytes() not in on_disk, "the erased vector is still readable"
    assert ada_enrollment.images[1].data not in on_disk, "the erased view's bytes are still readable"
    assert ada_enrollment.embeddings[0].vector.astype("<f4").tobytes() in on_disk  # the scan would see it


def test_removing_a_photo_removes_its_views_and_their_vectors_at_once(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    ada_enrollment = enrollment("Ada", 1, n_views=2)
    ada = store.add_person(ada_enrollment)
    second = second_photo("Ada", 2, n_views=3)
    store.add_person(second, into=ada, new_photo=True)
    images = store.person_detail(ada).images
    first, added = images[0], images[3]
    assert (
        added.source == "original"
        and [i.source_image_id for i in images] == [None, first.id, first.id, None] + [added.id] * 3
    )
    kept = {i.id for i in images[:3]}
    assert store.delete_image(ada, added.id) == {"images": 4, "views": 3, "embeddings": 4, "files": 4}
    detail = store.person_detail(ada)
    assert {i.id for i in detail.images} == kept
    assert detail.embedding_counts == {"m1": {"original": 1, "augmented_v0": 1, "augmented_v1": 1}}
    with store.reader() as conn:
        gone = [i.id for i in images[3:]]
        marks = ",".join("?" * len(gone))
        assert conn.execute(f"SELECT COUNT(*) FROM embeddings WHERE image_id IN ({marks})", gone).fetchone()[0] == 0
        assert conn.execute(f"SELECT COUNT(*) FROM images WHERE id IN ({marks})", gone).fetchone()[0] == 0
    assert all(not (tmp_path / i.path).exists() for i in images[3:])
    on_disk = every_stored_byte(store)
    for erased in second.embeddings:
        assert erased.vector.astype("<f4").tobytes() not in on_disk, "an erased view's vector is still readable"
    # one view alone goes by itself; its photo and the other view stay
    assert store.delete_image(ada, images[1].id)["images"] == 1
    assert [i.id for i in store.person_detail(ada).images] == [first.id, images[2].id]


def test_the_migration_links_existing_views_to_the_photo_of_their_enrollment(tmp_path: Path):

    conn = gallery_at_schema(tmp_path, 14)
    conn.execute("INSERT INTO persons(id, name, created_at) VALUES (1, 'Ada', 't0'), (2, 'Bob', 't0')")
    rows = [  # id, person, source, created_at: two enrollments of Ada, one of Bob at the same time, one orphan view
        (1, 1, "original", "t1"),
        (2, 1, "augmented_left", "t1"),
        (3, 2, "original", "t1"),
        (4, 2, "augmented_left", "t1"),
        (5, 1, "original", "t2"),
        (6, 1, "augmented_right", "t2"),
        (7, 1, "augmented_up", "t2"),
        (8, 1, "augmented_down", "t3"),  # its photo was removed before this version: stays unlinked
        (9, 2, "original", "t4"),  # Bob's import: every image at one time, two photos
        (10, 2, "augmented_left", "t4"),  # whose? not known: stays unlinked
        (11, 2, "original", "t4"),
    ]
    for image_id, person, source, at in rows:
        conn.execute(
            "INSERT INTO images(id, person_id, sha256, path, source, display_name, mime, width, height, "
            "num_bytes, created_at) VALUES (?, ?, 'x', 'p', ?, 'd', 'image/png', 1, 1, 1, ?)",
            (image_id, person, source, at),
        )
    conn.close()
    store = GalleryStore(tmp_path)  # migrates
    linked = {i.id: i.source_image_id for p in (1, 2) for i in store.person_detail(p).images}
    assert linked == {1: None, 2: 1, 3: None, 4: 3, 5: None, 6: 5, 7: 5, 8: None, 9: None, 10: None, 11: None}


def test_a_shared_file_stays_and_the_last_photo_cannot_go(tmp_path: Path, open_store):
    store = open_store(tmp_path)
    ada = store.add_person(enrollment("Ada", 1, n_views=0))
    carol_enrollment = enrollment("Carol", 5, n_views=0)
    carol = store.add_person(Enrollment("Carol", [image(b"photo of Ada")], carol_enrollment.embeddings[:1]))
    assert store.add_person(second_photo("Carol", 6, n_views=0), into=carol, new_photo=True) == carol
    shared = store.person_detail(carol).images[0]
    assert store.delete_image(carol, shared.id) == {"images": 1, "views": 0, "embeddings": 1, "files": 0}
    assert store.image(ada, store.person_detail(ada).images[0].id)[1] == b"photo of Ada"
    before = store_contents(store)
    last = store.person_detail(carol).images[0]
    with pytest.raises(LastPhoto, match="only uploaded photo"):
        store.delete_image(carol, last.id)
    with pytest.raises(PersonNotFound, match="has no image"):
        store.delete_image(ada, last.id)  # Carol's image, asked of Ada
    with pytest.raises(PersonNotFound, match="no person"):
        store.delete_image(carol + 100, last.id)
    assert store_contents(store) == before


# --- over HTTP ----------------------------------------------------------------------------------


def test_two_enrollments_of_one_face_at_the_same_moment_are_told_apart(service, tmp_path: Path):
    """Each searched a gallery without the other; the second to commit is checked again under
    the write lock against what committed since its search, and refused."""
    from core.errors import AlreadyEnrolled

    meanwhile: dict[str, object] = {}

    def enroll_meanwhile(name: str, data: bytes):
        def on_event(event) -> None:
            if event.stage == "embedded" and name not in meanwhile:  # searched, not yet stored
                meanwhile[name] = service.enroll(name, data).person_id

        return on_event

    obama, obama_2 = photo_bytes("Barack_Obama"), photo_bytes("Barack_Obama", 2)
    with pytest.raises(AlreadyEnrolled) as refused:
        service.enroll("Barack O", obama_2, progress=enroll_meanwhile("Barack Obama", obama))
    match = refused.value.match
    assert match is not None and (match["person_id"], match["name"]) == (meanwhile["Barack Obama"], "Barack Obama")
    assert match["same_photo"] is False and match["score"] >= match["threshold"]
    assert "nothing was stored" in refused.value.message
    assert [p.name for p in service.persons()] == ["Barack Obama"]
    files = [p for p in (service.store.data_dir / "images").rglob("*") if p.is_file()]
    assert len(files) == len(service.store.person_detail(meanwhile["Barack Obama"]).images)  # none of B. O's
    aniston = photo_bytes("Jennifer_Aniston")
    with pytest.raises(AlreadyEnrolled) as same:  # the very same photo, at the same moment
        service.enroll("J. Aniston", aniston, progress=enroll_meanwhile("Jennifer Aniston", aniston))
    assert same.value.match is not None and same.value.match["same_photo"] is True
    # someone else enrolled meanwhile: both stored; force skips both checks
    katy = service.enroll(
        "Katy Perry", photo_bytes("Katy_Perry"), progress=enroll_meanwhile("Hugh Grant", photo_bytes("Hugh_Grant"))
    )
    assert katy.person_id and {"Katy Perry", "Hugh Grant"} <= {p.name for p in service.persons()}
    forced = service.enroll("Barack O", obama_2, force=True)
    assert forced.name == "Barack O"

"""One more photo of an enrolled person, and one image of a person erased: in the store, then
over real HTTP on the session's Serve app."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from test_store import enrollment, image

from core.errors import LastPhoto, PersonNotFound, PhotoExists
from core.store.changes import changes_since
from core.store.enroll_rows import free_display_name
from core.store.gallery import GalleryStore
from core.store.records import Enrollment

from conftest import AUTH, photo_bytes, tree_digest

# --- the store ------------------------------------------------------------------------------


def second_photo(name: str, seed: int, n_views: int = 1) -> Enrollment:
    """Another photo of ``name`` with its views: different bytes, the same display names."""
    first = enrollment(name, seed, n_views)
    images = [dataclasses.replace(img, data=b"second " + img.data) for img in first.images]
    images = [dataclasses.replace(img, sha256=image(img.data).sha256) for img in images]
    return dataclasses.replace(first, images=images)


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


def test_a_second_photo_joins_the_person_with_names_of_its_own(tmp_path: Path):
    store = GalleryStore(tmp_path)
    ada = store.add_person(enrollment("Ada", 1, n_views=1))
    token = changes_since(store.db_path).token
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
    assert changes_since(store.db_path, token).person_ids == (ada,)


def test_the_same_photo_twice_is_refused_and_changes_nothing(tmp_path: Path):
    store = GalleryStore(tmp_path)
    ada = store.add_person(enrollment("Ada", 1, n_views=1))
    before = tree_digest(tmp_path)
    with pytest.raises(PhotoExists, match="already has this photo"):
        store.add_person(enrollment("Ada", 3, n_views=2), into=ada, new_photo=True)
    assert tree_digest(tmp_path) == before
    with pytest.raises(PersonNotFound):
        store.add_person(second_photo("Ada", 2), into=ada + 100, new_photo=True)
    assert tree_digest(tmp_path) == before


def test_deleting_a_view_erases_its_rows_vector_and_bytes(tmp_path: Path):
    store = GalleryStore(tmp_path)
    ada_enrollment = enrollment("Ada", 1, n_views=2)
    ada = store.add_person(ada_enrollment)
    bob = store.add_person(enrollment("Bob", 2))
    bob_before = store.person_detail(bob)
    view = store.person_detail(ada).images[1]
    token = changes_since(store.db_path).token
    assert store.delete_image(ada, view.id) == {"images": 1, "views": 0, "embeddings": 1, "files": 1}
    detail = store.person_detail(ada)
    assert [i.id for i in detail.images] == [i.id for i in store.person_detail(ada).images]
    assert view.id not in {i.id for i in detail.images} and len(detail.images) == 2
    assert detail.embedding_counts == {"m1": {"augmented_v1": 1, "original": 1}}
    assert store.person_detail(bob) == bob_before
    assert not (tmp_path / view.path).exists()
    assert changes_since(store.db_path, token).person_ids == (ada,)
    conn = sqlite3.connect(store.db_path)
    assert conn.execute("SELECT COUNT(*) FROM embeddings WHERE image_id = ?", (view.id,)).fetchone()[0] == 0
    removed = conn.execute("SELECT COUNT(*) FROM embedding_removals").fetchone()[0]
    conn.close()
    assert removed == 1  # the search index drops the vector at its next refresh
    on_disk = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    erased = ada_enrollment.embeddings[1]
    assert erased.vector.astype("<f4").tobytes() not in on_disk, "the erased vector is still readable"
    assert ada_enrollment.images[1].data not in on_disk, "the erased view's bytes are still readable"
    assert ada_enrollment.embeddings[0].vector.astype("<f4").tobytes() in on_disk  # the scan would see it


def test_removing_a_photo_removes_its_views_and_their_vectors_at_once(tmp_path: Path):
    store = GalleryStore(tmp_path)
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
    conn = sqlite3.connect(store.db_path)
    gone = [i.id for i in images[3:]]
    marks = ",".join("?" * len(gone))
    assert conn.execute(f"SELECT COUNT(*) FROM embeddings WHERE image_id IN ({marks})", gone).fetchone()[0] == 0
    assert conn.execute(f"SELECT COUNT(*) FROM images WHERE id IN ({marks})", gone).fetchone()[0] == 0
    conn.close()
    assert all(not (tmp_path / i.path).exists() for i in images[3:])
    on_disk = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for erased in second.embeddings:
        assert erased.vector.astype("<f4").tobytes() not in on_disk, "an erased view's vector is still readable"
    # one view alone goes by itself; its photo and the other view stay
    assert store.delete_image(ada, images[1].id)["images"] == 1
    assert [i.id for i in store.person_detail(ada).images] == [first.id, images[2].id]


def test_the_migration_links_existing_views_to_the_photo_of_their_enrollment(tmp_path: Path):
    from test_store import gallery_at_schema

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


def test_a_shared_file_stays_and_the_last_photo_cannot_go(tmp_path: Path):
    store = GalleryStore(tmp_path)
    ada = store.add_person(enrollment("Ada", 1, n_views=0))
    carol_enrollment = enrollment("Carol", 5, n_views=0)
    carol = store.add_person(Enrollment("Carol", [image(b"photo of Ada")], carol_enrollment.embeddings[:1]))
    assert store.add_person(second_photo("Carol", 6, n_views=0), into=carol, new_photo=True) == carol
    shared = store.person_detail(carol).images[0]
    assert store.delete_image(carol, shared.id) == {"images": 1, "views": 0, "embeddings": 1, "files": 0}
    assert store.image(ada, store.person_detail(ada).images[0].id)[1] == b"photo of Ada"
    before = tree_digest(tmp_path)
    last = store.person_detail(carol).images[0]
    with pytest.raises(LastPhoto, match="only uploaded photo"):
        store.delete_image(carol, last.id)
    with pytest.raises(PersonNotFound, match="has no image"):
        store.delete_image(ada, last.id)  # Carol's image, asked of Ada
    with pytest.raises(PersonNotFound, match="no person"):
        store.delete_image(carol + 100, last.id)
    assert tree_digest(tmp_path) == before


# --- over HTTP ----------------------------------------------------------------------------------


def enroll(api: httpx.Client, name: str, identity: str, n: int = 1) -> int:
    response = api.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": name},
        files={"photo": ("p.jpg", photo_bytes(identity, n), "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["person_id"])


def add(api: httpx.Client, person_id: int, identity: str, n: int, **form: str) -> httpx.Response:
    return api.post(
        f"/v1/persons/{person_id}/photos",
        headers=AUTH,
        data=form,
        files={"photo": ("p.jpg", photo_bytes(identity, n), "image/jpeg")},
    )


def test_add_a_photo_then_remove_images_over_http(api: httpx.Client):
    images_dir = api.data_dir / "images"  # type: ignore[attr-defined]
    scarlett = enroll(api, "Scarlett Photos", "Scarlett_Johansson")
    winona = enroll(api, "Winona Photos", "Winona_Ryder")
    try:
        added = add(api, scarlett, "Scarlett_Johansson", 2, views="left,smiling")
        assert added.status_code == 201, added.text
        body = added.json()
        assert body["person_id"] == scarlett and body["name"] == "Scarlett Photos"
        assert body["sources"][0] == "original" and len(body["views"]) == 2
        detail = api.get(f"/v1/persons/{scarlett}", headers=AUTH).json()
        names = [i["display_name"] for i in detail["images"]]
        assert names[:2] == ["original.jpg", "original_2.jpg"] and len(names) == body["num_images"] + 1
        assert detail["embedding_counts"]["arcface-mbf-w600k"]["original"] == 2

        before = tree_digest(images_dir)
        again = add(api, scarlett, "Scarlett_Johansson", 2)
        assert again.status_code == 409 and again.json()["error"]["code"] == "photo_exists"
        wrong = add(api, scarlett, "Winona_Ryder", 2, views="left")
        assert wrong.status_code == 409, wrong.text
        error = wrong.json()["error"]
        assert error["code"] == "matches_another_person" and f"person {winona}" in error["message"]
        assert error["match"]["person_id"] == winona and error["match"]["name"] == "Winona Photos"
        assert error["match"]["score"] >= error["match"]["threshold"] > 0
        stranger = add(api, scarlett, "Goldie_Hawn", 1, views="left")  # enrolled as nobody: not Scarlett either
        assert stranger.status_code == 409, stranger.text
        error = stranger.json()["error"]
        assert error["code"] == "not_this_person" and "force=true" in error["message"]
        assert error["match"]["person_id"] == scarlett and error["match"]["name"] == "Scarlett Photos"
        assert error["match"]["score"] < error["match"]["threshold"]
        missing = add(api, 999_999_999, "Scarlett_Johansson", 3)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "person_not_found"
        assert tree_digest(images_dir) == before
        assert api.get(f"/v1/persons/{scarlett}", headers=AUTH).json() == detail

        forced = add(api, scarlett, "Winona_Ryder", 2, force="true")
        assert forced.status_code == 201, forced.text
        wrong_image = api.get(f"/v1/persons/{scarlett}", headers=AUTH).json()["images"][-1]
        assert wrong_image["display_name"] == "original_3.jpg"
        gone = api.delete(f"/v1/persons/{scarlett}/images/{wrong_image['id']}", headers=AUTH)
        assert gone.status_code == 200, gone.text
        assert gone.json() == {
            "person_id": scarlett,
            "deleted_image": wrong_image["id"],
            "views": 0,
            "embeddings": 1,
            "files": 1,
        }
        assert api.get(wrong_image["url"], headers=AUTH).status_code == 404
        probe = {"photo": ("p.jpg", photo_bytes("Winona_Ryder", 2), "image/jpeg")}
        found = api.post("/v1/identify", headers=AUTH, files=probe, data={"top_k": "3"}).json()["faces"][0]
        assert found["identity"]["person_id"] == winona  # Scarlett's wrong photo no longer answers

        images = api.get(f"/v1/persons/{scarlett}", headers=AUTH).json()["images"]
        for victim in [i for i in images if i["source"] != "original"] + images[:1]:
            assert api.delete(f"/v1/persons/{scarlett}/images/{victim['id']}", headers=AUTH).status_code == 200
        [last] = api.get(f"/v1/persons/{scarlett}", headers=AUTH).json()["images"]
        assert last["display_name"] == "original_2.jpg"
        refused = api.delete(f"/v1/persons/{scarlett}/images/{last['id']}", headers=AUTH)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "last_photo"
        probe = {"photo": ("p.jpg", photo_bytes("Scarlett_Johansson", 3), "image/jpeg")}
        found = api.post("/v1/identify", headers=AUTH, files=probe).json()["faces"][0]
        assert found["identity"]["person_id"] == scarlett
    finally:
        for person in (scarlett, winona):
            api.delete(f"/v1/persons/{person}", headers=AUTH)


def test_a_streamed_added_photo_reports_progress_then_the_result(api: httpx.Client):
    person = enroll(api, "Steven Photos", "Steven_Spielberg")
    try:
        with api.stream(
            "POST",
            f"/v1/persons/{person}/photos",
            headers={**AUTH, "Accept": "application/x-ndjson"},
            data={"views": "up", "face": "largest"},  # a bystander beside him
            files={"photo": ("p.jpg", photo_bytes("Steven_Spielberg", 2), "image/jpeg")},
        ) as response:
            assert response.status_code == 200
            lines = [json.loads(line) for line in response.iter_lines() if line.strip()]
        stages = [line.get("stage") for line in lines[:-1]]
        assert stages[:3] == ["decoded", "detected", "generating"] and stages[-2:] == ["embedded", "stored"]
        assert lines[-1]["type"] == "result" and lines[-1]["person_id"] == person
        taken = api.post(  # a name already enrolled is refused before any view is generated
            "/v1/persons",
            headers={**AUTH, "Accept": "application/x-ndjson"},
            data={"name": "Steven Photos", "views": "up,down"},
            files={"photo": ("p.jpg", photo_bytes("Steven_Spielberg", 3), "image/jpeg")},
        )
        [line] = [json.loads(text) for text in taken.text.splitlines() if text.strip()]
        assert line["type"] == "error" and line["error"]["code"] == "person_exists"
    finally:
        api.delete(f"/v1/persons/{person}", headers=AUTH)


def test_a_face_enrolled_under_another_name_is_refused_unless_forced(api: httpx.Client):
    images_dir = api.data_dir / "images"  # type: ignore[attr-defined]
    keanu = enroll(api, "Keanu Duplicate", "Keanu_Reeves")
    forced: int | None = None
    try:
        before = tree_digest(images_dir)
        again = api.post(
            "/v1/persons",
            headers=AUTH,
            data={"name": "Keanu Again", "views": "left,up"},
            files={"photo": ("p.jpg", photo_bytes("Keanu_Reeves", 1), "image/jpeg")},
        )
        assert again.status_code == 409, again.text
        error = again.json()["error"]
        assert error["code"] == "already_enrolled" and f"person {keanu}" in error["message"]
        assert error["match"]["person_id"] == keanu and error["match"]["name"] == "Keanu Duplicate"
        assert error["match"]["score"] >= error["match"]["threshold"] > 0
        assert error["match"]["same_photo"] is True and "with this very photo" in error["message"]
        with api.stream(  # streamed: refused before any view is generated
            "POST",
            "/v1/persons",
            headers={**AUTH, "Accept": "application/x-ndjson"},
            data={"name": "Keanu Again", "views": "left,up"},
            files={"photo": ("p.jpg", photo_bytes("Keanu_Reeves", 1), "image/jpeg")},
        ) as response:
            lines = [json.loads(line) for line in response.iter_lines() if line.strip()]
        assert [line.get("stage") for line in lines[:-1]] == ["decoded", "detected"]
        assert lines[-1]["type"] == "error" and lines[-1]["error"]["code"] == "already_enrolled"
        assert tree_digest(images_dir) == before
        listed = api.get("/v1/persons", headers=AUTH, params={"prefix": "Keanu "}).json()
        assert [p["name"] for p in listed["persons"]] == ["Keanu Duplicate"]

        other = api.post(  # another photo of him (0.9604 to photo 1): identified, not the same bytes
            "/v1/persons",
            headers=AUTH,
            data={"name": "Keanu Again"},
            files={"photo": ("p.jpg", photo_bytes("Keanu_Reeves", 2), "image/jpeg")},
        )
        assert other.status_code == 409 and other.json()["error"]["match"]["person_id"] == keanu, other.text
        assert other.json()["error"]["match"]["same_photo"] is False
        assert "add the photo to that person" in other.json()["error"]["message"]
        made = api.post(
            "/v1/persons",
            headers=AUTH,
            data={"name": "Keanu Again", "force": "true"},
            files={"photo": ("p.jpg", photo_bytes("Keanu_Reeves", 1), "image/jpeg")},
        )
        assert made.status_code == 201, made.text
        forced = int(made.json()["person_id"])
        assert forced != keanu
    finally:
        for person in (keanu, forced):
            if person is not None:
                api.delete(f"/v1/persons/{person}", headers=AUTH)


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

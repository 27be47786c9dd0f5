"""A person's photos over HTTP: add one (streamed or not), remove images, a face of another person refused unless forced."""

from __future__ import annotations

import json

import httpx

from conftest import AUTH, photo_bytes, tree_digest


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

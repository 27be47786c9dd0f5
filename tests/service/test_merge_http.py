"""Merging two persons over HTTP; the Gallery grid's covers and the key a health check names."""

from __future__ import annotations

import httpx

from conftest import AUTH, FORCE, photo_bytes


def _enroll(api: httpx.Client, name: str, identity: str, n: int = 1) -> int:
    response = api.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": name, **FORCE},
        files={"photo": ("p.jpg", photo_bytes(identity, n), "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["person_id"])


def test_merge_over_http(api: httpx.Client):
    first = _enroll(api, "Merge Keanu", "Keanu_Reeves", 1)
    second = _enroll(api, "Merge Keanu Again", "Keanu_Reeves", 2)
    other = _enroll(api, "Merge Someone Else", "Gregg_Popovich", 1)
    try:
        refused = api.post(f"/v1/persons/{first}/merge", headers=AUTH, json={"other": other})
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "not_this_person" and error["match"]["person_id"] == first
        assert api.get(f"/v1/persons/{other}", headers=AUTH).status_code == 200
        assert api.post(f"/v1/persons/{first}/merge", headers=AUTH, json={"other": first}).status_code == 422
        missing = api.post(f"/v1/persons/{first}/merge", headers=AUTH, json={"other": 999_999_999})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "person_not_found"
        typo = api.post(f"/v1/persons/{first}/merge", headers=AUTH, json={"others": second})
        assert typo.status_code == 422

        merged = api.post(f"/v1/persons/{first}/merge", headers=AUTH, data={"other": str(second)})
        assert merged.status_code == 200, merged.text
        body = merged.json()
        assert body["person"]["id"] == first and body["merged"] == second and body["embeddings"] == 1
        assert api.get(f"/v1/persons/{second}", headers=AUTH).status_code == 404
        detail = api.get(f"/v1/persons/{first}", headers=AUTH).json()
        assert [i["display_name"] for i in detail["images"]] == ["original.jpg", "original_2.jpg"]
        probe = {"photo": ("p.jpg", photo_bytes("Keanu_Reeves", 2), "image/jpeg")}
        found = api.post("/v1/identify", headers=AUTH, files=probe).json()["faces"][0]
        assert found["identity"]["person_id"] == first  # every replica's index: the vector moved
        logged = api.get("/v1/access-log", headers=AUTH, params={"action": "merge", "person_id": first}).json()
        assert logged["entries"][0]["detail"].startswith(f"person {second}:")
    finally:
        for person in (first, second, other):
            api.delete(f"/v1/persons/{person}", headers=AUTH)


def test_a_grid_of_covers_names_nobody_and_opening_a_person_does(api: httpx.Client):
    person = _enroll(api, "Cover Person", "Jim_Furyk", 1)
    try:
        before = api.get("/v1/access-log", headers=AUTH, params={"person_id": person, "action": "view"}).json()
        page = api.get("/v1/persons", headers=AUTH, params={"prefix": "Cover Person"}).json()
        assert [p["id"] for p in page["persons"]] == [person]
        # the cover: the first image's id comes from a record, read here without the API
        cover_id = _first_image_id(api, person)
        counted_before = _browsed(api)
        thumb = api.get(f"/v1/persons/{person}/images/{cover_id}", headers=AUTH, params={"thumbnail": 96})
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        from io import BytesIO

        from PIL import Image

        assert max(Image.open(BytesIO(thumb.content)).size) <= 96
        after = api.get("/v1/access-log", headers=AUTH, params={"person_id": person, "action": "view"}).json()
        assert after["total"] == before["total"] == 0  # shown in a grid: not opened
        assert _browsed(api) == counted_before + 1  # counted in the key's browse entry, which names no one
        too_big = api.get(f"/v1/persons/{person}/images/{cover_id}", headers=AUTH, params={"thumbnail": 512})
        assert too_big.status_code == 422  # a cover is small: 192 px at most
        view = _enroll_view(api, person)
        not_cover = api.get(f"/v1/persons/{person}/images/{view}", headers=AUTH, params={"thumbnail": 96})
        assert not_cover.status_code == 422 and "not person" in not_cover.json()["error"]["message"]
        assert _browsed(api) == counted_before + 1
        assert api.get(f"/v1/persons/{person}", headers=AUTH).status_code == 200  # opened
        opened = api.get("/v1/access-log", headers=AUTH, params={"person_id": person, "action": "view"}).json()
        assert opened["total"] == 1 and opened["entries"][0]["detail"] == "person record"
    finally:
        api.delete(f"/v1/persons/{person}", headers=AUTH)


def _browsed(api: httpx.Client) -> int:
    """The cover thumbnails counted in the service key's newest browse entry (0: none)."""
    entries = api.get("/v1/access-log", headers=AUTH, params={"action": "browse", "key_name": "service key"}).json()
    if not entries["entries"]:
        return 0
    newest = entries["entries"][0]
    assert newest["person_id"] is None and newest["detail"].endswith(" cover thumbnails")
    return int(newest["detail"].split(" ", 1)[0])


def _enroll_view(api: httpx.Client, person: int) -> int:
    """Add a photo with a view to ``person`` (forced) and return the view's image id."""
    added = api.post(
        f"/v1/persons/{person}/photos",
        headers=AUTH,
        data={"views": "mirror", **FORCE},
        files={"photo": ("p.jpg", photo_bytes("Jim_Furyk", 2), "image/jpeg")},
    )
    assert added.status_code == 201, added.text
    images = _images(api, person)
    return max(i for i, source in images if source != "original")


def _images(api: httpx.Client, person: int) -> list[tuple[int, str]]:
    import io

    import pyarrow.parquet as pq

    table = api.get("/v1/export", headers=AUTH, params={"table": "images", "person_id": [str(person)]})
    assert table.status_code == 200, table.text
    return [(int(r["id"]), str(r["source"])) for r in pq.read_table(io.BytesIO(table.content)).to_pylist()]


def _first_image_id(api: httpx.Client, person: int) -> int:
    """The person's first image id, from the gallery's own snapshot (the console's source), which
    logs no view."""
    return min(image_id for image_id, _ in _images(api, person))


def test_health_tells_a_valid_key_its_scope(api: httpx.Client):
    anonymous = api.get("/v1/health").json()
    assert anonymous["key"] is None
    assert api.get("/v1/health", headers={"X-API-Key": "ma_wrong"}).json()["key"] is None
    admin = api.get("/v1/health", headers={"Authorization": f"Bearer {AUTH['X-API-Key']}"}).json()["key"]
    assert admin == {"name": "service key", "scope": "admin", "grants": ["admin", "enroll", "identify", "read"]}

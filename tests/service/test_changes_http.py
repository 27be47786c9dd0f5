"""The change log over HTTP (GET /v1/export/changes)."""

from __future__ import annotations

import httpx

from core.store.changes import parse_token

from conftest import AUTH, photo_bytes


def test_changes_over_http(api: httpx.Client):
    first = api.get("/v1/export/changes", headers=AUTH)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["person_ids"] == [] and body["complete"] is True
    assert body["etag"] == api.get("/v1/export", headers=AUTH).headers["etag"]
    created = api.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Changes Http"},
        files={"photo": ("p.jpg", photo_bytes("Jennifer_Aniston", 1), "image/jpeg")},
    )
    assert created.status_code == 201, created.text
    person = created.json()["person_id"]
    since = api.get("/v1/export/changes", headers=AUTH, params={"since": body["token"]}).json()
    assert person in since["person_ids"] and since["token"] != body["token"]
    assert api.delete(f"/v1/persons/{person}", headers=AUTH).status_code == 200
    gone = api.get("/v1/export/changes", headers=AUTH, params={"since": since["token"]}).json()
    assert gone["person_ids"] == [] and gone["deleted"] is True
    bad = api.get("/v1/export/changes", headers=AUTH, params={"since": "yesterday"})
    assert bad.status_code == 422 and "not a change token" in bad.json()["error"]["message"]
    epoch, number = parse_token(gone["token"])
    foreign = f"{(int(epoch, 16) ^ 1):016x}-{number}"
    stale = api.get("/v1/export/changes", headers=AUTH, params={"since": foreign})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "changes_unavailable"
    assert api.get("/v1/export/changes").status_code == 401

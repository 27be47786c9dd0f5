"""API keys with scopes: every route walked with every scope, revocation, the CLI, and no key in
any log of the run."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from core.store.gallery import GalleryStore
from core.store.keys import KeyStore

from conftest import KEY, cli, off_process

# What each route needs, written here independently of serve/api.py: admin > enroll (+ read) |
# identify. A route missing from this table fails the test (the walk comes from /openapi.json).
NEEDS = {
    ("GET", "/v1/health"): None,
    ("GET", "/v1/stats/generation"): "read",
    ("GET", "/v1/stats/batching"): "read",
    ("GET", "/v1/stats/enrollments"): "read",
    ("GET", "/v1/stats/searches"): "read",
    ("GET", "/v1/thresholds"): "read",
    ("GET", "/v1/duplicates"): "admin",
    ("POST", "/v1/duplicates/jobs"): "admin",
    ("GET", "/v1/duplicates/audit"): "admin",
    ("GET", "/v1/persons"): "read",
    ("GET", "/v1/persons/{person_id}"): "read",
    ("GET", "/v1/persons/{person_id}/images/{image_id}"): "read",
    ("POST", "/v1/persons"): "enroll",
    ("POST", "/v1/persons/{person_id}/photos"): "enroll",
    ("POST", "/api/enroll"): "enroll",
    ("POST", "/v1/generate"): "enroll",
    ("PATCH", "/v1/persons/{person_id}"): "admin",
    ("DELETE", "/v1/persons/{person_id}"): "admin",
    ("DELETE", "/v1/persons/{person_id}/images/{image_id}"): "admin",
    ("POST", "/v1/persons/{person_id}/merge"): "admin",
    ("GET", "/v1/export"): "admin",
    ("GET", "/v1/export/changes"): "admin",
    ("GET", "/v1/export/gallery"): "admin",
    ("GET", "/v1/models"): "read",
    ("POST", "/v1/models/reembed"): "admin",
    ("POST", "/v1/models/{name}/activate"): "admin",
    ("DELETE", "/v1/models/{name}/embeddings"): "admin",
    ("GET", "/v1/access-log"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("POST", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{key_id}"): "admin",
    ("GET", "/v1/jobs"): "read",
    ("GET", "/v1/jobs/{job_id}"): "read",
    ("POST", "/v1/identify"): "identify",
    ("POST", "/v1/verify"): "identify",
    ("POST", "/v1/persons/{person_id}/verify"): "identify",
    ("POST", "/v1/embed"): "identify",
}
ALLOWED = {"admin": {"admin", "enroll", "read", "identify"}, "enroll": {"enroll", "read"}, "identify": {"identify"}}


@pytest.fixture(scope="module")
def scoped_keys(api: httpx.Client) -> dict[str, str]:
    script = """
import json, sys
from core.store.gallery import GalleryStore
from core.store.keys import KeyStore
keys = KeyStore(GalleryStore(json.loads(sys.argv[1])["data_dir"]))
made = {scope: keys.create(f"test {scope}", scope)[1] for scope in ("admin", "enroll", "identify")}
revoked, secret = keys.create("test revoked", "admin")
keys.revoke(revoked.id)
print(json.dumps({**made, "revoked": secret}))
"""
    return off_process(script, data_dir=api.data_dir)  # type: ignore[attr-defined]


def test_every_route_with_every_scope(api: httpx.Client, scoped_keys: dict[str, str]):
    spec = api.get("/openapi.json").json()
    routes = {(m.upper(), path) for path, item in spec["paths"].items() for m in item}
    assert routes == set(NEEDS), f"classify these routes in NEEDS: {routes ^ set(NEEDS)}"
    for (method, template), need in sorted(NEEDS.items()):
        path = (  # no such person, job or model
            template.replace("{person_id}", "999999")
            .replace("{image_id}", "1")
            .replace("{job_id}", "999999")
            .replace("{key_id}", "999999")
        ).replace("{name}", "no-such-model")
        callers = {"none": {}, "wrong": {"X-API-Key": "ma_wrong"}, "revoked": {"X-API-Key": scoped_keys["revoked"]}}
        callers |= {scope: {"Authorization": f"Bearer {scoped_keys[scope]}"} for scope in ALLOWED}
        for caller, headers in callers.items():
            status = api.request(method, path, headers=headers).status_code
            where = f"{method} {template} as {caller}"
            if need is None:
                assert status == 200, where
            elif caller not in ALLOWED:
                assert status == 401, where
            elif need in ALLOWED[caller]:
                assert status not in (401, 403), where  # past the key check: 404/422 for these empty calls
            else:
                assert status == 403, where
    forbidden = api.delete("/v1/persons/1", headers={"X-API-Key": scoped_keys["enroll"]})
    assert forbidden.json()["error"]["code"] == "forbidden" and "admin" in forbidden.json()["error"]["message"]


def test_a_scoped_key_does_its_job(api: httpx.Client, scoped_keys: dict[str, str]):
    from conftest import photo_bytes

    enroll = {"X-API-Key": scoped_keys["enroll"]}
    created = api.post(
        "/v1/persons",
        headers=enroll,
        data={"name": "Scoped Enrollee", "face": "largest"},  # a bystander at the edge
        files={"photo": ("p.jpg", photo_bytes("Clint_Eastwood", 1), "image/jpeg")},
    )
    assert created.status_code == 201, created.text
    found = api.post(
        "/v1/identify",
        headers={"X-API-Key": scoped_keys["identify"]},
        files={"photo": ("q.jpg", photo_bytes("Clint_Eastwood", 2), "image/jpeg")},
    ).json()
    assert found["faces"][0]["label"] == "Scoped Enrollee"
    assert [c["name"] for c in found["faces"][0]["candidates"]] == ["Scoped Enrollee"]  # only who it is

    # a stranger: an identify key learns nothing of who is enrolled; a key that reads the gallery
    # sees the nearest persons, as it could list them anyway
    stranger = {"photo": ("s.jpg", photo_bytes("Art_Howe", 1), "image/jpeg")}
    door = api.post("/v1/identify", headers={"X-API-Key": scoped_keys["identify"]}, files=stranger).json()
    desk = api.post(
        "/v1/identify", headers={"X-API-Key": scoped_keys["admin"]}, files=stranger, data={"top_k": "3"}
    ).json()
    assert door["faces"][0]["label"] == "unknown" and door["faces"][0]["candidates"] == []
    assert desk["faces"][0]["label"] == "unknown" and 1 <= len(desk["faces"][0]["candidates"]) <= 3
    person = created.json()["person_id"]
    claims = {
        scope: api.post(
            f"/v1/persons/{person}/verify", headers={"X-API-Key": scoped_keys[scope]}, files=stranger
        ).json()
        for scope in ("identify", "admin")
    }
    assert claims["identify"]["same_person"] is False and claims["identify"]["name"] is None  # a failed claim
    assert claims["admin"]["same_person"] is False and claims["admin"]["name"] == "Scoped Enrollee"
    honest = api.post(
        f"/v1/persons/{person}/verify",
        headers={"X-API-Key": scoped_keys["identify"]},
        files={"photo": ("q.jpg", photo_bytes("Clint_Eastwood", 2), "image/jpeg")},
    ).json()
    assert honest["same_person"] is True and honest["name"] == "Scoped Enrollee"
    assert api.delete(f"/v1/persons/{created.json()['person_id']}", headers=enroll).status_code == 403
    assert api.delete(f"/v1/persons/{created.json()['person_id']}", headers={"X-API-Key": KEY}).status_code == 200


def test_keys_over_http(api: httpx.Client, scoped_keys: dict[str, str]):
    """An admin makes a key, sees it listed without its secret, and revokes it; each is logged."""
    admin = {"X-API-Key": KEY}
    made = api.post("/v1/keys", headers=admin, data={"name": "lobby tablet", "scope": "identify"})
    assert made.status_code == 201, made.text
    key, secret = made.json()["key"], made.json()["secret"]
    assert key["name"] == "lobby tablet" and key["scope"] == "identify" and key["revoked_at"] is None
    assert secret.startswith(key["prefix"]) and len(secret) > 30
    listed = api.get("/v1/keys", headers=admin)
    assert listed.status_code == 200 and key in listed.json()["keys"]
    assert secret not in listed.text  # the secret is answered once, never listed
    # the new key works, within its scope
    assert api.get("/v1/persons", headers={"X-API-Key": secret}).status_code == 403
    assert api.post("/v1/identify", headers={"X-API-Key": secret}).status_code == 422  # past the key check
    revoked = api.delete(f"/v1/keys/{key['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert api.get("/v1/persons", headers={"X-API-Key": secret}).status_code == 401
    again, unknown = api.delete(f"/v1/keys/{key['id']}", headers=admin), api.delete("/v1/keys/999999", headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "key_revoked"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "key_not_found"
    bad = [
        api.post("/v1/keys", headers=admin, data={"name": "x", "scope": "root"}),
        api.post("/v1/keys", headers=admin, data={"name": " ", "scope": "admin"}),
    ]
    bad.append(api.post("/v1/keys", headers=admin, json={"name": "x", "scope": "root"}))
    assert [b.status_code for b in bad] == [422, 422, 422]
    assert "scope" in bad[2].json()["error"]["message"]
    assert "scope" in bad[0].json()["error"]["message"] and "name" in bad[1].json()["error"]["message"]
    lesser = api.post("/v1/keys", headers={"X-API-Key": scoped_keys["enroll"]}, data={"name": "y", "scope": "admin"})
    assert lesser.status_code == 403  # an enroll key cannot make itself an admin one
    assert len(api.get("/v1/keys", headers=admin).json()["keys"]) == len(listed.json()["keys"])
    entries = api.get("/v1/access-log", headers=admin, params={"key_name": "service key", "limit": 20}).json()
    logged = [(e["action"], e["detail"]) for e in entries["entries"] if e["action"].startswith("key_")]
    assert logged[:2] == [
        ("key_revoke", f"key {key['id']}, scope identify"),
        ("key_create", f"key {key['id']}, scope identify"),
    ]
    assert secret not in str(entries)
    as_json = api.post("/v1/keys", headers=admin, json={"name": "json camera", "scope": "identify"})
    assert as_json.status_code == 201 and as_json.json()["key"]["scope"] == "identify"  # JSON or a form
    assert api.delete(f"/v1/keys/{as_json.json()['key']['id']}", headers=admin).status_code == 200
    _not_in_any_log(secret, as_json.json()["secret"])  # the answer that held it is the only place it went


def test_no_key_in_any_log_of_the_run(api: httpx.Client, scoped_keys: dict[str, str]):
    api.get("/v1/persons", headers={"X-API-Key": scoped_keys["admin"]})  # something with each kind of key
    api.get("/v1/persons", headers={"Authorization": f"Bearer {KEY}"})
    _not_in_any_log(KEY, *scoped_keys.values())


def _not_in_any_log(*secrets: str) -> None:
    import ray

    session = Path(ray._private.worker._global_node.get_session_dir_path())  # this test session's Ray
    logs = [p for p in (session / "logs").rglob("*") if p.is_file()]
    assert any("serve" in p.parts for p in logs), "found no Serve logs to scan"
    for path in logs:
        text = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in text, f"a key appears in {path}"


def test_keys_command_creates_lists_and_revokes(tmp_path: Path):
    made = cli(tmp_path, "keys", "create", "--scope", "identify", "--name", "door camera")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("ma_") and len(secret) > 40 and secret not in made.stderr
    store = GalleryStore(tmp_path)
    keys = KeyStore(store)
    assert keys.scope_of(secret) == "identify"
    assert secret.encode() not in (tmp_path / "gallery.db").read_bytes()  # stored hashed
    store.close()  # that read dropped this process's locks on the file: its open connections go
    listed = cli(tmp_path, "keys", "list").stdout
    assert "identify" in listed and "door camera" in listed and secret[:7] in listed and secret not in listed
    assert cli(tmp_path, "keys", "revoke", "1").returncode == 0
    assert keys.scope_of(secret) is None
    again = cli(tmp_path, "keys", "revoke", "1")
    assert again.returncode != 0 and "already revoked" in again.stderr
    bad = cli(tmp_path, "keys", "create", "--scope", "root", "--name", "x")
    assert bad.returncode != 0 and "invalid choice" in bad.stderr

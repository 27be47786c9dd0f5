"""Renaming over HTTP and the Parquet export of the gallery (GET /v1/export): tables, columns,
vectors, and 304 while the gallery is unchanged; on the session's Serve app."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pyarrow.parquet as pq

from conftest import AUTH, FORCE, files, photo_bytes, tree_digest


def test_rename_takes_json_or_form(api: httpx.Client):
    """A REST client's JSON body and a form rename alike; a wrong body is a 422 naming the problem
    and changes nothing."""
    made = api.post(
        "/v1/persons", headers=AUTH, data={"name": "Json Rename"}, files=files(photo=photo_bytes("Paul_Allen"))
    )
    pid = made.json()["person_id"]
    try:
        by_json = api.patch(f"/v1/persons/{pid}", headers=AUTH, json={"name": "Json Renamed"})
        assert by_json.status_code == 200 and by_json.json()["name"] == "Json Renamed"
        by_form = api.patch(f"/v1/persons/{pid}", headers=AUTH, data={"name": "Json Renamed Twice"})
        assert by_form.status_code == 200 and by_form.json()["name"] == "Json Renamed Twice"
        before = tree_digest(api.data_dir)
        text = {"content-type": "text/plain", **AUTH}
        bad = {
            "no name": (api.patch(f"/v1/persons/{pid}", headers=AUTH, json={}), "name: Field required"),
            "misspelt": (api.patch(f"/v1/persons/{pid}", headers=AUTH, json={"nmae": "X"}), "nmae"),
            "not a string": (api.patch(f"/v1/persons/{pid}", headers=AUTH, json={"name": 5}), "name"),
            "an array": (api.patch(f"/v1/persons/{pid}", headers=AUTH, json=["X"]), "must be an object"),
            "broken": (
                api.patch(
                    f"/v1/persons/{pid}",
                    headers=AUTH,
                    content=b'{"name":',
                ),
                "not valid JSON",
            ),
            "plain text": (api.patch(f"/v1/persons/{pid}", headers=text, content=b"X"), "not text/plain"),
            "empty": (api.patch(f"/v1/persons/{pid}", headers=AUTH), "the body is empty"),
            "a file": (api.patch(f"/v1/persons/{pid}", headers=AUTH, files={"name": b"X"}), "not files"),
            "blank": (api.patch(f"/v1/persons/{pid}", headers=AUTH, json={"name": "  "}), "name"),
        }
        for label, (response, says) in bad.items():
            assert response.status_code == 422, label
            assert response.json()["error"]["code"] in ("invalid_request", "invalid_name"), label
            assert says in response.json()["error"]["message"], (label, response.json())
        assert api.patch(f"/v1/persons/{pid}", json={"name": "No Key"}).status_code == 401  # the key first
        assert tree_digest(api.data_dir) == before
        bare = api.patch(f"/v1/persons/{pid}", headers=AUTH, content=b'{"name": "Json Renamed Bare"}')
        assert bare.status_code == 200, bare.text  # no Content-Type: read as JSON
        assert api.get(f"/v1/persons/{pid}", headers=AUTH).json()["name"] == "Json Renamed Bare"
        body = api.get("/openapi.json").json()["paths"]["/v1/persons/{person_id}"]["patch"]["requestBody"]
        assert set(body["content"]) == {"application/json", "application/x-www-form-urlencoded"}
        assert body["content"]["application/json"]["schema"]["required"] == ["name"]
    finally:
        api.delete(f"/v1/persons/{pid}", headers=AUTH)


def test_rename_and_export(api: httpx.Client):
    first = api.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Export One", "views": "left"},
        files=files(photo=photo_bytes("Elon_Musk")),
    )
    second = api.post(
        "/v1/persons", headers=AUTH, data={"name": "Export Two"}, files=files(photo=photo_bytes("Jack_Dorsey"))
    )
    pid = first.json()["person_id"]
    assert api.patch(f"/v1/persons/{pid}", headers=AUTH, data={"name": "Export Two"}).status_code == 409
    assert api.patch("/v1/persons/999999", headers=AUTH, data={"name": "Nobody"}).status_code == 404
    renamed = api.patch(f"/v1/persons/{pid}", headers=AUTH, data={"name": "Export Uno"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Export Uno"

    assert api.get("/v1/export", params={"table": "persons"}).status_code == 401
    assert api.get("/v1/export", headers=AUTH, params={"table": "secrets"}).status_code == 422
    persons = pq.read_table(
        io.BytesIO(api.get("/v1/export", headers=AUTH, params={"table": "persons"}).content)
    ).to_pylist()
    assert {"Export Uno", "Export Two"} <= {p["name"] for p in persons}
    response = api.get("/v1/export", headers=AUTH, params={"table": "embeddings", "vectors": "true"})
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    embeddings = pq.read_table(io.BytesIO(response.content)).to_pylist()
    mine = [e for e in embeddings if e["person_id"] == pid]
    assert len(mine) == first.json()["num_embeddings"] and {e["source"] for e in mine} == set(first.json()["sources"])
    vector = np.frombuffer(mine[0]["vector"], dtype="<f4")
    assert vector.shape == (512,) and abs(np.linalg.norm(vector) - 1) < 1e-4
    slim = api.get(
        "/v1/export", headers=AUTH, params={"table": "embeddings", "column": ["person_id", "source"], "person_id": pid}
    )
    table = pq.read_table(io.BytesIO(slim.content))
    assert table.column_names == ["person_id", "source"] and table.num_rows == len(mine)
    assert sorted(table.column("source").to_pylist()) == sorted(e["source"] for e in mine)
    refused = api.get("/v1/export", headers=AUTH, params={"table": "embeddings", "column": "vectorz"})
    assert refused.status_code == 422 and "no column 'vectorz'" in refused.json()["error"]["message"]
    assert second.status_code == 201


def test_export_answers_not_modified_while_the_gallery_is_unchanged(api: httpx.Client):
    """ETag / If-None-Match: a client holding a snapshot is answered 304 (no body, no table read)
    until a person, image or embedding changes."""
    params = {"table": "persons", "column": ["id", "name"]}
    first = api.get("/v1/export", headers=AUTH, params=params)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('W/"') and first.headers["cache-control"] == "private, no-cache"

    def asked(tag: str, **extra: str) -> httpx.Response:
        return api.get("/v1/export", headers={**AUTH, "If-None-Match": tag}, params={**params, **extra})

    same = asked(etag)
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    assert asked(etag.removeprefix("W/")).status_code == 304  # compared weakly
    assert asked(f'"0000000000000000", {etag}').status_code == 304 and asked("*").status_code == 304
    other = asked('"0000000000000000"')
    assert other.status_code == 200 and other.content == first.content
    assert api.get("/v1/export", headers={"If-None-Match": etag}, params=params).status_code == 401
    assert asked(etag, table="secrets").status_code == 422  # a bad request is refused, not "unchanged"
    enrolled = api.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Etag Person", **FORCE},
        files=files(photo=photo_bytes("Jack_Dorsey", 2)),
    )
    assert enrolled.status_code == 201
    fresh = asked(etag)
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag
    assert "Etag Person" in pq.read_table(io.BytesIO(fresh.content)).column("name").to_pylist()
    assert asked(fresh.headers["etag"]).status_code == 304
    pid = enrolled.json()["person_id"]
    assert api.patch(f"/v1/persons/{pid}", headers=AUTH, data={"name": "Etag Renamed"}).status_code == 200
    renamed = asked(fresh.headers["etag"])
    assert (
        renamed.status_code == 200
        and "Etag Renamed" in pq.read_table(io.BytesIO(renamed.content)).column("name").to_pylist()
    )

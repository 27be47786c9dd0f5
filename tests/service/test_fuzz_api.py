"""The HTTP API under a schema fuzzer: schemathesis generates requests for every operation of the
API's own OpenAPI document, with each key scope (admin, enroll, identify, none), and checks that
no answer is a server error, that every status is one the document declares for the operation,
and that every body matches its declared schema.

It runs against a real Serve application of its own (same code, same deployments, beside the
session's app in the session's Serve instance, at route prefix /fuzz, with a data dir of its own):
with the admin key the fuzzer deletes persons, revokes keys and starts re-embeddings, which must
not touch the gallery the other tests read. Bounded in examples per operation and scope; the seed
is logged and named in every failure (FUZZ_SEED=N replays it; FUZZ_EXAMPLES=N runs longer).
Afterwards the gallery must pass its full integrity check.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import AUTH, KEY, MAX_UPLOAD, off_process, photo_bytes

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance  # noqa: E402

log = logging.getLogger(__name__)
SEED = int(os.environ.get("FUZZ_SEED") or random.randrange(2**32))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES") or 12)
PREFIX = "/fuzz"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzz_app(serve_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A second ManyAngles application in the session's Serve: its own gallery to wreck."""
    from ray import serve

    from core.settings import Settings
    from serve.app import compose
    from serve.config import deployment_options

    data = tmp_path_factory.mktemp("fuzz") / "data"
    settings = Settings(data_dir=data, api_key=KEY, max_upload_bytes=MAX_UPLOAD)
    serve.run(compose(settings, deployment_options()), name="fuzz", route_prefix=PREFIX)
    base = f"http://127.0.0.1:{serve_port}{PREFIX}"
    with httpx.Client(base_url=base, timeout=300, headers={"X-API-Key": KEY}) as client:
        for who in ("Pedro_Malan", "Zhu_Rongji"):  # persons for the fuzzer's ids to find now and then
            enrolled = client.post(
                "/v1/persons",
                data={"name": who.replace("_", " "), "views": "left"},
                files={"photo": ("p.jpg", photo_bytes(who, 1), "image/jpeg")},
            )
            assert enrolled.status_code == 201, enrolled.text
    log.info(
        "fuzzing %s: seed %d (FUZZ_SEED=%d replays it), %d examples per operation and scope", base, SEED, SEED, EXAMPLES
    )
    yield base, data
    serve.delete("fuzz")


@pytest.fixture(scope="module")
def keys(fuzz_app: tuple[str, Path]) -> dict[str, dict[str, str]]:
    script = """
import json, sys
from core.store.gallery import GalleryStore
from core.store.keys import KeyStore
keys = KeyStore(GalleryStore(json.loads(sys.argv[1])["data_dir"]))
print(json.dumps({scope: keys.create(f"fuzz {scope}", scope)[1] for scope in ("enroll", "identify")}))
"""
    made = off_process(script, data_dir=fuzz_app[1])
    return {
        "admin": {"X-API-Key": KEY},
        "enroll": {"X-API-Key": made["enroll"]},
        "identify": {"X-API-Key": made["identify"]},
        "none": {},
    }


@pytest.fixture(scope="module")
def operations(fuzz_app: tuple[str, Path]) -> list:
    """Every operation of the fuzzed app's own OpenAPI document."""
    base, _ = fuzz_app
    loaded = schemathesis.openapi.from_url(f"{base}/openapi.json")
    found = [result.ok() for result in loaded.get_all_operations()]
    assert len(found) >= 35, f"only {len(found)} operations in the OpenAPI document"
    return found


def fuzz(operations: list, base: str, headers: dict[str, str], scope: str) -> tuple[int, list[str]]:
    """Valid and invalid requests for every operation (``EXAMPLES`` each), checked; returns how
    many requests were sent and the failures, each named with its operation, scope and seed."""
    failures: list[str] = []
    sent = 0
    for operation in operations:
        cases = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @FUZZ
        @seed(SEED)
        @given(case=cases)
        def send(case) -> None:
            nonlocal sent
            sent += 1
            case.call_and_validate(base_url=base, headers=headers, checks=CHECKS, timeout=120)

        try:
            send()
        except Exception as exc:  # noqa: BLE001 - every failure of every operation is reported
            failures.append(f"{operation.label} with the {scope} key: {type(exc).__name__}: {exc}"[:2000])
    return sent, failures


@pytest.mark.parametrize("scope", ["admin", "enroll", "identify", "none"])
def test_every_operation_with_every_key_scope(
    scope: str, operations: list, fuzz_app: tuple[str, Path], keys: dict[str, dict[str, str]]
) -> None:
    started = time.monotonic()
    sent, failures = fuzz(operations, fuzz_app[0], keys[scope], scope)
    log.info(
        "%s key: %d requests over %d operations in %.0f s", scope, sent, len(operations), time.monotonic() - started
    )
    assert sent >= len(operations)
    assert not failures, f"fuzz seed {SEED} (FUZZ_SEED={SEED} replays it):\n" + "\n\n".join(failures)


def test_the_gallery_is_whole_after_the_fuzzing(fuzz_app: tuple[str, Path], keys) -> None:
    base, data = fuzz_app
    with httpx.Client(base_url=base, timeout=60, headers=keys["admin"]) as client:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # the re-embeddings and searches it started, finished
            if not any(job["state"] == "running" for job in client.get("/v1/jobs").json()):
                break
            time.sleep(1)
    script = """
import json, sys
from pathlib import Path
from core.store.gallery import GalleryStore
from core.store.maintenance import check_store
store = GalleryStore(json.loads(sys.argv[1])["data_dir"])
check_store(store, min_age_s=0.0, full=True)  # raises StoreCorrupt unless SQLite's integrity_check is ok
with store.reader() as conn:
    dangling = conn.execute("PRAGMA foreign_key_check").fetchall()
    missing = [p for (p,) in conn.execute("SELECT DISTINCT path FROM images") if not (store.data_dir / p).is_file()]
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("persons", "images", "embeddings")}
print(json.dumps({"dangling": len(dangling), "missing": missing, "counts": counts}))
"""
    whole = off_process(script, data_dir=data)
    assert whole["dangling"] == 0 and whole["missing"] == [], whole


# --- what the fuzzer found, each kept as a test (on the session's app) --------------------------


def test_an_empty_or_malformed_if_none_match_is_simply_no_match(api: httpx.Client) -> None:
    for header in ("", '"', "W/", ",,", "*x", '"nope", W/"also-no"'):
        answer = api.get("/v1/export", headers={**AUTH, "If-None-Match": header}, params={"table": "persons"})
        assert answer.status_code == 200, (header, answer.text)
    # the 500 the fuzzer found: vectors of a table that has none (a KeyError), with or without the header
    for headers in ({**AUTH, "If-None-Match": ""}, AUTH):
        answer = api.get("/v1/export", headers=headers, params={"vectors": "true"})
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_input" and "embeddings table only" in error["message"]


@pytest.mark.parametrize(
    "path", ["/v1/persons", "/v1/identify", "/v1/verify", "/v1/embed", "/v1/generate", "/v1/persons/1/photos"]
)
def test_a_body_that_is_not_its_content_type_is_a_documented_422(api: httpx.Client, path: str) -> None:
    broken = b"--b0undary\r\n\xe0\xb8\x81 not a part--b0undary--\r\n"
    answer = api.post(path, headers={**AUTH, "Content-Type": "multipart/form-data; boundary=b0undary"}, content=broken)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "malformed_body" and "multipart/form-data" in error["message"]
    template = path.replace("/1/", "/{person_id}/")
    documented = api.get("/openapi.json").json()["paths"][template]["post"]["responses"]
    assert "422" in documented and "malformed_body" in documented["422"]["description"]

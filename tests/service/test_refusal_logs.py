"""A refusal the API makes by design (no face, not an image, several faces, a duplicate) is one
log line with its code, and no traceback: not in the replicas' logs, nor on the terminal of
``serve run`` (which shows the replicas' stderr, the worker-*.err files here)."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from core.errors import AlreadyEnrolled, GenerationFailed, MultipleFaces, NoFaceFound, ServiceBusy
from serve.refusals import Refused, is_refusal

from conftest import AUTH, FORCE, photo, photo_bytes, side_by_side


def gray_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(buf, format="JPEG")
    return buf.getvalue()


def upload(data: bytes) -> dict[str, tuple[str, bytes, str]]:
    return {"photo": ("photo.jpg", data, "image/jpeg")}


def _service_logs() -> list[Path]:
    """Serve's logs (one file per replica, the controller, the proxy) and every worker's stdout
    and stderr: what ``serve run`` streams to its terminal."""
    import ray

    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"  # this test session's Ray
    return [p for p in [*(logs / "serve").glob("*"), *logs.glob("worker-*")] if p.is_file()]


def _sizes() -> dict[Path, int]:
    return {path: path.stat().st_size for path in _service_logs()}


def _written_since(sizes: dict[Path, int]) -> dict[Path, str]:
    """What each log got since ``sizes`` (a file new since then: all of it)."""
    out = {}
    for path in _service_logs():
        with path.open("rb") as f:
            f.seek(sizes.get(path, 0))
            out[path] = f.read().decode("utf-8", "replace")
    return out


def test_refusals_log_one_line_with_the_code_and_no_traceback(api: httpx.Client):
    name = "Refusal Logs Hawn"
    first = api.post(
        "/v1/persons", headers=AUTH, data={"name": name, **FORCE}, files=upload(photo_bytes("Goldie_Hawn"))
    )
    assert first.status_code == 201, first.text
    person_id = first.json()["person_id"]
    try:
        before = _sizes()
        sent = [
            ("no_face", 422, api.post("/v1/persons", headers=AUTH, data={"name": "X"}, files=upload(gray_jpeg()))),
            (
                "not_an_image",
                422,
                api.post("/v1/persons", headers=AUTH, data={"name": "X"}, files=upload(b"not an image\n" * 40)),
            ),
            (
                "multiple_faces",
                422,
                api.post(
                    "/v1/persons",
                    headers=AUTH,
                    data={"name": "X", "face": "single"},
                    files=upload(side_by_side(photo("Matt_Damon"), photo("George_Clooney"))),
                ),
            ),
            (  # the same photo under another name: a duplicate enrollment
                "already_enrolled",
                409,
                api.post("/v1/persons", headers=AUTH, data={"name": "X"}, files=upload(photo_bytes("Goldie_Hawn"))),
            ),
            (
                "person_exists",
                409,
                api.post("/v1/persons", headers=AUTH, data={"name": name}, files=upload(photo_bytes("Goldie_Hawn"))),
            ),
            (
                "photo_exists",
                409,
                api.post(f"/v1/persons/{person_id}/photos", headers=AUTH, files=upload(photo_bytes("Goldie_Hawn"))),
            ),
            (  # a lone photo is analysed in the API replica (serve/near.py); verify's two always go
                # to the Embedder, whose refusal crosses Ray as a value, not as an exception
                "no_face",
                422,
                api.post(
                    "/v1/verify",
                    headers=AUTH,
                    files={
                        "photo_a": ("a.jpg", gray_jpeg(), "image/jpeg"),
                        "photo_b": ("b.jpg", gray_jpeg(), "image/jpeg"),
                    },
                ),
            ),
        ]
        for code, status, response in sent:
            assert response.status_code == status and response.json()["error"]["code"] == code, response.text
        streamed = api.post(  # a streamed enrollment: 200, its refusal on the last line
            "/v1/persons",
            headers={**AUTH, "Accept": "application/x-ndjson"},
            data={"name": "X"},
            files=upload(gray_jpeg()),
        )
        assert streamed.status_code == 200 and '"code": "no_face"' in streamed.text.splitlines()[-1]
        calls = [(f"POST /v1/persons: {code} ({status})") for code, status, _ in sent[:5]]
        calls += [f"POST /v1/persons/{person_id}/photos: photo_exists (409)", "POST /v1/verify: no_face (422)"]
        calls += ["POST /v1/persons: no_face (422)"]
        expected = Counter(f"refused {call}" for call in calls)

        deadline = time.monotonic() + 30  # the replicas write their logs as they go
        while True:
            written = _written_since(before)
            lines = [line for text in written.values() for line in text.splitlines()]
            found = Counter(c for c in expected for line in lines if c in line)
            # each line twice: in the API replica's Serve log and on its stderr
            if all(found[c] >= 2 * n for c, n in expected.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    finally:
        api.delete(f"/v1/persons/{person_id}", headers=AUTH)

    serve_logs = {path: text for path, text in written.items() if path.parent.name == "serve"}
    assert any("manyangles_Embedder" in path.name and "CALL analyze" in text for path, text in serve_logs.items()), (
        "the Embedder's log shows none of these calls (verify's photos go there): not this session's logs?"
    )
    assert not [path.name for path, text in written.items() if "Traceback" in text], {
        path.name: text[text.index("Traceback") - 300 :][:3000] for path, text in written.items() if "Traceback" in text
    }
    assert not [line for text in written.values() for line in text.splitlines() if "Request failed" in line]
    # exactly one line per refusal, the API replica's, naming the call and the code; the code in no other line
    serve_lines = [line for text in serve_logs.values() for line in text.splitlines()]
    assert Counter(c for c in expected for line in serve_lines if c in line) == expected
    for line in (line for line in serve_lines if "refused " in line):
        assert line.startswith("INFO ") and "manyangles_API" in line, line
    codes = Counter(code for code, _, _ in sent) + Counter(["no_face"])  # the streamed one
    assert Counter(code for code in codes for line in serve_lines if code in line) == codes


def test_a_refusal_crosses_a_handle_as_a_value_and_is_raised_again():
    """What a deployment returns for a refusal is raised by ``wait`` in the ingress; a failure
    (5xx) is never a refusal: it is raised in the replica, where Serve logs its traceback."""
    from serve.remote import wait

    class Answer:
        def __init__(self, value: object) -> None:
            self.value = value

        def result(self, timeout_s: float) -> object:
            return self.value

    refusal = MultipleFaces("the photo shows 2 faces", faces=[{"bbox": [0, 0, 1, 1], "score": 0.9}])
    with pytest.raises(MultipleFaces) as raised:
        wait(Answer(Refused(refusal)), "embedder")
    assert raised.value is refusal and raised.value.faces == refusal.faces
    assert wait(Answer("views"), "generator") == "views"
    # the Generator's refusal reaches the Embedder's gate as its input, which passes it on as it is
    from serve.embedder import Embedder

    passed_on = Refused(NoFaceFound("no face was found in the reference image"))
    gate = Embedder.func_or_class.gate  # type: ignore[attr-defined]
    assert asyncio.run(gate(None, passed_on, np.zeros(4, np.float32), 0.5)) is passed_on
    assert all(is_refusal(e) for e in (refusal, NoFaceFound("x"), AlreadyEnrolled("x")))
    assert not any(is_refusal(e) for e in (ServiceBusy("x"), GenerationFailed("x"), RuntimeError("x")))


def test_the_error_handler_logs_a_refusal_in_one_line():
    from starlette.requests import Request

    from serve.http_errors import typed_error

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("ray.serve")  # Serve may have set it not to propagate: no caplog
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        scope = {"type": "http", "method": "POST", "path": "/v1/persons", "headers": [], "query_string": b""}
        assert typed_error(Request(scope), MultipleFaces("the photo shows 2 faces")).status_code == 422
        assert typed_error(Request(scope), ServiceBusy("busy")).status_code == 503
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in records] == [
        ("INFO", "refused POST /v1/persons: multiple_faces (422)", None)
    ]

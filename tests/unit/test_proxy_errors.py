"""serve/proxy_errors.py: what Serve's proxy answers for a request whose API replica was lost.

The wrapped app here plays Serve's proxy as Ray 2.60 behaves: after a replica's actor error it
returns without sending anything. The real proxy and a real kill: tests/e2e/test_faults.py
(the API replica) and tests/e2e/test_two_nodes.py (its host)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ray.serve._private.http_util import _apply_middlewares, validate_http_proxy_callback_return
from ray.serve._private.utils import call_function_from_import_path

from serve.proxy_body import BodyAhead
from serve.proxy_errors import PROXY_CALLBACK, PROXY_CALLBACK_ENV, AnswerLostAsJson, proxy_environment

SCOPE = {
    "type": "http",
    "method": "POST",
    "path": "/v1/persons",
    "headers": [(b"content-type", b"multipart/form-data"), (b"x-request-id", b"abc-123")],
}


def run(app: Any, incoming: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``app`` called once as uvicorn would; what it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(SCOPE, receive, send))
    return sent


def proxy_after_a_lost_replica(read_until_disconnect: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        while read_until_disconnect and message["type"] != "http.disconnect":
            message = await receive()

    return app


def test_a_request_the_proxy_could_not_answer_gets_a_typed_503():
    sent = run(AnswerLostAsJson(proxy_after_a_lost_replica()), [{"type": "http.request", "body": b"x"}])
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 503
    assert headers[b"retry-after"] == b"2" and headers[b"content-type"] == b"application/json"
    assert headers[b"x-request-id"] == b"abc-123"  # Serve's id, as in its logs
    assert int(headers[b"content-length"]) == len(body["body"])
    error = json.loads(body["body"])["error"]
    assert error["code"] == "answer_lost" and "person_exists" in error["message"]


def test_an_answered_request_passes_untouched():
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"error": {"code": "internal_error"}}'})

    sent = run(AnswerLostAsJson(app), [{"type": "http.request", "body": b""}])
    assert [m.get("status") for m in sent] == [500, None]
    assert sent[1]["body"] == b'{"error": {"code": "internal_error"}}'


def test_a_client_that_hung_up_gets_nothing():
    incoming = [{"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}]
    assert run(AnswerLostAsJson(proxy_after_a_lost_replica(read_until_disconnect=True)), incoming) == []


def test_serve_accepts_the_callback():
    """Serve's own loader and check, as the proxy runs them at start."""
    assert proxy_environment() == {PROXY_CALLBACK_ENV: PROXY_CALLBACK}
    middlewares = validate_http_proxy_callback_return(call_function_from_import_path(PROXY_CALLBACK))
    proxy = _apply_middlewares(proxy_after_a_lost_replica(), middlewares)  # with Ray's request-id one
    assert isinstance(proxy, BodyAhead) and isinstance(proxy.app, AnswerLostAsJson)
    # a body carried ahead (serve/proxy_body.py) and no id from the client: the 503 still names the
    # id Ray's proxy gave the request (in the scope its middleware rewrote), as its logs do
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    incoming = [{"type": "http.request", "body": b"abc", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    scope = {**SCOPE, "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", b"3")]}
    asyncio.run(proxy(scope, receive, send))
    start = sent[0]
    assert start["status"] == 503 and dict(start["headers"]).get(b"x-request-id")

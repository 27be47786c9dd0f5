"""serve/proxy_body.py: a small body carried to the API replica in the request's scope.

The chain here is the proxy's middleware, then what Ray 2.60 does between the proxy and the
replica (the scope pickled; the replica's ``receive`` fed by the proxy's), then a FastAPI app with
the API's own middleware (serve/http_errors.py ``install``) and a multipart route. Serve's own
path is the fallback: what the proxy does not carry, the route reads through ``receive``. The real
proxy and replicas run it in every test through Serve (tests/conftest.py sets the callback)."""

from __future__ import annotations

import asyncio
import hashlib
import pickle
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, File, Form, UploadFile

from serve.http_errors import install
from serve.proxy_body import MAX_AHEAD_BYTES, SCOPE_KEY, BodyAhead, BodyFromScope


def replica_app() -> FastAPI:
    app = FastAPI()
    install(app)

    @app.post("/v1/identify")
    def identify(photo: Annotated[UploadFile, File()], top_k: Annotated[int, Form()] = 1) -> dict[str, Any]:
        data = photo.file.read()
        return {"bytes": len(data), "sha": hashlib.sha256(data).hexdigest(), "top_k": top_k}

    return app


def post(
    photo: bytes, chunked: bool = False, app: FastAPI | None = None
) -> tuple[httpx.Response, list[dict[str, Any]], list[str]]:
    """One upload through the chain; the response, the scopes the replica was sent, and what the
    replica asked of Serve's ``receive`` while the route ran."""
    sent_scopes: list[dict[str, Any]] = []
    asked: list[str] = []
    replica = app or replica_app()

    async def ray_hop(scope: Any, receive: Any, send: Any) -> None:
        carried = pickle.loads(pickle.dumps(scope))  # what the proxy's handle call sends
        sent_scopes.append(carried)

        async def serves_receive() -> Any:  # the replica's fetch from the proxy's queue
            message = await receive()
            asked.append(message["type"])
            return message

        await replica(carried, serves_receive, send)

    async def upload() -> httpx.Response:
        transport = httpx.ASGITransport(app=BodyAhead(ray_hop))
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            form = {"files": {"photo": ("q.jpg", photo, "image/jpeg")}, "data": {"top_k": "3"}}
            if not chunked:
                return await client.post("/v1/identify", **form)  # type: ignore[arg-type]
            request = client.build_request("POST", "/v1/identify", **form)  # type: ignore[arg-type]
            body = request.read()

            async def pieces() -> AsyncIterator[bytes]:
                for start in range(0, len(body), 4096):
                    yield body[start : start + 4096]

            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
            return await client.post("/v1/identify", content=pieces(), headers=headers)

    return asyncio.run(asyncio.wait_for(upload(), timeout=10)), sent_scopes, asked


def expect_photo(response: httpx.Response, photo: bytes) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": len(photo), "sha": hashlib.sha256(photo).hexdigest(), "top_k": 3}


def test_a_photo_upload_rides_in_the_scope_and_the_route_never_waits_for_serves_copy():
    photo = bytes(range(256)) * 1200  # 300 KB
    response, (scope,), asked = post(photo)
    expect_photo(response, photo)
    length = int(dict(scope["headers"])[b"content-length"])
    assert isinstance(scope[SCOPE_KEY], bytes) and len(scope[SCOPE_KEY]) == length
    assert photo in scope[SCOPE_KEY]
    assert asked == []  # the route read its form from the scope's copy alone
    assert response.headers["cache-control"] == "no-store"  # the API's own middleware ran around it


def test_an_app_without_body_from_scope_still_reads_the_body_on_serves_path():
    """A replica of an older release behind a proxy that carries bodies: nothing changes for it."""
    app = FastAPI()

    @app.post("/v1/identify")
    def identify(photo: Annotated[UploadFile, File()], top_k: Annotated[int, Form()] = 1) -> dict[str, Any]:
        data = photo.file.read()
        return {"bytes": len(data), "sha": hashlib.sha256(data).hexdigest(), "top_k": top_k}

    photo = b"\x03" * 20_000
    response, (scope,), asked = post(photo, app=app)
    expect_photo(response, photo)
    assert SCOPE_KEY in scope and asked[0] == "http.request"


def test_a_large_or_unsized_body_takes_serves_own_path():
    large = b"\x01" * (MAX_AHEAD_BYTES + 1)
    for photo, chunked in ((large, False), (b"\x02" * 50_000, True)):
        response, (scope,), asked = post(photo, chunked=chunked)
        expect_photo(response, photo)
        assert SCOPE_KEY not in scope and "http.request" in asked


def proxy_with(headers: list[tuple[bytes, bytes]], incoming: list[dict[str, Any]]) -> tuple[dict[str, Any], list[Any]]:
    """``BodyAhead`` on one request; the scope Serve's proxy got and every message it read."""
    routed: list[dict[str, Any]] = []
    heard: list[Any] = []

    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope)
        message: dict[str, Any] = {}
        while message.get("type") != "http.disconnect":
            message = await receive()
            heard.append(message)

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/v1/identify", "headers": headers}
    asyncio.run(asyncio.wait_for(BodyAhead(proxy)(scope, receive, send), timeout=10))
    return routed[0], heard


def test_what_is_carried_and_what_is_not():
    def request(body: bytes, more: bool = False) -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": more}

    gone = {"type": "http.disconnect"}
    exact = b"\x04" * MAX_AHEAD_BYTES
    scope, heard = proxy_with([(b"content-length", str(len(exact)).encode())], [request(exact), gone])
    assert scope[SCOPE_KEY] == exact and heard == [request(exact), gone]  # Serve's path has it too
    for length in (b"0", b"12x"):  # nothing to carry, or a length that is not one
        scope, heard = proxy_with([(b"content-length", length)], [request(b"abc"), gone])
        assert SCOPE_KEY not in scope and heard == [request(b"abc"), gone]
    # longer than it said: not carried, every byte read passed on
    scope, heard = proxy_with([(b"content-length", b"4")], [request(b"abc", True), request(b"def"), gone])
    assert SCOPE_KEY not in scope and heard == [request(b"abc", True), request(b"def"), gone]
    # the client left before its body arrived: routed as Serve alone would, and it sees them leave
    scope, heard = proxy_with([(b"content-length", b"100")], [request(b"part", True), gone])
    assert SCOPE_KEY not in scope and heard == [request(b"part", True), gone]


def test_after_the_carried_body_the_route_hears_serves_receive_less_its_copy():
    """A route that watches for a hung-up client (a streamed enrollment) still learns of it; the
    body's second copy, fetched from the proxy, never reaches it."""
    heard: list[dict[str, Any]] = []
    seen_scope: list[dict[str, Any]] = []
    serves = [{"type": "http.request", "body": b"body", "more_body": False}, {"type": "http.disconnect"}]

    async def route(scope: Any, receive: Any, send: Any) -> None:
        seen_scope.append(scope)
        heard.extend([await receive(), await receive()])

    async def serves_receive() -> dict[str, Any]:
        return serves.pop(0)

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/v1/persons", "headers": [], SCOPE_KEY: b"body"}
    asyncio.run(BodyFromScope(route)(scope, serves_receive, send))
    assert heard == [{"type": "http.request", "body": b"body", "more_body": False}, {"type": "http.disconnect"}]
    assert SCOPE_KEY not in seen_scope[0] and serves == []

    plain = {"type": "http", "method": "POST", "path": "/v1/persons", "headers": []}
    passed: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        passed.extend([scope, receive])

    asyncio.run(BodyFromScope(app)(plain, serves_receive, send))
    assert passed[0] is plain and passed[1] is serves_receive  # no carried body: untouched

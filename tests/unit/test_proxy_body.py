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


def post(photo: bytes, chunked: bool = False) -> tuple[httpx.Response, list[dict[str, Any]]]:
    """One upload through the chain; the response and the scopes the replica was sent."""
    sent_scopes: list[dict[str, Any]] = []
    app = replica_app()

    async def ray_hop(scope: Any, receive: Any, send: Any) -> None:
        carried = pickle.loads(pickle.dumps(scope))  # what the proxy's handle call sends
        sent_scopes.append(carried)
        await app(carried, receive, send)

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

    return asyncio.run(asyncio.wait_for(upload(), timeout=30)), sent_scopes


def test_a_photo_upload_rides_in_the_scope_and_reaches_the_route_whole():
    photo = bytes(range(256)) * 1200  # 300 KB
    response, (scope,) = post(photo)
    assert response.status_code == 200, response.text
    assert response.json() == {"bytes": len(photo), "sha": hashlib.sha256(photo).hexdigest(), "top_k": 3}
    length = int(dict(scope["headers"])[b"content-length"])
    assert isinstance(scope[SCOPE_KEY], bytes) and len(scope[SCOPE_KEY]) == length
    assert photo in scope[SCOPE_KEY]
    assert response.headers["cache-control"] == "no-store"  # the API's own middleware ran around it


def test_a_large_or_unsized_body_takes_serves_own_path():
    large = b"\x01" * (MAX_AHEAD_BYTES + 1)
    for photo, chunked in ((large, False), (b"\x02" * 50_000, True)):
        response, (scope,) = post(photo, chunked=chunked)
        assert response.status_code == 200, response.text
        assert response.json()["bytes"] == len(photo)
        assert response.json()["sha"] == hashlib.sha256(photo).hexdigest()
        assert SCOPE_KEY not in scope


def test_a_client_that_leaves_before_its_body_arrived_is_not_routed():
    incoming = [{"type": "http.request", "body": b"part", "more_body": True}, {"type": "http.disconnect"}]
    routed: list[Any] = []

    async def proxy(scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope)

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        raise AssertionError("nothing is answered to a client that left")

    scope = {"type": "http", "method": "POST", "path": "/v1/identify", "headers": [(b"content-length", b"100")]}
    asyncio.run(BodyAhead(proxy)(scope, receive, send))
    assert routed == [] and incoming == []


def test_after_the_carried_body_the_route_hears_serves_receive():
    """A route that watches for a hung-up client (a streamed enrollment) still learns of it."""
    heard: list[dict[str, Any]] = []
    seen_scope: list[dict[str, Any]] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        seen_scope.append(scope)
        heard.extend([await receive(), await receive()])

    async def serves_receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/v1/persons", "headers": [], SCOPE_KEY: b"body"}
    asyncio.run(BodyFromScope(route)(scope, serves_receive, send))
    assert heard == [{"type": "http.request", "body": b"body", "more_body": False}, {"type": "http.disconnect"}]
    assert SCOPE_KEY not in seen_scope[0]

"""A small request body sent to the API replica with the request, not fetched after it.

Ray 2.60's proxy sends a replica the request's ASGI scope alone; the replica then asks the proxy
for the body in a second actor call, which a photo upload waits on before its multipart form can
be read (2-3 ms of an identify's ~40 ms on 2 cores). ``BodyAhead`` (in the proxy, loaded by
``proxy_middlewares``) reads a body of known length up to ``MAX_AHEAD_BYTES`` from the client
first and puts it in the scope, which the proxy pickles into the request itself; ``BodyFromScope``
(in the API's app) hands it to the routes as the first ``receive`` message. After the body, both
pass ``receive`` through untouched: the proxy still learns of a client that hangs up, and so does
the route. A larger body, one of unknown length (chunked), and a proxy without the callback take
Serve's own path.

This module runs in the proxy process too: it imports Starlette's types only.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SCOPE_KEY = "manyangles.body"
MAX_AHEAD_BYTES = 2 * 1024 * 1024  # a photo upload; a larger body streams as Serve sends it


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyAhead:
    """In the proxy: a body of known length up to ``MAX_AHEAD_BYTES`` read before the request is
    routed, and carried in its scope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = _declared_length(scope) if scope["type"] == "http" else None
        if not length or length > MAX_AHEAD_BYTES:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before its body arrived: nothing to route
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await self.app({**scope, SCOPE_KEY: b"".join(chunks)}, receive, send)


class BodyFromScope:
    """In the API's app: a body the proxy carried in the scope is the routes' first ``receive``
    message; without one every message comes from Serve's ``receive`` as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = scope.get(SCOPE_KEY) if scope["type"] == "http" else None
        if not isinstance(body, bytes):
            await self.app(scope, receive, send)
            return
        pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive_body_first() -> Message:
            return pending.pop() if pending else await receive()

        await self.app({k: v for k, v in scope.items() if k != SCOPE_KEY}, receive_body_first, send)

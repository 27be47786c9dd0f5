"""A small request body sent to the API replica with the request, so that its routes need not
wait for the body to be fetched.

Ray 2.60's proxy sends a replica the request's ASGI scope alone; the replica then asks the proxy
for the body in a second actor call, which a photo upload's route waits on before its multipart
form can be read (1-2.5 ms of an identify's ~50 ms on 2 cores, BENCHMARKS.md). ``BodyAhead`` (in
the proxy, loaded by ``proxy_middlewares``) reads a body of known length up to ``MAX_AHEAD_BYTES``
from the client first and puts a copy in the scope, which the proxy pickles into the request
itself; ``BodyFromScope`` (in the API's app) hands it to the routes as the first ``receive``
message. Serve's own path still carries the body as well (the replica fetches it in the
background, and ``BodyFromScope`` drops that copy): an app without ``BodyFromScope`` (a replica
of an older release beside a newer proxy) reads it as before. After the body, ``receive`` passes
through: the proxy still learns of a client that hangs up, and so does the route. A larger body,
one of unknown length (chunked), one longer than it said, and a proxy without the callback take
Serve's path alone.

This module runs in the proxy process too: it imports Starlette's types only.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SCOPE_KEY = "manyangles.body.v1"
MAX_AHEAD_BYTES = 2 * 1024 * 1024  # a photo upload; a larger body streams as Serve sends it


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyAhead:
    """In the proxy: a body of known length up to ``MAX_AHEAD_BYTES`` read before the request is
    routed, and carried in its scope; every message read is passed on to Serve's path too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = _declared_length(scope) if scope["type"] == "http" else None
        if not length or length > MAX_AHEAD_BYTES:
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        size, complete = 0, False
        while not complete:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break  # the client left: Serve's path sees it as before
            size += len(message.get("body", b""))
            if size > length:
                break  # longer than it said: Serve's path alone
            complete = not message.get("more_body", False)
        replay = list(read)

        async def replaying_receive() -> Message:
            return replay.pop(0) if replay else await receive()

        if complete:
            scope = {**scope, SCOPE_KEY: b"".join(m.get("body", b"") for m in read)}
        await self.app(scope, replaying_receive, send)


class BodyFromScope:
    """In the API's app: a body the proxy carried in the scope is the routes' first ``receive``
    message, and the same body arriving through Serve's ``receive`` is dropped; without one every
    message comes from Serve's ``receive`` as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = scope.get(SCOPE_KEY) if scope["type"] == "http" else None
        if not isinstance(body, bytes):
            await self.app(scope, receive, send)
            return
        carried: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive_carried_first() -> Message:
            if carried:
                return carried.pop()
            while True:  # the body's copy on Serve's path, then what follows it (a disconnect)
                message = await receive()
                if message["type"] != "http.request":
                    return message

        await self.app({k: v for k, v in scope.items() if k != SCOPE_KEY}, receive_carried_first, send)

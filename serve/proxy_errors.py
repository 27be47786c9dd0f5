"""Serve's HTTP proxy, taught the one answer no replica can give: the API replica that held a
request was lost (its process or host died) before it answered.

Ray 2.60's proxy gets the replica's death as an actor error, sends nothing and lets uvicorn answer a
plain-text 500, which a client cannot tell from a bug. Wrapped by ``proxy_middlewares`` (Serve's
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` hook, set in the environment of every ``ray start``;
``make run`` and the tests set it), such a request gets the API's error shape instead: 503
``answer_lost`` with ``Retry-After``. The outcome of that request is unknown (the replica may have
committed before it died), and the message says how a client finds out. Ray sends nothing for any
failure of its own outside the API's code either (a bug of the API answers its own 500 JSON):
those get the same 503, while Serve's access log and metrics count them as 500s.

This module runs in the proxy process: it imports Starlette, ``core.errors`` and
``serve.proxy_body`` only.
"""

from __future__ import annotations

import json
import logging

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import AnswerLost
from serve.proxy_body import BodyAhead

PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
PROXY_CALLBACK = "serve.proxy_errors:proxy_middlewares"
MESSAGE = (
    "the API replica that held this request did not answer: it was lost (its process or host "
    "died) or failed outside the API's code. A read can be sent again as is. A change may have "
    "been made: look before sending it again (GET /v1/persons?prefix=, /v1/keys, /v1/jobs); sent "
    "again, an enrollment under the same name that was stored is refused as person_exists, the "
    "same photo as photo_exists, a deletion as person_not_found"
)
log = logging.getLogger("ray.serve")


def proxy_middlewares() -> list[Middleware]:
    """What Serve's proxy calls at start (``PROXY_CALLBACK``). The last one wraps the others:
    ``BodyAhead`` (serve/proxy_body.py) copies the scope, so it goes outside the answer for a lost
    replica, which must read the request id Ray's own innermost middleware writes into its scope."""
    return [Middleware(AnswerLostAsJson), Middleware(BodyAhead)]


def proxy_environment() -> dict[str, str]:
    """The variable every node's ``ray start`` needs for the proxy to load this module."""
    return {PROXY_CALLBACK_ENV: PROXY_CALLBACK}


class AnswerLostAsJson:
    """A request the proxy ended without a response, while its client still waits, is answered
    503 ``answer_lost``; every other request passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = hung_up = False

        async def watching_receive() -> Message:
            nonlocal hung_up
            message = await receive()
            hung_up = hung_up or message["type"] == "http.disconnect"
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, watching_receive, watching_send)
        if started or hung_up:
            return
        lost = AnswerLost(MESSAGE)
        log.warning(
            "%s %s: the API replica did not answer (lost, or a failure outside its code); 503 %s",
            scope["method"],
            scope["path"],
            lost.code,
        )
        request_id = dict(scope["headers"]).get(b"x-request-id")  # Serve's id, as in its logs
        body = json.dumps({"error": {"code": lost.code, "message": lost.message}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(lost.retry_after_s).encode()),
            (b"cache-control", b"no-store"),
            (b"x-content-type-options", b"nosniff"),
            *([(b"x-request-id", request_id)] if request_id else []),
        ]
        await send({"type": "http.response.start", "status": lost.http_status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

"""How the HTTP API answers what its routes do not: errors in the ErrorResponse shape, an
oversized body refused from its Content-Length, and load shed with 503 + Retry-After.

No ``from __future__ import annotations``: FastAPI resolves these annotations at runtime.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import ManyAnglesError, ServiceBusy
from core.schemas.health import HealthResponse
from core.schemas.results import ErrorResponse
from serve.admission import Admission, request_class
from serve.proxy_body import BodyFromScope
from serve.refusals import is_refusal, log_refusal


def _call(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def typed_error(request: Request, exc: ManyAnglesError) -> JSONResponse:
    """A typed error in the ErrorResponse shape; a refusal (4xx) logged as one line with its code."""
    if is_refusal(exc):
        log_refusal(_call(request), exc.code, exc.http_status)
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, ServiceBusy) else None
    body = ErrorResponse.of_error(exc).body()
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
    log_refusal(_call(request), "invalid_request", 422)
    return JSONResponse(ErrorResponse.of("invalid_request", problems).body(), status_code=422)


MALFORMED_BODY = "malformed_body"


def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Routing errors (an unknown path, a method a path does not take) and a body that cannot be
    parsed as its content type (FastAPI and Starlette answer that 400: here it is the API's own
    documented 422 ``malformed_body``, as every other bad request is) in the API's error shape."""
    if exc.status_code == 404:
        code, message = "not_found", f"no route {request.method} {request.url.path}; the routes are listed at /docs"
    elif exc.status_code == 405:
        code, message = "method_not_allowed", f"{request.url.path} does not take {request.method}"
    elif exc.status_code == 400:  # only the body parsers raise it: a multipart or form body that is not one
        kind = request.headers.get("content-type", "").split(";")[0].strip() or "no content type"
        message = f"the body cannot be read as {kind}: {exc.detail}"
        log_refusal(_call(request), MALFORMED_BODY, 422)
        return JSONResponse(ErrorResponse.of(MALFORMED_BODY, message).body(), status_code=422)
    else:
        code, message = "http_error", str(exc.detail)
    return JSONResponse(ErrorResponse.of(code, message).body(), status_code=exc.status_code, headers=exc.headers)


def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug is still answered in the API's error shape; Serve logs the traceback (never the body)."""
    message = f"{request.method} {request.url.path} failed unexpectedly ({type(exc).__name__}); the service log has the details"
    return JSONResponse(ErrorResponse.of("internal_error", message).body(), status_code=500)


class SizeCap:
    """Refuse an oversized body from its Content-Length, before reading it.

    This and the two below are plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` (what
    ``@app.middleware("http")`` makes) runs every request through a task group and memory
    streams, about half a millisecond each on 2 cores, on every identify."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            cap = getattr(request.app.state, "max_body_bytes", None)
            length = request.headers.get("content-length")
            if cap and length and length.isdigit() and int(length) > cap:
                body = ErrorResponse.of("image_too_large", f"the request body is {length} bytes; the limit is {cap}")
                log_refusal(_call(request), "image_too_large", 413)
                await JSONResponse(body.body(), 413)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ShedLoad:
    """503 + Retry-After at once when the expected wait is over the budget (serve/admission.py);
    an admitted request counts until its answer's last byte (a streamed enrollment until its
    last line)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope) if scope["type"] == "http" else None
        admission: Admission | None = getattr(request.app.state, "admission", None) if request else None
        kind = request_class(request.method, request.url.path) if request else None
        if request is None or admission is None or kind is None:
            await self.app(scope, receive, send)
            return
        verdict = admission.enter(kind)
        if not verdict.admitted:
            expected = "longer than" if verdict.expected_s is None else f"about {verdict.expected_s:.0f} s, over"
            message = (
                f"the service is busy: a new {kind} request would take {expected} the budget of "
                f"{admission.budget_s:g} s; retry in {verdict.retry_after_s} s"
            )
            body = ErrorResponse.of(ServiceBusy.code, message).body()
            answer = JSONResponse(body, 503, headers={"Retry-After": str(verdict.retry_after_s)})
            await answer(scope, receive, send)
            return
        completed = False  # refusals are cheap: not a measure of throughput

        async def counted_send(message: Message) -> None:
            nonlocal completed
            if message["type"] == "http.response.start":
                completed = 200 <= message["status"] < 300
            await send(message)

        try:
            await self.app(scope, receive, counted_send)
        except BaseException:
            completed = False
            raise
        finally:
            admission.leave(kind, completed)


class PrivateAnswers:
    """The API's answers hold biometric data (face images, vectors, names): no cache may store them
    (a route that revalidates by ETag says ``private, no-cache`` itself), and no browser may sniff
    an uploaded image into something it would run."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(("/v1/", "/api/")):
            await self.app(scope, receive, send)
            return

        async def private_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])  # ASGI allows a start without them
                headers = MutableHeaders(scope=message)
                headers.setdefault("Cache-Control", "no-store")
                headers["X-Content-Type-Options"] = "nosniff"
            await send(message)

        await self.app(scope, receive, private_send)


HEALTH_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "bad parameters"},
    503: {"model": ErrorResponse, "description": "with strict=true: a deployment is not answering (`degraded`)"},
}


def health_answer(report: HealthResponse, strict: bool) -> Any:
    """The health report; with ``strict`` (a readiness probe that should take this instance out
    of rotation) a degraded one is a 503 naming what fails."""
    if not strict or report.status == "ok":
        return report
    failing = [
        f"{name}: {part.error or 'error'}"
        for name, part in (("embedder", report.deployments.embedder), ("generator", report.deployments.generator))
        if part.status != "ok"
    ]
    message = f"the service is degraded: {'; '.join(failing) or 'a deployment is not answering'}"
    return JSONResponse(ErrorResponse.of("degraded", message).body(), status_code=503)


def install(app: FastAPI) -> None:
    """The handlers and middleware above, on ``app``; load shedding outside the size cap, so a
    request it turns away costs nothing else, and the headers of every answer outermost."""
    app.add_exception_handler(ManyAnglesError, typed_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected_error)
    app.add_middleware(SizeCap)  # each added one wraps the ones before it
    app.add_middleware(ShedLoad)
    app.add_middleware(PrivateAnswers)
    app.add_middleware(BodyFromScope)  # the body the proxy sent with the request (serve/proxy_body.py)

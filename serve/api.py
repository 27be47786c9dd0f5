"""The HTTP API: a FastAPI ingress composed with the Embedder and Generator deployments.

Routes are sync functions: FastAPI runs them on its thread pool, where blocking on deployment
handles is allowed, and the core service does the work exactly as it does in the CLI. Every
response has a model (core/schemas.py), so /docs documents every body, errors included.
Every route but /v1/health needs the API key (``Authorization: Bearer`` or ``X-API-Key``).
"""

# No `from __future__ import annotations` here: Serve ships the ingress class to replicas by
# value, and FastAPI must resolve these annotations there (string annotations would not).

import json
import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.enrollment import ProgressCallback
from core.errors import ImageTooLarge, InvalidInput, ManyAnglesError, ServiceBusy
from core.schemas import (
    BatchingStats,
    EmbedResponse,
    EnrollmentRun,
    EnrollmentStatsResponse,
    EnrollResponse,
    ErrorResponse,
    GenerateResponse,
    GenerationRun,
    GenerationStatsResponse,
    IdentifyResponse,
    LegacyEnrollResponse,
    ModelInfoOut,
    ThresholdsResponse,
    VerifyResponse,
)
from core.schemas_health import HealthResponse
from core.service import EnrollResult, ManyAnglesService
from core.settings import MAX_TOP_K, Settings
from core.store.gallery import GalleryStore
from core.store.keys import KeyStore
from core.store.maintenance import check_store
from serve.admin_api import router as admin_router
from serve.admission import Admission, request_class
from serve.auth import ensure_api_key
from serve.deps import CanEnroll, CanIdentify, CanRead, RowId, errors
from serve.enroll_stream import NDJSON, stream_enrollment
from serve.gallery_api import router as gallery_router
from serve.logs import route_core_logs
from serve.remote import RemoteFaces, RemoteViews, wait

log = logging.getLogger("ray.serve")


MAX_EMBED_PHOTOS = 64  # photos per /v1/embed call: bounds one request's memory and its time on the Embedder


app = FastAPI(
    title="ManyAngles",
    # 1.4: a photo added to a person, one image deleted; 1.3: GET /v1/export has an ETag (304 to
    # If-None-Match); 1.2: GET /v1/persons pages
    version="1.4",
    description="Face enrollment from one photo, with identity-gated synthetic views.",
)
app.include_router(admin_router)
app.include_router(gallery_router)


@app.exception_handler(ManyAnglesError)
def _typed_error(_: Request, exc: ManyAnglesError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, ServiceBusy) else None
    body = ErrorResponse.of_error(exc).body()
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


@app.exception_handler(RequestValidationError)
def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
    return JSONResponse(ErrorResponse.of("invalid_request", problems).body(), status_code=422)


@app.exception_handler(StarletteHTTPException)
def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Routing errors (an unknown path, a method a path does not take) in the API's error shape."""
    if exc.status_code == 404:
        code, message = "not_found", f"no route {request.method} {request.url.path}; the routes are listed at /docs"
    elif exc.status_code == 405:
        code, message = "method_not_allowed", f"{request.url.path} does not take {request.method}"
    else:
        code, message = "http_error", str(exc.detail)
    return JSONResponse(ErrorResponse.of(code, message).body(), status_code=exc.status_code, headers=exc.headers)


@app.exception_handler(Exception)
def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """A bug is still answered in the API's error shape; Serve logs the traceback (never the body)."""
    message = f"{request.method} {request.url.path} failed unexpectedly ({type(exc).__name__}); the service log has the details"
    return JSONResponse(ErrorResponse.of("internal_error", message).body(), status_code=500)


@app.middleware("http")
async def _size_cap(request: Request, call_next: Any) -> Any:
    """Refuse an oversized body from its Content-Length, before reading it."""
    cap = getattr(request.app.state, "max_body_bytes", None)
    length = request.headers.get("content-length")
    if cap and length and length.isdigit() and int(length) > cap:
        body = ErrorResponse.of("image_too_large", f"the request body is {length} bytes; the limit is {cap}")
        return JSONResponse(body.body(), 413)
    return await call_next(request)


@app.middleware("http")
async def _shed_load(request: Request, call_next: Any) -> Any:
    """503 + Retry-After at once when the expected wait is over the budget (serve/admission.py)."""
    admission: Admission | None = getattr(request.app.state, "admission", None)
    kind = request_class(request.method, request.url.path)
    if admission is None or kind is None:
        return await call_next(request)
    verdict = admission.enter(kind)
    if not verdict.admitted:
        expected = "longer than" if verdict.expected_s is None else f"about {verdict.expected_s:.0f} s, over"
        message = (
            f"the service is busy: a new {kind} request would take {expected} the budget of "
            f"{admission.budget_s:g} s; retry in {verdict.retry_after_s} s"
        )
        body = ErrorResponse.of(ServiceBusy.code, message).body()
        return JSONResponse(body, 503, headers={"Retry-After": str(verdict.retry_after_s)})
    try:
        response = await call_next(request)
    except BaseException:
        admission.leave(kind, completed=False)
        raise
    body_iterator = response.body_iterator
    completed = 200 <= response.status_code < 300  # refusals are cheap: not a measure of throughput

    async def body_then_leave() -> Any:  # a streamed enrollment counts until its last line
        try:
            async for chunk in body_iterator:
                yield chunk
        finally:
            admission.leave(kind, completed)

    response.body_iterator = body_then_leave()
    return response


def _read_upload(upload: UploadFile, cap: int) -> bytes:
    data = upload.file.read(cap + 1)
    if len(data) > cap:
        raise ImageTooLarge(f"{upload.filename or 'the upload'} is over the limit of {cap} bytes")
    return data


def _views(views: str | None) -> list[str] | None:
    if views is None or not views.strip():
        return None
    if views.strip().startswith("["):
        try:
            parsed = json.loads(views)
        except json.JSONDecodeError:
            raise InvalidInput("views must be a comma-separated list or a JSON array of names") from None
        return [str(v) for v in parsed]
    return [v.strip() for v in views.split(",") if v.strip()]


def _face_policy(face: str) -> str | int:
    return int(face) if face.strip().lstrip("-").isdigit() else face.strip()


def _photo_options(
    face: str, use_augmentation: bool, views: str | None, num_variations: int | None, seed: int
) -> dict[str, Any]:
    """An enrollment form's options as the service's keywords (views asked for: augmentation on)."""
    return {
        "face": _face_policy(face),
        "augment": use_augmentation or views is not None or num_variations is not None,
        "views": _views(views),
        "num_variations": num_variations,
        "seed": seed,
    }


def _answer(request: Request, enroll: Callable[[ProgressCallback | None], EnrollResult]) -> Any:
    """The enrollment's result, or its NDJSON progress stream when the client accepts one."""
    if NDJSON in request.headers.get("accept", ""):
        return StreamingResponse(stream_enrollment(enroll), media_type=NDJSON)
    return EnrollResponse.of(enroll(None))


ENROLL_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "with `Accept: application/x-ndjson`: one JSON object per line, "
        '`{"type": "progress", "stage": ..., "message": ...}` as the work goes, then '
        '`{"type": "result", ...EnrollResponse}` or `{"type": "error", "error": {...}}`',
        "content": {NDJSON: {"schema": {"type": "string"}}},
    }
}


@serve.deployment
@serve.ingress(app)
class API:
    def __init__(self, embedder: Any, generator: Any, settings: Settings) -> None:
        route_core_logs(settings.log_level)
        self.settings = settings
        self.api_key, created = ensure_api_key(settings)
        if created:
            log.warning("generated an API key, stored in %s/api_key", settings.data_dir)
        self._embedder = embedder
        self._generator = generator
        store = GalleryStore(settings.data_dir)
        check_store(store)  # after a crash: integrity, orphan files, half-written files
        self.service = ManyAnglesService(settings, RemoteFaces(embedder), store, RemoteViews(generator, embedder))
        app.state.max_body_bytes = 2 * settings.max_upload_bytes + 1024 * 1024
        app.state.api_key = self.api_key
        app.state.keys = KeyStore(store)
        app.state.admission = Admission(settings.queue_budget_s)
        app.state.service = self.service  # for the routers (serve/admin_api.py, serve/gallery_api.py)

    # --- health and stats --------------------------------------------------------------------
    @app.get("/v1/health", response_model=HealthResponse)
    def health(self) -> HealthResponse:
        status = "ok"
        try:
            embedder: dict[str, Any] = {
                "status": "ok",
                "model": ModelInfoOut.of(wait(self._embedder.info.remote(), "embedder")),
            }
        except Exception as exc:  # noqa: BLE001 - health reports every failure
            status, embedder = "degraded", {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        try:
            generator: dict[str, Any] = {"status": "ok", **wait(self._generator.health_info.remote(), "generator")}
        except Exception as exc:  # noqa: BLE001
            status, generator = "degraded", {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        models = {
            "embedder": embedder["model"].name if "model" in embedder else "unavailable",
            "generator": generator.get("generator", "unavailable"),
        }
        return HealthResponse.model_validate(
            {"status": status, "deployments": {"embedder": embedder, "generator": generator}, "models": models}
        )

    @app.head("/v1/health", include_in_schema=False)
    def health_head(self) -> Response:
        """What a load balancer's HEAD probe gets: GET's status code, no body; the overall status
        (``ok`` or ``degraded``) in ``X-Health-Status``."""
        return Response(headers={"X-Health-Status": self.health().status})

    @app.get("/v1/stats/generation", response_model=GenerationStatsResponse, responses=errors())
    def generation_stats(self, _: CanRead, limit: int = Query(500, ge=1, le=10_000)) -> GenerationStatsResponse:
        return GenerationStatsResponse(runs=[GenerationRun.of(r) for r in self.service.store.generation_runs(limit)])

    @app.get("/v1/stats/batching", response_model=BatchingStats, responses=errors(503))
    def batching_stats(self, _: CanRead, recent: int = Query(500, ge=0, le=10_000)) -> BatchingStats:
        return BatchingStats(**wait(self._embedder.batch_stats.remote(recent), "embedder"))

    @app.get("/v1/stats/enrollments", response_model=EnrollmentStatsResponse, responses=errors())
    def enrollment_stats(self, _: CanRead, limit: int = Query(500, ge=1, le=10_000)) -> EnrollmentStatsResponse:
        """End-to-end time of the latest enrollments, stage by stage."""
        return EnrollmentStatsResponse(runs=[EnrollmentRun.of(r) for r in self.service.store.enrollment_runs(limit)])

    @app.get("/v1/thresholds", response_model=ThresholdsResponse, responses=errors(503))
    def thresholds(self, _: CanRead) -> ThresholdsResponse:
        """The thresholds in use now and every calibrated one in the store."""
        return ThresholdsResponse.of(self.service)

    # --- persons -----------------------------------------------------------------------------
    @app.post(
        "/v1/persons",
        status_code=201,
        response_model=EnrollResponse,
        responses={**ENROLL_STREAM, **errors(409, 413, 422, 503)},
    )
    def enroll(
        self,
        _: CanEnroll,
        request: Request,
        name: Annotated[str, Form()],
        photo: Annotated[UploadFile, File()],
        use_augmentation: Annotated[bool, Form()] = False,
        num_variations: Annotated[int | None, Form()] = None,
        views: Annotated[str | None, Form(description="comma-separated or JSON list")] = None,
        seed: Annotated[int, Form()] = 0,
        face: Annotated[str, Form(description="single, largest or an index")] = "single",
        force: Annotated[
            bool, Form(description="enroll even if the face is identified as someone already enrolled")
        ] = False,
    ) -> Any:
        """Enroll a person from one photo, with views of it when asked for; all or nothing. 409
        when the name is taken, or when the face is identified as a person already enrolled
        (``already_enrolled``, with ``match``; ``force=true`` enrolls anyway)."""
        data = _read_upload(photo, self.settings.max_upload_bytes)
        kwargs = _photo_options(face, use_augmentation, views, num_variations, seed)
        return _answer(
            request, lambda progress: self.service.enroll(name, data, force=force, progress=progress, **kwargs)
        )

    @app.post(
        "/v1/persons/{person_id}/photos",
        status_code=201,
        response_model=EnrollResponse,
        responses={**ENROLL_STREAM, **errors(404, 409, 413, 422, 503)},
    )
    def add_photo(
        self,
        _: CanEnroll,
        request: Request,
        person_id: RowId,
        photo: Annotated[UploadFile, File()],
        use_augmentation: Annotated[bool, Form()] = False,
        num_variations: Annotated[int | None, Form()] = None,
        views: Annotated[str | None, Form(description="comma-separated or JSON list")] = None,
        seed: Annotated[int, Form()] = 0,
        face: Annotated[str, Form(description="single, largest or an index")] = "single",
        force: Annotated[bool, Form(description="add it even if it is identified as someone else")] = False,
    ) -> Any:
        """Another photo of an enrolled person, with views of it when asked for; all or nothing.
        409 when the person already has this photo, or when it is identified as another person
        and not as them (``force=true`` adds it anyway)."""
        data = _read_upload(photo, self.settings.max_upload_bytes)
        kwargs = _photo_options(face, use_augmentation, views, num_variations, seed)
        return _answer(
            request, lambda progress: self.service.add_photo(person_id, data, force=force, progress=progress, **kwargs)
        )

    @app.post("/api/enroll", status_code=201, response_model=LegacyEnrollResponse, responses=errors(409, 413, 422, 503))
    def enroll_legacy(
        self,
        _: CanEnroll,
        name: Annotated[str, Form()],
        image: Annotated[UploadFile, File()],
        use_augmentation: Annotated[bool, Form()] = True,
        num_variations: Annotated[int, Form()] = 5,
    ) -> LegacyEnrollResponse:
        """The seed document's enrollment call, kept for clients of the earlier system: as there,
        a face already enrolled under another name is enrolled again (no ``already_enrolled``)."""
        data = _read_upload(image, self.settings.max_upload_bytes)
        result = self.service.enroll(
            name,
            data,
            augment=use_augmentation,
            num_variations=num_variations if use_augmentation else None,
            force=True,
        )
        detail = self.service.store.person_detail(result.person_id)
        return LegacyEnrollResponse(
            success=True,
            person_id=result.person_id,
            name=result.name,
            embeddings_count=result.num_embeddings,
            images=[i.display_name for i in detail.images],
            message=f"enrolled {result.name} with {result.num_embeddings} embedding(s)",
        )

    # --- recognition -------------------------------------------------------------------------
    @app.post("/v1/identify", response_model=IdentifyResponse, responses=errors(409, 413, 422, 503))
    def identify(
        self,
        _: CanIdentify,
        photo: Annotated[UploadFile, File()],
        top_k: Annotated[int | None, Form(ge=1, le=MAX_TOP_K, description="default: the top_k setting")] = None,
    ) -> IdentifyResponse:
        return IdentifyResponse.of(self.service.identify(_read_upload(photo, self.settings.max_upload_bytes), top_k))

    @app.post("/v1/verify", response_model=VerifyResponse, responses=errors(409, 413, 422, 503))
    def verify(
        self,
        _: CanIdentify,
        photo_a: Annotated[UploadFile, File()],
        photo_b: Annotated[UploadFile, File()],
    ) -> VerifyResponse:
        cap = self.settings.max_upload_bytes
        return VerifyResponse.of(self.service.verify(_read_upload(photo_a, cap), _read_upload(photo_b, cap)))

    @app.post("/v1/embed", response_model=EmbedResponse, responses=errors(413, 422, 503))
    def embed(self, _: CanIdentify, photos: Annotated[list[UploadFile], File()]) -> EmbedResponse:
        if len(photos) > MAX_EMBED_PHOTOS:  # before reading any: each may be max_upload_bytes
            raise InvalidInput(f"at most {MAX_EMBED_PHOTOS} photos per call, got {len(photos)}; send them in parts")
        cap = self.settings.max_upload_bytes
        uploads = [(p.filename or f"photo{i}", _read_upload(p, cap)) for i, p in enumerate(photos)]
        return EmbedResponse.of(self.service.model, self.service.embed(uploads))

    @app.post("/v1/generate", response_model=GenerateResponse, responses=errors(409, 413, 422, 503))
    def generate(
        self,
        _: CanEnroll,
        photo: Annotated[UploadFile, File()],
        views: Annotated[str | None, Form()] = None,
        num_variations: Annotated[int | None, Form()] = None,
        seed: Annotated[int, Form()] = 0,
    ) -> GenerateResponse:
        outcome = self.service.generate_views(
            _read_upload(photo, self.settings.max_upload_bytes),
            views=_views(views),
            num_variations=num_variations,
            seed=seed,
        )
        return GenerateResponse.of(outcome)

"""The HTTP API: a FastAPI ingress composed with the Embedder and Generator deployments.

Routes are sync functions: FastAPI runs them on its thread pool, where blocking on deployment
handles is allowed, and the core service does the work exactly as it does in the CLI. Every
response has a model (core/schemas*.py), so /docs documents every body, errors included.
Every route but /v1/health needs the API key (``Authorization: Bearer`` or ``X-API-Key``).
"""

# No `from __future__ import annotations` here: Serve ships the ingress class to replicas by
# value, and FastAPI must resolve these annotations there (string annotations would not).

import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.responses import Response
from ray import serve

from core.errors import InvalidInput
from core.faces.active import upgrade_notice
from core.results import EnrollResult
from core.schemas.health import HealthResponse, KeyInfo
from core.schemas.results import (
    EmbedResponse,
    EnrollResponse,
    GenerateResponse,
    IdentifyResponse,
    LegacyEnrollResponse,
    PersonVerifyResponse,
    VerifyResponse,
)
from core.schemas.stats import (
    BatchingStats,
    EnrollmentRun,
    EnrollmentStatsResponse,
    GenerationRun,
    GenerationStatsResponse,
    ModelInfoOut,
    SearchRun,
    SearchStatsResponse,
    ThresholdsResponse,
)
from core.service import ManyAnglesService
from core.settings import MAX_TOP_K, Settings
from core.store.access_log import AccessLog, Caller
from core.store.gallery import GalleryStore
from core.store.keys import GRANTS, KeyStore
from core.store.maintenance import check_store
from core.store.model_versions import active_model
from serve.admin_api import router as admin_router
from serve.admission import Admission
from serve.auth import caller_of, ensure_api_key, offered_key
from serve.deps import CanEnroll, CanIdentify, CanRead, RowId, errors, known_parameters, may_read
from serve.forms import ENROLL_STREAM, PhotoOptions, answer, read_upload, view_names
from serve.gallery_api import router as gallery_router
from serve.http_errors import HEALTH_ERRORS, health_answer
from serve.http_errors import install as install_error_handling
from serve.keys_api import router as keys_router
from serve.logs import route_core_logs
from serve.near import NearFaces
from serve.remote import RemoteFaces, RemoteViews, wait

STRICT = "answer 503 when degraded: for a readiness probe that takes this instance out of rotation"
log = logging.getLogger("ray.serve")


MAX_EMBED_PHOTOS = 64  # photos per /v1/embed call: bounds one request's memory and its time on the Embedder


app = FastAPI(
    title="ManyAngles",
    # 1.9: POST /v1/persons/{id}/verify (a photo against an enrolled person); verify decides at
    # its own threshold, at the verify_fmr setting (target_fmr in its answers, verify_* in
    # GET /v1/thresholds); the access log's `view` (a person's image served); 1.8: an unknown query parameter or form field is a 422 (was ignored); the access log's
    # since/until and its command-line entries; GET/POST /v1/keys, DELETE /v1/keys/{id}; 1.7: GET /v1/access-log; 1.6: POST /v1/duplicates/jobs, GET /v1/duplicates/audit (any gallery size); 1.5: GET /v1/duplicates;
    # 1.4: a photo added to a person, one image deleted; 1.3: GET /v1/export has an ETag (304 to
    # If-None-Match); 1.2: GET /v1/persons pages
    version="1.9",
    description="Face enrollment from one photo, with identity-gated synthetic views.",
    dependencies=[Depends(known_parameters)],  # a misspelt parameter is a 422, not a silent default
)
app.include_router(admin_router)
app.include_router(gallery_router)
app.include_router(keys_router)
install_error_handling(app)


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
        store = GalleryStore.from_settings(settings)
        check_store(store)  # after a crash: integrity, orphan files, half-written files
        # a photo is analysed here when this replica's copy of the model is free (no Ray hop), by the
        # Embedder otherwise (serve/near.py)
        faces = NearFaces(settings, store, RemoteFaces(embedder))
        self.service = ManyAnglesService(settings, faces, store, RemoteViews(generator, embedder))
        app.state.max_body_bytes = 2 * settings.max_upload_bytes + 1024 * 1024
        app.state.api_key = self.api_key
        app.state.keys = KeyStore(store)
        app.state.admission = Admission(settings.queue_budget_s)
        app.state.service = self.service  # for the routers (serve/admin_api.py, serve/gallery_api.py)
        self.access_log = AccessLog(store, settings.access_log_days)  # who did what (core/store/access_log.py)
        app.state.access_log = self.access_log

    # --- health and stats --------------------------------------------------------------------
    @app.get("/v1/health", response_model=HealthResponse, responses=HEALTH_ERRORS)
    def health(
        self,
        strict: Annotated[bool, Query(description=STRICT)] = False,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> Any:
        """Each deployment, the active models, the device; 200 even when degraded (identification
        may still work with the generator down) unless ``strict``. With a key: its name, scope
        and grants when it is valid (``key``; a console's sign-in), null otherwise."""
        report = self._health()
        caller = caller_of(offered_key(authorization, x_api_key), self.api_key, app.state.keys)
        if caller is not None:
            grants = sorted(GRANTS[caller.scope])
            report = report.model_copy(update={"key": KeyInfo(name=caller.key_name, scope=caller.scope, grants=grants)})
        return health_answer(report, strict)

    def _health(self) -> HealthResponse:
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
        if "model" in embedder and generator.get("generator") == "classic" and embedder["model"].default_views:
            # what an enrollment that names no views makes: the views chosen for the active model
            generator["default_views"] = embedder["model"].default_views
        models = {
            "embedder": embedder["model"].name if "model" in embedder else "unavailable",
            "generator": generator.get("generator", "unavailable"),
        }
        notice = upgrade_notice(self.settings, active_model(self.service.store))
        return HealthResponse.model_validate(
            {
                "status": status,
                "deployments": {"embedder": embedder, "generator": generator},
                "models": models,
                "notices": [notice] if notice else [],
            }
        )

    @app.head("/v1/health", include_in_schema=False)
    def health_head(self, strict: Annotated[bool, Query(description=STRICT)] = False) -> Response:
        """What a load balancer's HEAD probe gets: GET's status code, no body; the overall status
        (``ok`` or ``degraded``) in ``X-Health-Status``."""
        report = self._health()
        code = 503 if strict and report.status != "ok" else 200
        return Response(status_code=code, headers={"X-Health-Status": report.status})

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

    @app.get("/v1/stats/searches", response_model=SearchStatsResponse, responses=errors())
    def search_stats(self, _: CanRead, limit: int = Query(500, ge=1, le=10_000)) -> SearchStatsResponse:
        """Time of the latest identify and verify calls, stage by stage (timings only: never who)."""
        return SearchStatsResponse(runs=[SearchRun.of(r) for r in self.service.store.search_runs(limit)])

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
        caller: CanEnroll,
        request: Request,
        name: Annotated[str, Form()],
        photo: Annotated[UploadFile, File()],
        options: Annotated[PhotoOptions, Depends()],
        force: Annotated[
            bool, Form(description="enroll even if the face is identified as someone already enrolled")
        ] = False,
    ) -> Any:
        """Enroll a person from one photo, with views of it when asked for; all or nothing. 409
        when the name is taken, or when the face is identified as a person already enrolled
        (``already_enrolled``, with ``match``; ``force=true`` enrolls anyway)."""
        data = read_upload(photo, self.settings.max_upload_bytes)
        kwargs = options.service_kwargs()
        return answer(
            request,
            lambda progress: self._enrolled(
                caller, "enroll", self.service.enroll(name, data, force=force, progress=progress, **kwargs)
            ),
        )

    @app.post(
        "/v1/persons/{person_id}/photos",
        status_code=201,
        response_model=EnrollResponse,
        responses={**ENROLL_STREAM, **errors(404, 409, 413, 422, 503)},
    )
    def add_photo(
        self,
        caller: CanEnroll,
        request: Request,
        person_id: RowId,
        photo: Annotated[UploadFile, File()],
        options: Annotated[PhotoOptions, Depends()],
        force: Annotated[
            bool, Form(description="add it even if it does not verify as them, or is identified as someone else")
        ] = False,
    ) -> Any:
        """Another photo of an enrolled person, with views of it when asked for; all or nothing.
        409 ``photo_exists`` when the person already has this photo; 409 ``not_this_person`` when
        it does not verify as them (their score under the one-to-one threshold, as POST
        /v1/persons/{id}/verify decides), 409 ``matches_another_person`` when it is identified as
        another person and not as them (``force=true`` adds it anyway in both cases)."""
        data = read_upload(photo, self.settings.max_upload_bytes)
        kwargs = options.service_kwargs()
        return answer(
            request,
            lambda progress: self._enrolled(
                caller, "add_photo", self.service.add_photo(person_id, data, force=force, progress=progress, **kwargs)
            ),
        )

    def _enrolled(self, caller: Caller, action: str, result: EnrollResult) -> EnrollResult:
        """The access log's entry of a stored enrollment or added photo."""
        detail = f"{result.num_images} image(s), {result.num_embeddings} embedding(s)"
        self.access_log.record(caller, action, [result.person_id], detail)
        return result

    @app.post("/api/enroll", status_code=201, response_model=LegacyEnrollResponse, responses=errors(409, 413, 422, 503))
    def enroll_legacy(
        self,
        caller: CanEnroll,
        name: Annotated[str, Form()],
        image: Annotated[UploadFile, File()],
        use_augmentation: Annotated[bool, Form()] = True,
        num_variations: Annotated[int, Form()] = 5,
    ) -> LegacyEnrollResponse:
        """The seed document's enrollment call, kept for clients of the earlier system: as there,
        a face already enrolled under another name is enrolled again (no ``already_enrolled``)."""
        data = read_upload(image, self.settings.max_upload_bytes)
        result = self.service.enroll(
            name,
            data,
            augment=use_augmentation,
            num_variations=num_variations if use_augmentation else None,
            force=True,
        )
        self._enrolled(caller, "enroll", result)
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
        caller: CanIdentify,
        photo: Annotated[UploadFile, File()],
        top_k: Annotated[int | None, Form(ge=1, le=MAX_TOP_K, description="default: the top_k setting")] = None,
    ) -> IdentifyResponse:
        found = self.service.identify(read_upload(photo, self.settings.max_upload_bytes), top_k)
        identified = [f.match.identity.person_id for f in found.faces if f.match.identity is not None]
        self.access_log.record(
            caller, "identify", identified, f"{len(found.faces)} face(s), {len(identified)} identified"
        )
        return IdentifyResponse.of(found, below_threshold=may_read(caller))

    @app.post("/v1/verify", response_model=VerifyResponse, responses=errors(409, 413, 422, 503))
    def verify(
        self,
        caller: CanIdentify,
        photo_a: Annotated[UploadFile, File()],
        photo_b: Annotated[UploadFile, File()],
    ) -> VerifyResponse:
        cap = self.settings.max_upload_bytes
        result = self.service.verify(read_upload(photo_a, cap), read_upload(photo_b, cap))
        self.access_log.record(caller, "verify", detail=f"same person: {'yes' if result.same_person else 'no'}")
        return VerifyResponse.of(result)

    @app.post(
        "/v1/persons/{person_id}/verify",
        response_model=PersonVerifyResponse,
        responses=errors(404, 409, 413, 422, 503),
    )
    def verify_person(
        self, caller: CanIdentify, person_id: RowId, photo: Annotated[UploadFile, File()]
    ) -> PersonVerifyResponse:
        """Is the face in ``photo`` (the largest) this enrolled person? One to one, against a
        claimed identity (a badge, a login), scored as identification would rank them."""
        found = self.service.verify_person(person_id, read_upload(photo, self.settings.max_upload_bytes))
        detail = f"same person: {'yes' if found.same_person else 'no'}"
        self.access_log.record(caller, "verify", [found.person_id], detail)
        return PersonVerifyResponse.of(found, name_if_not_same=may_read(caller))

    @app.post("/v1/embed", response_model=EmbedResponse, responses=errors(413, 422, 503))
    def embed(self, caller: CanIdentify, photos: Annotated[list[UploadFile], File()]) -> EmbedResponse:
        if len(photos) > MAX_EMBED_PHOTOS:  # before reading any: each may be max_upload_bytes
            raise InvalidInput(f"at most {MAX_EMBED_PHOTOS} photos per call, got {len(photos)}; send them in parts")
        cap = self.settings.max_upload_bytes
        uploads = [(p.filename or f"photo{i}", read_upload(p, cap)) for i, p in enumerate(photos)]
        embedded = self.service.embed(uploads)
        self.access_log.record(caller, "embed", detail=f"{len(uploads)} photo(s)")
        return EmbedResponse.of(self.service.model, embedded)

    @app.post("/v1/generate", response_model=GenerateResponse, responses=errors(409, 413, 422, 503))
    def generate(
        self,
        caller: CanEnroll,
        photo: Annotated[UploadFile, File()],
        views: Annotated[str | None, Form()] = None,
        num_variations: Annotated[int | None, Form()] = None,
        seed: Annotated[int, Form()] = 0,
    ) -> GenerateResponse:
        outcome = self.service.generate_views(
            read_upload(photo, self.settings.max_upload_bytes),
            views=view_names(views),
            num_variations=num_variations,
            seed=seed,
        )
        self.access_log.record(caller, "generate", detail=f"{len(outcome.accepted)} view(s) accepted")
        return GenerateResponse.of(outcome)

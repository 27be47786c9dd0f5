"""The HTTP API: a FastAPI ingress composed with the Embedder and Generator deployments.

Routes are sync functions: FastAPI runs them on its thread pool, where blocking on deployment
handles is allowed, and the core service does the work exactly as it does in the CLI.
Every route but /v1/health needs the API key (``Authorization: Bearer`` or ``X-API-Key``).
"""

# No `from __future__ import annotations` here: Serve ships the ingress class to replicas by
# value, and FastAPI must resolve these annotations there (string annotations would not).

import base64
import json
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve

from core.enrollment import ProgressEvent
from core.errors import ImageTooLarge, InvalidInput, ManyAnglesError
from core.images import encode_png
from core.service import EnrollResult, ManyAnglesService
from core.settings import Settings
from core.store.gallery import GalleryStore
from serve.auth import ensure_api_key, key_matches
from serve.remote import RemoteAugmentor, RemoteFaceEngine, ServiceBusy, wait

log = logging.getLogger("ray.serve")
NDJSON = "application/x-ndjson"

app = FastAPI(
    title="ManyAngles",
    version="1.0",
    description="Face enrollment from one photo, with identity-gated synthetic views.",
)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@app.exception_handler(ManyAnglesError)
def _typed_error(_: Request, exc: ManyAnglesError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, ServiceBusy) else None
    return JSONResponse(error_body(exc.code, exc.message), status_code=exc.http_status, headers=headers)


@app.exception_handler(RequestValidationError)
def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors())
    return JSONResponse(error_body("invalid_request", problems), status_code=422)


@app.middleware("http")
async def _size_cap(request: Request, call_next: Any) -> Any:
    """Refuse an oversized body from its Content-Length, before reading it."""
    cap = request.app.state.max_body_bytes if hasattr(request.app.state, "max_body_bytes") else None
    length = request.headers.get("content-length")
    if cap and length and length.isdigit() and int(length) > cap:
        return JSONResponse(error_body("image_too_large", f"the request body is {length} bytes; the limit is {cap}"), 413)
    return await call_next(request)


class _Unauthorized(ManyAnglesError):
    code = "unauthorized"
    http_status = 401


def require_key(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> None:
    if not key_matches(request.app.state.api_key, authorization, x_api_key):
        raise _Unauthorized("a valid API key is required (Authorization: Bearer <key> or X-API-Key)")


Authorized = Annotated[None, Depends(require_key)]


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


def _face_json(embedded: Any, with_vector: bool = False) -> dict[str, Any]:
    out = embedded.face.as_dict()
    if with_vector:
        out["embedding"] = [round(float(x), 6) for x in embedded.vector]
    return out


@serve.deployment(max_ongoing_requests=100, ray_actor_options={"num_cpus": 0.5})
@serve.ingress(app)
class API:
    def __init__(self, embedder: Any, generator: Any, settings: Settings) -> None:
        self.settings = settings
        self.api_key, created = ensure_api_key(settings)
        if created:
            log.warning("generated an API key, stored in %s/api_key", settings.data_dir)
        self._embedder = embedder
        self._generator = generator
        self.service = ManyAnglesService(
            settings,
            RemoteFaceEngine(embedder),
            GalleryStore(settings.data_dir),
            RemoteAugmentor(generator),
        )
        app.state.max_body_bytes = 2 * settings.max_upload_bytes + 1024 * 1024
        app.state.api_key = self.api_key

    # --- health and stats --------------------------------------------------------------------
    @app.get("/v1/health")
    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok", "deployments": {}}
        for name, call in (("embedder", lambda: self._embedder.info.remote()), ("generator", lambda: self._generator.health_info.remote())):
            try:
                report["deployments"][name] = {"status": "ok", **wait(call(), name)}
            except Exception as exc:  # noqa: BLE001 - health reports every failure
                report["status"] = "degraded"
                report["deployments"][name] = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
        report["models"] = {"embedder": self.service.engine.model_name, "generator": self.service.augmentor.name}
        return report

    @app.get("/v1/stats/generation")
    def generation_stats(self, _: Authorized, limit: int = Query(500, ge=1, le=10_000)) -> dict[str, Any]:
        return {"runs": self.service.store.generation_runs(limit)}

    @app.get("/v1/stats/batching")
    def batching_stats(self, _: Authorized) -> dict[str, Any]:
        return wait(self._embedder.batch_stats.remote(), "embedder")

    # --- persons -----------------------------------------------------------------------------
    @app.post("/v1/persons", status_code=201)
    def enroll(
        self,
        _: Authorized,
        request: Request,
        name: Annotated[str, Form()],
        photo: Annotated[UploadFile, File()],
        use_augmentation: Annotated[bool, Form()] = False,
        num_variations: Annotated[int | None, Form()] = None,
        views: Annotated[str | None, Form(description="comma-separated or JSON list")] = None,
        seed: Annotated[int, Form()] = 0,
        face: Annotated[str, Form(description="single, largest or an index")] = "single",
    ) -> Any:
        data = _read_upload(photo, self.settings.max_upload_bytes)
        kwargs = {
            "face": _face_policy(face),
            "augment": use_augmentation or views is not None or num_variations is not None,
            "views": _views(views),
            "num_variations": num_variations,
            "seed": seed,
        }
        if NDJSON in request.headers.get("accept", ""):
            return StreamingResponse(self._stream_enroll(name, data, kwargs), media_type=NDJSON)
        return JSONResponse(self._enroll_json(self.service.enroll(name, data, **kwargs)), status_code=201)

    def _enroll_json(self, result: EnrollResult) -> dict[str, Any]:
        return {**asdict(result), "images_url": f"/v1/persons/{result.person_id}"}

    def _stream_enroll(self, name: str, data: bytes, kwargs: dict[str, Any]) -> Iterator[bytes]:
        events: queue.Queue[tuple[str, Any]] = queue.Queue()

        def run() -> None:
            try:
                result = self.service.enroll(name, data, progress=lambda e: events.put(("event", e)), **kwargs)
                events.put(("result", result))
            except ManyAnglesError as exc:
                events.put(("error", error_body(exc.code, exc.message)))
            except Exception:  # noqa: BLE001 - the stream must end with a line, never hang
                log.exception("enrollment failed")
                events.put(("error", error_body("internal", "enrollment failed; nothing was stored")))

        threading.Thread(target=run, daemon=True).start()
        while True:
            kind, item = events.get()
            if kind == "event":
                event: ProgressEvent = item
                line = {"type": "progress", "stage": event.stage, "message": event.message, **event.data}
            elif kind == "result":
                line = {"type": "result", **self._enroll_json(item)}
            else:
                line = {"type": "error", **item}
            yield (json.dumps(line) + "\n").encode()
            if kind != "event":
                return

    @app.post("/api/enroll", status_code=201)
    def enroll_legacy(
        self,
        _: Authorized,
        name: Annotated[str, Form()],
        image: Annotated[UploadFile, File()],
        use_augmentation: Annotated[bool, Form()] = True,
        num_variations: Annotated[int, Form()] = 5,
    ) -> JSONResponse:
        """The seed document's enrollment call, kept for clients of the earlier system."""
        data = _read_upload(image, self.settings.max_upload_bytes)
        result = self.service.enroll(
            name, data, augment=use_augmentation, num_variations=num_variations if use_augmentation else None
        )
        detail = self.service.store.person_detail(result.person_id)
        body = {
            "success": True,
            "person_id": result.person_id,
            "name": result.name,
            "embeddings_count": result.num_embeddings,
            "images": [i.display_name for i in detail.images],
            "message": f"enrolled {result.name} with {result.num_embeddings} embedding(s)",
        }
        return JSONResponse(body, status_code=201)

    @app.get("/v1/persons")
    def persons(self, _: Authorized) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.service.persons()]

    @app.get("/v1/persons/{person_id}")
    def person(self, _: Authorized, person_id: int) -> dict[str, Any]:
        detail = self.service.store.person_detail(person_id)
        images = [
            {**asdict(i), "url": f"/v1/persons/{person_id}/images/{i.id}"} for i in detail.images
        ]
        for image in images:
            image.pop("path")
        return {**asdict(detail.person), "images": images, "embedding_counts": detail.embedding_counts}

    @app.get("/v1/persons/{person_id}/images/{image_id}")
    def person_image(self, _: Authorized, person_id: int, image_id: int) -> Response:
        record, data = self.service.store.image(person_id, image_id)
        return Response(data, media_type=record.mime, headers={"Content-Disposition": f'inline; filename="{record.display_name}"'})

    @app.delete("/v1/persons/{person_id}")
    def delete_person(self, _: Authorized, person_id: int) -> dict[str, Any]:
        return {"deleted": person_id, **self.service.delete(person_id)}

    # --- recognition -------------------------------------------------------------------------
    @app.post("/v1/identify")
    def identify(
        self,
        _: Authorized,
        photo: Annotated[UploadFile, File()],
        top_k: Annotated[int, Form(ge=1, le=100)] = 5,
    ) -> dict[str, Any]:
        found = self.service.identify(_read_upload(photo, self.settings.max_upload_bytes), top_k)
        faces = []
        for item in found:
            identity = item.match.identity
            faces.append(
                {
                    **_face_json(item.face),
                    "identity": asdict(identity) if identity else None,
                    "label": identity.name if identity else "unknown",
                    "candidates": [asdict(c) for c in item.match.candidates],
                }
            )
        threshold = found[0].match.threshold if found else None
        return {"model": self.service.engine.model_name, "threshold": threshold, "faces": faces}

    @app.post("/v1/verify")
    def verify(
        self,
        _: Authorized,
        photo_a: Annotated[UploadFile, File()],
        photo_b: Annotated[UploadFile, File()],
    ) -> dict[str, Any]:
        cap = self.settings.max_upload_bytes
        return asdict(self.service.verify(_read_upload(photo_a, cap), _read_upload(photo_b, cap)))

    @app.post("/v1/embed")
    def embed(self, _: Authorized, photos: Annotated[list[UploadFile], File()]) -> dict[str, Any]:
        cap = self.settings.max_upload_bytes
        uploads = [(p.filename or f"photo{i}", _read_upload(p, cap)) for i, p in enumerate(photos)]
        responses = [self._embedder.embed_photo.remote(data) for _, data in uploads]
        results = []
        for (filename, _), response in zip(uploads, responses):
            try:
                faces = wait(response, "embedder")
            except ManyAnglesError as exc:
                exc.message = f"{filename}: {exc.message}"
                raise
            results.append({"filename": filename, "faces": [_face_json(f, with_vector=True) for f in faces]})
        info = self.service.engine.embedder
        return {"model": info.name, "dim": info.dim, "results": results}

    @app.post("/v1/generate")
    def generate(
        self,
        _: Authorized,
        photo: Annotated[UploadFile, File()],
        views: Annotated[str | None, Form()] = None,
        num_variations: Annotated[int | None, Form()] = None,
        seed: Annotated[int, Form()] = 0,
    ) -> dict[str, Any]:
        outcome = self.service.generate_views(
            _read_upload(photo, self.settings.max_upload_bytes), views=_views(views), num_variations=num_variations, seed=seed
        )
        stats = outcome.result.stats
        return {
            "generator": stats.generator,
            "device": stats.device,
            "total_s": round(stats.total_s, 4),
            "gate_threshold": outcome.gate_threshold,
            "views": [
                {**d.as_record(), "image_png_base64": base64.b64encode(encode_png(d.view.rgb)).decode()}
                for d in outcome.decisions
            ],
        }

"""Gallery administration routes: model versions and batch jobs (list models, start a
re-embedding, follow it, switch and prune by hand), the whole-gallery export and the access log.
A re-embedding runs in a ``manyangles reembed`` process (core/batch/launch.py), never in the API
replica.

No ``from __future__ import annotations``: FastAPI resolves the annotations of these routes.
"""

import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from core.batch.launch import launch_reembed
from core.batch.reembed import switch_to
from core.errors import InvalidInput, ModelNotFound
from core.schemas.admin import AccessEntryOut, AccessLogResponse, JobOut, ModelOut, ModelsResponse, ReembedRequest
from core.service import ManyAnglesService
from core.store.access_log import ACTIONS, access_page, stored_time
from core.store.jobs import get_job, list_jobs, reap_dead_jobs
from core.store.maintenance import EXPORT_PREFIX
from core.store.model_versions import active_model, list_models, prune_model, resolve_model
from core.store.sqlutil import MAX_ROW_ID
from core.store.transfer import export_gallery
from serve.bodies import documented, json_or_form
from serve.deps import Admin, CanRead, RowId, errors, log_access

router = APIRouter()


def _service(request: Request) -> ManyAnglesService:
    service: ManyAnglesService = request.app.state.service
    return service


def _models(service: ManyAnglesService) -> ModelsResponse:
    active = active_model(service.store)
    return ModelsResponse(
        active=active.name if active else None, models=[ModelOut.of(m) for m in list_models(service.store)]
    )


@router.get("/v1/models", response_model=ModelsResponse, responses=errors())
def models(request: Request, _: CanRead) -> ModelsResponse:
    """Every model version of the gallery: status (building, active, retired), vectors, thresholds."""
    return _models(_service(request))


@router.post(
    "/v1/models/reembed",
    status_code=202,
    response_model=JobOut,
    responses=errors(409, 503),
    openapi_extra=documented(ReembedRequest),
)
def reembed(
    request: Request, caller: Admin, body: Annotated[ReembedRequest, Depends(json_or_form(ReembedRequest))]
) -> JobOut:
    """Embed every stored image with ``model`` in the background, then switch to it (the fields as
    JSON or as a form). Follow it at ``GET /v1/jobs/{id}``; identification keeps answering with the
    active model meanwhile."""
    service = _service(request)
    job = launch_reembed(service.settings, service.store, body.model, body.switch, body.allow_missing)
    log_access(request, caller, "reembed", detail=f"job {job.id}, {body.model}")
    return JobOut.of(job)


@router.get("/v1/jobs", response_model=list[JobOut], responses=errors())
def jobs(request: Request, _: CanRead) -> list[JobOut]:
    store = _service(request).store
    reap_dead_jobs(store)
    return [JobOut.of(j) for j in list_jobs(store)]


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=errors(404))
def job(request: Request, _: CanRead, job_id: RowId) -> JobOut:
    """A job's progress: done / total, rate and ETA (what a progress bar polls)."""
    store = _service(request).store
    reap_dead_jobs(store)
    record = get_job(store, job_id)
    if record is None:
        raise ModelNotFound(f"no job {job_id}")
    return JobOut.of(record)


@router.get("/v1/access-log", response_model=AccessLogResponse, responses=errors())
def access_log(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
    action: Annotated[Literal[ACTIONS] | None, Query(description="only this action")] = None,  # type: ignore[valid-type]
    person_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID, description="only this person")] = None,
    key_name: Annotated[str | None, Query(max_length=200, description="only this key's name")] = None,
    since: Annotated[datetime | None, Query(description="at or after this time (ISO 8601; no offset: UTC)")] = None,
    until: Annotated[datetime | None, Query(description="before this time (ISO 8601; no offset: UTC)")] = None,
) -> AccessLogResponse:
    """Who did what, over HTTP and with ``manyangles`` commands (by the account that ran them),
    newest first: enrollments, added photos, renames, deletions, identifications (one entry per
    person identified), verifications, embeddings, views made, exports, model changes, searches
    for faces enrolled twice, and the command line's backups, restores, imports, key changes and
    calibrations; entries older than ``access_log_days`` are removed, and an erased person's id
    goes from every entry."""
    if since is not None and until is not None and stored_time(until) <= stored_time(since):
        raise InvalidInput(f"until ({until.isoformat()}) must be after since ({since.isoformat()})")
    entries, total = access_page(_service(request).store, limit, offset, action, person_id, key_name, since, until)
    following = offset + len(entries)
    return AccessLogResponse(
        entries=[AccessEntryOut.of(e) for e in entries],
        total=total,
        next_offset=following if following < total else None,
        actions=list(ACTIONS),
    )


@router.post("/v1/models/{name}/activate", response_model=ModelsResponse, responses=errors(404, 409))
def activate(request: Request, caller: Admin, name: str, allow_missing: bool = False) -> ModelsResponse:
    """Switch by hand to a model whose every image has a vector (after `reembed` with no switch)."""
    service = _service(request)
    record = switch_to(service.store, service.settings, resolve_model(service.store, name), allow_missing)
    log_access(request, caller, "activate_model", detail=record.name)
    return _models(service)


@router.delete("/v1/models/{name}/embeddings", response_model=ModelsResponse, responses=errors(404, 409))
def prune(request: Request, caller: Admin, name: str) -> ModelsResponse:
    """Remove every vector of a model that is not the active one."""
    service = _service(request)
    model = resolve_model(service.store, name).name
    removed = prune_model(service.store, model)
    log_access(request, caller, "prune_model", detail=f"{model}: {removed} vector(s)")
    return _models(service)


@router.get(
    "/v1/export/gallery",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "an export folder, zipped"}, **errors()},
)
def export_archive(
    request: Request,
    caller: Admin,
    images: Annotated[bool, Query(description="include the image files (needed to import it)")] = True,
) -> FileResponse:
    """The whole gallery as `manyangles export` writes it (Parquet tables, manifest, images), as
    one zip: unzip it and `manyangles import` the folder into another gallery."""
    store = _service(request).store
    store.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # on PostgreSQL the store did not make it
    work = Path(tempfile.mkdtemp(prefix=EXPORT_PREFIX, dir=store.data_dir))
    try:
        export_gallery(store, work / "gallery", with_images=images)
        archive = work / "gallery.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zipped:
            for path in sorted((work / "gallery").rglob("*")):
                if path.is_file():
                    zipped.write(path, path.relative_to(work).as_posix())
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    log_access(request, caller, "export_gallery", detail="with images" if images else "without images")
    return FileResponse(
        archive,
        media_type="application/zip",
        filename="manyangles-gallery.zip",
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )

"""Gallery administration routes: model versions and batch jobs (list models, start a
re-embedding, follow it, switch and prune by hand) and the whole-gallery export. A re-embedding runs
in a ``manyangles reembed`` process (core/batch/launch.py), never in the API replica.

No ``from __future__ import annotations``: FastAPI resolves the annotations of these routes.
"""

import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from core.batch.commands import resolve_model
from core.batch.launch import launch_reembed
from core.batch.reembed import switch_to
from core.errors import ModelNotFound
from core.schemas_models import JobOut, ModelOut, ModelsResponse, ReembedRequest
from core.service import ManyAnglesService
from core.store.jobs import get_job, list_jobs, reap_dead_jobs
from core.store.maintenance import EXPORT_PREFIX
from core.store.models import active_model, list_models, prune_model
from core.store.transfer import export_gallery
from serve.deps import Admin, CanRead, RowId, errors

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


@router.post("/v1/models/reembed", status_code=202, response_model=JobOut, responses=errors(409, 503))
def reembed(request: Request, _: Admin, body: ReembedRequest) -> JobOut:
    """Embed every stored image with ``model`` in the background, then switch to it. Follow it at
    ``GET /v1/jobs/{id}``; identification keeps answering with the active model meanwhile."""
    service = _service(request)
    return JobOut.of(launch_reembed(service.settings, body.model, body.switch, body.allow_missing))


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


@router.post("/v1/models/{name}/activate", response_model=ModelsResponse, responses=errors(404, 409))
def activate(request: Request, _: Admin, name: str, allow_missing: bool = False) -> ModelsResponse:
    """Switch by hand to a model whose every image has a vector (after `reembed` with no switch)."""
    service = _service(request)
    switch_to(service.store, service.settings, resolve_model(service.store, name), allow_missing)
    return _models(service)


@router.delete("/v1/models/{name}/embeddings", response_model=ModelsResponse, responses=errors(404, 409))
def prune(request: Request, _: Admin, name: str) -> ModelsResponse:
    """Remove every vector of a model that is not the active one."""
    service = _service(request)
    prune_model(service.store, resolve_model(service.store, name).name)
    return _models(service)


@router.get(
    "/v1/export/gallery",
    response_class=FileResponse,
    responses={200: {"content": {"application/zip": {}}, "description": "an export folder, zipped"}, **errors()},
)
def export_archive(
    request: Request,
    _: Admin,
    images: Annotated[bool, Query(description="include the image files (needed to import it)")] = True,
) -> FileResponse:
    """The whole gallery as `manyangles export` writes it (Parquet tables, manifest, images), as
    one zip: unzip it and `manyangles import` the folder into another gallery."""
    store = _service(request).store
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
    return FileResponse(
        archive,
        media_type="application/zip",
        filename="manyangles-gallery.zip",
        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True),
    )

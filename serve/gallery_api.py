"""Gallery routes: persons a page at a time, one person with their images, rename, delete (a
person or one of their images), a Parquet snapshot of one table, and faces enrolled twice. None
touches the Embedder or Generator.

No ``from __future__ import annotations``: FastAPI resolves the annotations of these routes.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from core.batch.launch import launch_duplicates
from core.errors import InvalidRequest
from core.faces.decode import thumbnail_jpeg
from core.schemas.admin import JobOut
from core.schemas.gallery import (
    ChangesOut,
    DeleteResponse,
    DuplicatesAuditResponse,
    DuplicatesResponse,
    ImageDeleteResponse,
    MergeRequest,
    MergeResponse,
    PersonDetailOut,
    PersonOut,
    PersonsPage,
    RenameRequest,
)
from core.service import ManyAnglesService
from core.store.access_log import counted
from core.store.audits import latest_audit, latest_audit_job
from core.store.changes import MAX_CHANGED, changes_since
from core.store.jobs import reap_dead_jobs
from core.store.names import MAX_NAME_LENGTH
from core.store.snapshot import export_snapshot, gallery_stamp, validate
from core.store.sqlutil import MAX_ROW_ID
from serve.bodies import documented, json_or_form
from serve.deps import Admin, CanRead, RowId, errors, log_access, log_browse, log_view

router = APIRouter()
PARQUET = "application/vnd.apache.parquet"
MAX_PAGE = 1000
COVER_MAX_PX = 192  # a grid's cover: a face to recognise a person by, not a photo to take away
MAX_DUPLICATES_EMBEDDINGS = 50_000  # ~10 s on 2 cores (BENCHMARKS.md "Faces enrolled twice"); above: the CLI


def _service(request: Request) -> ManyAnglesService:
    service: ManyAnglesService = request.app.state.service
    return service


@router.get("/v1/persons", response_model=PersonsPage, responses=errors())
def persons(
    request: Request,
    _: CanRead,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="persons per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID, description="persons to skip")] = 0,
    prefix: Annotated[
        str | None, Query(max_length=MAX_NAME_LENGTH, description="only names starting with this (case-sensitive)")
    ] = None,
    order: Annotated[Literal["name", "newest"], Query(description="name order, or latest enrolled first")] = "name",
) -> PersonsPage:
    """Enrolled persons, a page at a time, with how many match in all."""
    store = _service(request).store
    page = store.list_persons(limit=limit, offset=offset, prefix=prefix, newest_first=order == "newest")
    return PersonsPage.of(page, store.count_persons(prefix), limit, offset)


@router.get("/v1/persons/{person_id}", response_model=PersonDetailOut, responses=errors(404))
def person(request: Request, caller: CanRead, person_id: RowId) -> PersonDetailOut:
    """A person's record: their images, embeddings per model and source; logged as ``view`` (one
    entry per key and person per 15 minutes, with the images seen after it)."""
    detail = PersonDetailOut.of_detail(_service(request).store.person_detail(person_id))
    log_view(request, caller, person_id, "person record")
    return detail


@router.get(
    "/v1/persons/{person_id}/images/{image_id}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}, "description": "the stored image"},
        **errors(404),
    },
)
def person_image(
    request: Request,
    caller: CanRead,
    person_id: RowId,
    image_id: RowId,
    thumbnail: Annotated[
        int | None,
        Query(
            ge=32,
            le=COVER_MAX_PX,
            description="the person's cover (their first photo) only: a JPEG of the face, at most this many pixels "
            "a side, for a grid of persons",
        ),
    ] = None,
) -> Response:
    """One stored image of a person; logged as ``view`` (one entry per key and person per 15
    minutes). A ``thumbnail`` of the person's cover (a grid's) is counted in the key's ``browse``
    entry, naming no person: showing a page of faces is not opening anyone's record."""
    store = _service(request).store
    record, data = store.image(person_id, image_id)
    if thumbnail is not None:
        if store.cover_image(person_id) != image_id:
            raise InvalidRequest(
                f"image {image_id} is not person {person_id}'s cover (their first photo): only a cover is served "
                "as a thumbnail; ask for the image without thumbnail"
            )
        small = thumbnail_jpeg(data, thumbnail, store.face_box(image_id))
        log_browse(request, caller)
        return Response(small, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})
    log_view(request, caller, person_id, f"image {image_id}")
    return Response(
        data, media_type=record.mime, headers={"Content-Disposition": f'inline; filename="{record.display_name}"'}
    )


@router.patch(
    "/v1/persons/{person_id}",
    response_model=PersonOut,
    responses=errors(404, 409),
    openapi_extra=documented(RenameRequest),
)
def rename_person(
    request: Request,
    caller: Admin,
    person_id: RowId,
    body: Annotated[RenameRequest, Depends(json_or_form(RenameRequest))],
) -> PersonOut:
    """Rename a person (the new name must be free); ``{"name": ...}`` as JSON or as a form."""
    renamed = _service(request).store.rename_person(person_id, body.name)
    log_access(request, caller, "rename", [person_id])
    return PersonOut.of(renamed)


@router.post(
    "/v1/persons/{person_id}/merge",
    response_model=MergeResponse,
    responses=errors(404, 409, 422),
    openapi_extra=documented(MergeRequest),
)
def merge_persons(
    request: Request,
    caller: Admin,
    person_id: RowId,
    body: Annotated[MergeRequest, Depends(json_or_form(MergeRequest))],
) -> MergeResponse:
    """Merge person ``other`` into this one (a face enrolled twice): their photos, views, vectors
    and history become this person's, and ``other`` is deleted, in one transaction. 409
    ``not_this_person`` when a photo of ``other`` does not verify as this person
    (``force=true`` merges anyway)."""
    person, counts = _service(request).merge(person_id, body.other, body.force)
    log_access(request, caller, "merge", [person_id], f"person {body.other}: {counted(counts)}")
    return MergeResponse(person=PersonOut.of(person), merged=body.other, **counts)


@router.delete("/v1/persons/{person_id}", response_model=DeleteResponse, responses=errors(404))
def delete_person(request: Request, caller: Admin, person_id: RowId) -> DeleteResponse:
    """Erase every row and file of the person (their id goes from the access log too)."""
    counts = _service(request).delete(person_id)
    log_access(request, caller, "delete_person", detail=counted(counts))
    return DeleteResponse.of(person_id, counts)


@router.delete(
    "/v1/persons/{person_id}/images/{image_id}", response_model=ImageDeleteResponse, responses=errors(404, 409)
)
def delete_image(request: Request, caller: Admin, person_id: RowId, image_id: RowId) -> ImageDeleteResponse:
    """Erase one image of a person (a generated view, or one of several photos) with its
    embeddings; 409 for the person's only uploaded photo (delete the person instead)."""
    counts = _service(request).delete_image(person_id, image_id)
    log_access(request, caller, "delete_image", [person_id], f"image {image_id}: {counted(counts)}")
    return ImageDeleteResponse.of(person_id, image_id, counts)


@router.get(
    "/v1/export",
    response_class=Response,
    responses={
        200: {"content": {PARQUET: {}}, "description": "the table as Parquet, with the gallery's ETag"},
        304: {"description": "not modified: the gallery is unchanged since the snapshot tagged If-None-Match"},
        **errors(),
    },
)
def export(
    request: Request,
    caller: Admin,
    table: Annotated[str, Query(description="persons, images or embeddings")] = "persons",
    vectors: Annotated[bool, Query(description="embeddings: include the float32 vector bytes")] = False,
    person_id: Annotated[list[int] | None, Query(description="only these persons (repeat; at most 1000)")] = None,
    column: Annotated[list[str] | None, Query(description="only these columns (repeat); default all")] = None,
    if_none_match: Annotated[str | None, Header(description="the ETag of a snapshot held: 304 while unchanged")] = None,
) -> Response:
    """A consistent Parquet snapshot of one gallery table, for analytics away from the store.
    Tagged with the gallery's stamp: asked again with ``If-None-Match`` it answers 304 (no body,
    no table read) until a person, image or embedding changes."""
    store = _service(request).store
    headers = {"Cache-Control": "private, no-cache"}
    if if_none_match is not None:
        validate(table, vectors, person_id, column)
        current = _etag(gallery_stamp(store))
        if if_none_match.strip() == "*" or current in _etags(if_none_match):
            return Response(status_code=304, headers={**headers, "ETag": current})
    exported = export_snapshot(store, table, with_vectors=vectors, person_ids=person_id, columns=column)
    headers |= {"ETag": _etag(exported.stamp), "Content-Disposition": f'attachment; filename="{table}.parquet"'}
    some = f", {len(person_id)} person(s)" if person_id is not None else ""
    log_access(request, caller, "export", detail=f"{table}{' with vectors' if vectors else ''}{some}")
    return Response(exported.data, media_type=PARQUET, headers=headers)


@router.get("/v1/export/changes", response_model=ChangesOut, responses=errors(409))
def export_changes(
    request: Request,
    _: Admin,
    since: Annotated[
        str | None, Query(max_length=40, description="the token of the snapshot held; none: only the current token")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGED, description="at most this many person ids")] = MAX_CHANGED,
) -> ChangesOut:
    """Which persons changed after a change token, so that a client holding a snapshot re-reads
    only their rows. Take the token before reading the tables; a token from another copy of the
    gallery (a restore) is answered 409 ``changes_unavailable``: read the tables again."""
    changes = changes_since(_service(request).store, since, limit)
    return ChangesOut.of(changes, _etag(changes.stamp))


def _etag(stamp: str) -> str:
    return f'W/"{stamp}"'  # weak: the same rows, not promised byte for byte


def _etags(header: str) -> set[str]:
    """The entity tags of an If-None-Match header, compared weakly (RFC 9110: W/ ignored)."""
    tags = (part.strip() for part in header.split(","))
    return {_etag(tag.removeprefix("W/").strip('"')) for tag in tags if tag}


@router.get("/v1/duplicates", response_model=DuplicatesResponse, responses=errors(409, 503))
def duplicates(request: Request, caller: Admin) -> DuplicatesResponse:
    """Pairs of persons one of whose photos is identified as the other: a face enrolled twice
    (with ``force``, through ``/api/enroll``, by an import without its face check), or twins.
    Every original photo is searched as an enrollment of it would be; 409 ``too_large_for_request``
    over 50,000 embeddings (``POST /v1/duplicates/jobs`` then), ``not_calibrated`` without a threshold."""
    service = _service(request)
    pairs = service.duplicates(MAX_DUPLICATES_EMBEDDINGS)
    log_access(request, caller, "duplicates", detail=f"{len(pairs)} pair(s)")
    return DuplicatesResponse.of(service.model.name, service.rule(), service.threshold(), pairs)


@router.post("/v1/duplicates/jobs", status_code=202, response_model=JobOut, responses=errors(409, 503))
def duplicates_job(request: Request, caller: Admin) -> JobOut:
    """Search the whole gallery for faces enrolled twice in the background, whatever its size (a
    ``manyangles duplicates`` process; a million embeddings take minutes). Follow it at
    ``GET /v1/jobs/{id}``, read the pairs at ``GET /v1/duplicates/audit``; 409 ``job_running``
    while another such search runs, ``not_calibrated`` without a threshold."""
    service = _service(request)
    service.threshold()  # not_calibrated: said here, not by a process that fails later
    job = launch_duplicates(service.settings, service.store, service.model.name)
    log_access(request, caller, "duplicates_job", detail=f"job {job.id}")
    return JobOut.of(job)


@router.get("/v1/duplicates/audit", response_model=DuplicatesAuditResponse, responses=errors())
def duplicates_audit(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="pairs in this page, highest score first")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> DuplicatesAuditResponse:
    """The newest background search for faces enrolled twice and a page of the pairs of the newest
    finished one (`total_pairs`: all of them)."""
    store = _service(request).store
    reap_dead_jobs(store)  # a search whose process was killed shows as failed, not running forever
    job = latest_audit_job(store)
    return DuplicatesAuditResponse.of(JobOut.of(job) if job else None, latest_audit(store, limit, offset))

"""HTTP shapes of the gallery: persons (a page of them, one in detail), their images, a deletion."""

from __future__ import annotations

from dataclasses import asdict

from pydantic import ConfigDict, Field

from core.schemas.admin import JobOut
from core.schemas.results import Schema
from core.store.audits import DuplicateAudit
from core.store.changes import Changes
from core.store.records import DuplicatePair, ImageRecord, Person, PersonDetail


class PersonOut(Schema):
    id: int
    name: str
    created_at: str
    num_images: int = Field(description="the original and the stored views")
    num_embeddings: int = Field(
        description="vectors of every model version (two per image while a re-embedding's model is kept); "
        "per model and source in GET /v1/persons/{id}"
    )

    @classmethod
    def of(cls, person: Person) -> PersonOut:
        return cls(**asdict(person))


class RenameRequest(Schema):
    """``PATCH /v1/persons/{id}``: as JSON or as a form."""

    model_config = ConfigDict(frozen=True, extra="forbid")  # a misspelt field is a 422, not ignored

    name: str = Field(description="the new name; no other person may have it")


class MergeRequest(Schema):
    """``POST /v1/persons/{id}/merge``: as JSON or as a form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    other: int = Field(ge=1, description="the person merged into this one (deleted after their rows move)")
    force: bool = Field(
        default=False, description="merge even if a photo of the other person does not verify as this one"
    )


class MergeResponse(Schema):
    """Two persons made one: what moved from ``merged`` to ``person``."""

    person: PersonOut
    merged: int = Field(description="the id of the person merged (no longer enrolled)")
    images: int = Field(description="images moved")
    duplicate_images: int = Field(description="images the person already had (same bytes): not kept twice")
    embeddings: int = Field(description="embeddings moved")


class ImageOut(Schema):
    id: int
    person_id: int
    sha256: str
    source: str
    display_name: str
    mime: str
    width: int
    height: int
    num_bytes: int
    generator: str | None
    created_at: str
    source_image_id: int | None = Field(
        default=None, description="a generated view: the photo it was made from (removed with it)"
    )
    url: str

    @classmethod
    def of(cls, image: ImageRecord) -> ImageOut:
        fields = {k: v for k, v in asdict(image).items() if k != "path"}
        return cls(**fields, url=f"/v1/persons/{image.person_id}/images/{image.id}")


class PersonDetailOut(PersonOut):
    images: list[ImageOut]
    embedding_counts: dict[str, dict[str, int]] = Field(description="model -> source -> count")

    @classmethod
    def of_detail(cls, detail: PersonDetail) -> PersonDetailOut:
        return cls(
            **asdict(detail.person),
            images=[ImageOut.of(i) for i in detail.images],
            embedding_counts=detail.embedding_counts,
        )


class DeleteResponse(Schema):
    deleted: int = Field(description="the person id")
    images: int
    embeddings: int
    files: int

    @classmethod
    def of(cls, person_id: int, counts: dict[str, int]) -> DeleteResponse:
        return cls(deleted=person_id, **counts)


class ImageDeleteResponse(Schema):
    """One image erased: its row, its embeddings (every model) and its file unless shared; a
    photo with the views made from it."""

    person_id: int
    deleted_image: int = Field(description="the image id")
    views: int = Field(description="views made from that photo, erased with it")
    embeddings: int = Field(description="embeddings erased, the views' included")
    files: int

    @classmethod
    def of(cls, person_id: int, image_id: int, counts: dict[str, int]) -> ImageDeleteResponse:
        return cls(
            person_id=person_id,
            deleted_image=image_id,
            views=counts.get("views", 0),
            embeddings=counts["embeddings"],
            files=counts["files"],
        )


class PersonsPage(Schema):
    """A page of persons; ask for the next one with ``offset=next_offset``."""

    persons: list[PersonOut]
    total: int = Field(description="persons matching the query, all pages together")
    limit: int
    offset: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last page")

    @classmethod
    def of(cls, persons: list[Person], total: int, limit: int, offset: int) -> PersonsPage:
        end = offset + len(persons)
        return cls(
            persons=[PersonOut.of(p) for p in persons],
            total=total,
            limit=limit,
            offset=offset,
            next_offset=end if end < total else None,
        )


class ChangesOut(Schema):
    """The persons changed since a change token: re-read their rows (``GET /v1/export`` with
    ``person_id``), drop the rows of those no longer there, and keep ``token`` for next time."""

    token: str = Field(description="ask again with since=this for what changes next")
    etag: str = Field(description="the gallery's ETag at this token (GET /v1/export's)")
    person_ids: list[int] = Field(description="persons added or changed after since, ascending")
    deleted: bool = Field(
        description="persons were deleted after since: drop those whose id is no longer in the persons table "
        "(GET /v1/export?table=persons&column=id); an erased person leaves no id behind"
    )
    complete: bool = Field(
        description="false: more than the limit changed and person_ids is empty; read the tables again instead"
    )

    @classmethod
    def of(cls, changes: Changes, etag: str) -> ChangesOut:
        return cls(
            token=changes.token,
            etag=etag,
            person_ids=list(changes.person_ids),
            deleted=changes.deleted,
            complete=changes.complete,
        )


class DuplicatePairOut(Schema):
    person_id: int
    name: str
    other_id: int
    other: str
    score: float = Field(description="the higher of: a photo of one identified as the other, and back")


class DuplicatesResponse(Schema):
    model: str
    match_mode: str
    threshold: float
    pairs: list[DuplicatePairOut] = Field(description="highest score first; twins are pairs too: review, then delete")

    @classmethod
    def of(cls, model: str, match_mode: str, threshold: float, pairs: list[DuplicatePair]) -> DuplicatesResponse:
        return cls(
            model=model,
            match_mode=match_mode,
            threshold=threshold,
            pairs=[DuplicatePairOut(**{k: v for k, v in asdict(p).items() if k != "threshold"}) for p in pairs],
        )


class DuplicatesAuditOut(DuplicatesResponse):
    job_id: int
    photos: int = Field(description="original photos searched")
    finished_at: str
    total_pairs: int = Field(description="all its pairs; `pairs` is the page asked for (`limit`, `offset`)")


class DuplicatesAuditResponse(Schema):
    """The search for faces enrolled twice run as a job, for any gallery size."""

    job: JobOut | None = Field(description="the newest such job, running, done or failed; null if none ran")
    result: DuplicatesAuditOut | None = Field(
        description="the pairs of the newest finished one (an older job than `job` while that one runs), as they "
        "stand now: a person deleted since is gone, a renamed one has their new name; null if none finished"
    )

    @classmethod
    def of(cls, job: JobOut | None, audit: DuplicateAudit | None) -> DuplicatesAuditResponse:
        if audit is None:
            return cls(job=job, result=None)
        search = audit.search
        shown = DuplicatesResponse.of(search.model, search.match_mode, search.threshold, list(audit.pairs))
        result = DuplicatesAuditOut(
            **shown.model_dump(),
            job_id=audit.job_id,
            photos=audit.photos,
            finished_at=audit.finished_at,
            total_pairs=audit.total_pairs,
        )
        return cls(job=job, result=result)

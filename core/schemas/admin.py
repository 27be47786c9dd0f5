"""HTTP shapes of model versions, batch jobs, the access log (serve/admin_api.py) and API keys
(serve/keys_api.py)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from core.schemas.results import Schema
from core.settings import EmbedderKind
from core.store.access_log import ACTIONS, AccessEntry
from core.store.jobs import JobRecord
from core.store.keys import ApiKeyRecord, Scope
from core.store.model_versions import ModelRecord


class CreateKeyRequest(Schema):
    """``POST /v1/keys``: as JSON or as a form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="who or what uses it (1-200 characters)")
    scope: Scope = Field(description="admin, enroll or identify")


class ModelOut(Schema):
    name: str
    dim: int
    status: Literal["building", "active", "retired"]
    num_embeddings: int
    thresholds: dict[str, float] = Field(description="identification threshold per matching rule; 'gate'")
    spec: dict[str, str] = Field(description="the settings that load it")
    created_at: str
    activated_at: str | None

    @classmethod
    def of(cls, m: ModelRecord) -> ModelOut:
        return cls(
            name=m.name,
            dim=m.dim,
            status=m.status,
            num_embeddings=m.num_embeddings,
            thresholds=m.thresholds,
            spec={k: str(v) for k, v in m.spec.items()},
            created_at=m.created_at,
            activated_at=m.activated_at,
        )


class ModelsResponse(Schema):
    active: str | None
    models: list[ModelOut]


class ReembedRequest(Schema):
    model_config = ConfigDict(frozen=True, extra="forbid")  # a misspelt field is a 422, not a default

    model: EmbedderKind = Field(
        description="the model to embed every stored image with: arcface (the default model), dlib (permissive), "
        "insightface (a pack folder)"
    )
    switch: bool = Field(True, description="make it the active model when every image has a vector")
    allow_missing: bool = Field(False, description="switch even if some persons get no vector")


class JobOut(Schema):
    id: int
    kind: str
    model: str
    state: Literal["running", "done", "failed"]
    total: int
    done: int
    skipped: int
    fraction: float = Field(
        description="(done + skipped) / total; 1 when there was nothing to do, 0 while the work is being counted"
    )
    images_per_s: float | None = Field(
        description="images per second so far: embedded (a re-embedding) or original photos searched (a search for "
        "faces enrolled twice); total, done and skipped count the same"
    )
    eta_s: float | None = Field(description="seconds left at the rate so far")
    message: str | None
    started_at: str
    updated_at: str
    finished_at: str | None

    @classmethod
    def of(cls, j: JobRecord) -> JobOut:
        seen = j.done + j.skipped
        elapsed = (datetime.fromisoformat(j.updated_at) - datetime.fromisoformat(j.started_at)).total_seconds()
        rate = seen / elapsed if seen and elapsed > 0 else None
        left = max(0, j.total - seen)
        return cls(
            id=j.id,
            kind=j.kind,
            model=j.model,
            state=j.state,
            total=j.total,
            done=j.done,
            skipped=j.skipped,
            # total 0: nothing to do once ended, not yet counted while running (a bar at 0, not full)
            fraction=(0.0 if j.state == "running" else 1.0) if j.total == 0 else min(1.0, seen / j.total),
            images_per_s=rate,
            eta_s=(0.0 if j.state != "running" else (left / rate if rate else None)),
            message=j.message,
            started_at=j.started_at,
            updated_at=j.updated_at,
            finished_at=j.finished_at,
        )


class AccessEntryOut(Schema):
    id: int
    at: str = Field(description="UTC, ISO 8601")
    key_id: int | None = Field(
        description="the stored key's id (`manyangles keys list`); null: the service's own key or a command"
    )
    key_name: str = Field(description="the key's name; `service key`, or `command line (USER)` for a command")
    action: str = Field(description="one of: " + ", ".join(ACTIONS))
    person_id: int | None = Field(description="the person it concerned; null: no one, or a person erased since")
    detail: str = Field(description="counts, a model, a table: never a name, an image or a vector")
    name: str | None = Field(description="the person's name now (joined when read; the log stores no name)")

    @classmethod
    def of(cls, e: AccessEntry) -> AccessEntryOut:
        return cls(**asdict(e))


class AccessLogResponse(Schema):
    entries: list[AccessEntryOut] = Field(description="newest first")
    total: int = Field(description="entries matching the filters, in all")
    next_offset: int | None = Field(description="the offset of the next page; null on the last")
    actions: list[str] = Field(description="every action the log records (the `action` filter's values)")


class ApiKeyOut(Schema):
    id: int
    name: str = Field(description="who or what uses it")
    scope: Scope
    prefix: str = Field(description="the key's first characters, to tell keys apart (the key itself is never stored)")
    created_at: str
    revoked_at: str | None = Field(description="null: the key works")

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKeyOut:
        return cls(**asdict(record))


class KeysResponse(Schema):
    keys: list[ApiKeyOut] = Field(description="every key made, revoked ones included, oldest first")


class CreatedKey(Schema):
    key: ApiKeyOut
    secret: str = Field(description="the key: shown this once, stored only as a hash")

"""Typed answers of GET /v1/health."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.schemas.results import Schema
from core.schemas.stats import ModelInfoOut
from core.settings import CompileMode


class GpuInfo(Schema):
    name: str
    memory_used_bytes: int
    memory_total_bytes: int


class EmbedderHealth(Schema):
    status: Literal["ok", "error"]
    error: str | None = None
    model: ModelInfoOut | None = None


class GeneratorHealth(Schema):
    status: Literal["ok", "error"]
    error: str | None = None
    generator: str | None = None
    device: str | None = None
    views: list[str] | None = Field(None, description="the view names this generator knows")
    custom_views: bool | None = Field(None, description="other names are accepted too (they become prompts)")
    default_views: list[str] | None = Field(None, description="what an enrollment that names no views makes")
    gpu: GpuInfo | None = None
    compile: CompileMode | None = Field(None, description="Stable Diffusion: torch.compile mode of the UNet")
    compiled: bool | None = None
    compile_cache_dir: str | None = None
    warmed_up: bool | None = Field(None, description="the start-up warm-up of the enrollment call shapes ran")
    warm_up_s: float | None = None
    warmed_batch: int | None = Field(
        None, description="compiled: the views per call the warm-up compiled for; every call runs at it"
    )
    decode_views: int | Literal["auto"] | None = Field(None, description="views per VAE decode")
    memory_budget_gb: float | None = Field(None, description="what a sized VAE decode may fill the GPU up to")
    memory_fallbacks: bool | None = Field(None, description="attention slicing / VAE tiling after an OOM")
    text_encoder: str | None = Field(
        None, description="where the CLIP text encoder sits: cpu once the prompts are cached"
    )


class Deployments(Schema):
    embedder: EmbedderHealth
    generator: GeneratorHealth


class KeyInfo(Schema):
    """The API key a request offered, when it is valid (what a console signs in with)."""

    name: str
    scope: Literal["admin", "enroll", "identify"]
    grants: list[str] = Field(description="what the key may do: admin, enroll, read (the gallery), identify")


class HealthResponse(Schema):
    status: Literal["ok", "degraded"]
    deployments: Deployments
    models: dict[str, str] = Field(description="embedder and generator names")
    notices: list[str] = Field(
        default_factory=list,
        description="what an operator should know: a better model than the gallery's is configured, and how to switch",
    )
    key: KeyInfo | None = Field(
        None, description="the API key sent with this request (X-API-Key or Bearer), when it is valid; null otherwise"
    )

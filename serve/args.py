"""Typed arguments of the Serve application (the ``args`` block of serve_config.yaml)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from core.settings import Settings


class AppArgs(BaseModel):
    """Every field is optional: unset fields come from MANYANGLES_* variables, then defaults."""

    model_config = ConfigDict(extra="forbid")

    data_dir: str | None = None
    detector: str | None = None
    embedder: str | None = None
    insightface_root: str | None = None
    insightface_pack: str | None = None
    onnx_providers: str | None = None
    sd_model: str | None = None
    sd_device: str | None = None
    sd_steps: int | None = None
    sd_strength: float | None = None
    sd_max_batch: int | None = None
    api_key: str | None = None
    max_upload_bytes: int | None = None
    max_image_pixels: int | None = None
    match_mode: str | None = None
    target_fpir: float | None = None
    top_k: int | None = None

    def to_settings(self) -> Settings:
        settings = Settings.load(**self.model_dump())
        # Replicas may run in another working directory: pin the data dir.
        return settings.replace(data_dir=Path(settings.data_dir).resolve())

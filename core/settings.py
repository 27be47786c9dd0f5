"""The one settings object of ManyAngles.

Values come, lowest priority first, from the defaults below, a YAML file (a flat mapping of field
names, or the ``args`` of the first application in a Ray Serve config such as serve_config.yaml),
and environment variables ``MANYANGLES_<FIELD>`` (e.g. ``MANYANGLES_DATA_DIR``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

ENV_PREFIX = "MANYANGLES_"

DetectorName = Literal["dlib", "insightface"]
EmbedderName = Literal["dlib", "insightface"]
MatchMode = Literal["max", "mean"]


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    detector: DetectorName = "dlib"
    embedder: EmbedderName = "dlib"
    # insightface model packs live in <insightface_root>/models/<insightface_pack>/*.onnx
    insightface_root: Path = field(default_factory=lambda: Path.home() / ".insightface")
    insightface_pack: str = "buffalo_l"
    # "auto": CUDA when it really loads, else CPU. Or a comma list such as "CPUExecutionProvider".
    onnx_providers: str = "auto"
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    # dlib HOG: photos whose long side is at most this are upsampled once (finds ~40 px faces).
    dlib_upsample_below: int = 1000
    # Synthetic views: Stable Diffusion when sd_model names a local folder (or a cached hub id),
    # the classic generator otherwise.
    sd_model: str = ""
    sd_device: str = "auto"
    sd_fp16: bool = True
    sd_strength: float = 0.45
    sd_steps: int = 20
    sd_guidance: float = 7.5
    sd_max_batch: int = 0  # 0: all views in one pipeline call
    # Identity gate: explicit cosine threshold, else the stored calibration at gate_fmr, else the
    # model's shipped default.
    gate_threshold: float | None = None
    gate_fmr: float = 0.001
    match_mode: MatchMode = "max"
    target_fpir: float = 0.01
    top_k: int = 5
    # HTTP API key for every route but health; generated into <data_dir>/api_key when empty.
    api_key: str = ""
    log_level: str = "INFO"

    @classmethod
    def load(
        cls,
        config_file: Path | None = None,
        env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        path = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in env else None)
        if path is not None:
            values.update(_read_yaml(path))
        known = {f.name for f in fields(cls)}
        for name in known:
            key = ENV_PREFIX + name.upper()
            if key in env:
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**{name: _coerce(cls, name, value) for name, value in values.items()})

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "gallery.db"

    @property
    def insightface_pack_dir(self) -> Path:
        return self.insightface_root / "models" / self.insightface_pack


def _read_yaml(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    apps = doc.get("applications")
    if isinstance(apps, list) and apps:
        return dict(apps[0].get("args") or {})
    return dict(doc)


def _coerce(cls: type[Settings], name: str, value: Any) -> Any:
    spec = next(f for f in fields(cls) if f.name == name)
    sample = getattr(cls(), name) if spec.default is dataclasses.MISSING else spec.default
    if sample is None:  # optional numbers: "" or "none" unset them
        if value is None or str(value).strip().lower() in ("", "none", "null"):
            return None
        return float(value)
    if isinstance(sample, Path):
        return Path(value).expanduser()
    if isinstance(sample, bool):
        return value if isinstance(value, bool) else str(value).lower() in {"1", "true", "yes", "on"}
    if isinstance(sample, int):
        return int(value)
    if isinstance(sample, float):
        return float(value)
    return str(value)

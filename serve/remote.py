"""Adapters that let the core service run on Ray Serve handles instead of local models."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.augment.base import GenerationResult
from core.augment.views import ViewRequest
from core.errors import ManyAnglesError
from core.faces.types import Face
from core.recognition import EmbeddedFace, FaceEngineBase

CALL_TIMEOUT_S = 600.0


class ServiceBusy(ManyAnglesError):
    """A deployment's queue is full: the client should retry later."""

    code = "busy"
    http_status = 503
    exit_code = 9

    def __init__(self, message: str, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def wait(response: Any, what: str) -> Any:
    """``response.result()`` with our typed errors restored and back-pressure made a 503."""
    from ray.exceptions import RayTaskError
    from ray.serve.exceptions import BackPressureError

    try:
        return response.result(timeout_s=CALL_TIMEOUT_S)
    except BackPressureError:
        raise ServiceBusy(f"the {what} is busy; retry in a few seconds") from None
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ManyAnglesError):
            raise cause from None
        raise


@dataclass(frozen=True)
class RemoteModelInfo:
    """What the service needs to know about the remote embedder (no align/embed here)."""

    name: str
    dim: int
    provider: str
    default_threshold: float | None
    default_gate_threshold: float | None


@dataclass(frozen=True)
class RemoteDetectorInfo:
    name: str


class RemoteFaceEngine(FaceEngineBase):
    """Model facts are fetched on first use: a replica's constructor runs on its event loop,
    where blocking on a handle is not allowed; routes run on threads, where it is."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @functools.cached_property
    def _info(self) -> dict[str, Any]:
        return wait(self._handle.info.remote(), "embedder")

    @property
    def embedder(self) -> RemoteModelInfo:  # type: ignore[override]
        return RemoteModelInfo(**self._info["model"])

    @property
    def detector(self) -> RemoteDetectorInfo:  # type: ignore[override]
        return RemoteDetectorInfo(self._info["detector"])

    def detect(self, rgb: np.ndarray) -> list[Face]:
        return wait(self._handle.detect.remote(rgb), "embedder")

    def embed_many(self, items: list[tuple[np.ndarray, Face]]) -> list[EmbeddedFace]:
        responses = [self._handle.embed_face.remote(rgb, face) for rgb, face in items]
        return [wait(r, "embedder") for r in responses]

    def embed_all(self, rgb: np.ndarray) -> list[EmbeddedFace]:
        return wait(self._handle.embed_all.remote(rgb), "embedder")


class RemoteAugmentor:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @functools.cached_property
    def _info(self) -> dict[str, Any]:
        return wait(self._handle.info.remote(), "generator")

    @property
    def name(self) -> str:
        return self._info["name"]

    @property
    def supported_views(self) -> tuple[str, ...] | None:
        return self._info["supported_views"]

    @property
    def default_views(self) -> tuple[str, ...]:
        return self._info["default_views"]

    def generate(self, rgb: np.ndarray, face: Face, requests: list[ViewRequest]) -> GenerationResult:
        return wait(self._handle.generate.remote(rgb, face, requests), "generator")

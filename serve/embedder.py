"""Embedder deployment: one call per photo (decode, detect, align, embed), photos batched
across requests, and the views of an enrollment gated in one call.

Replica resources and the batching knobs (``user_config``: ``max_batch_size``,
``batch_wait_timeout_s``) come from serve_config.yaml alone; ``reconfigure`` applies them and
they change without a restart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from ray import serve

from core.augment.base import GenerationResult
from core.augment.gate import ViewsOutcome, gate_views
from core.errors import InvalidSetting, ManyAnglesError
from core.faces.pipeline import AnalyzedPhoto, ModelInfo
from core.faces.recognition import FacePolicy
from core.settings import Settings
from serve.logs import route_core_logs
from serve.refusals import Refused, is_refusal

log = logging.getLogger("ray.serve")
T = TypeVar("T")
BATCHING_KEYS = {"max_batch_size", "batch_wait_timeout_s"}


@serve.deployment
class Embedder:
    def __init__(self, settings: Settings) -> None:
        import cv2

        from core.faces.active import ActiveModelFaces
        from core.store.gallery import GalleryStore

        route_core_logs(settings.log_level)
        # OpenCV's images here are small (a photo, its crops, 192 px views) and its pool's threads
        # stay busy a moment after each call: they would take the cores from the model's runs,
        # and they make the machine look busy to the ONNX sessions' pacing (onnx_runtime.py)
        cv2.setNumThreads(1)
        # follows the gallery's active-model pointer: after a switch the next batch loads the new
        # model (every replica on its own, no redeploy); requests wait for the load, none fails
        self.pipeline = ActiveModelFaces(settings, GalleryStore.from_settings(settings), in_service=True)
        self.batches: deque[tuple[float, int, str]] = deque(maxlen=10_000)  # (time, faces, kind)
        # The pipeline is used by one call at a time (it spreads each call over its worker
        # processes); this thread keeps the event loop free to gather the next batch meanwhile.
        self._calls = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pipeline")
        info = self.pipeline.info
        log.info("embedder ready: %s (%s, %d model process(es))", info.name, info.provider, info.workers)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """``max_batch_size`` and ``batch_wait_timeout_s`` from serve_config.yaml."""
        unknown = set(user_config) - BATCHING_KEYS
        missing = BATCHING_KEYS - set(user_config)
        if unknown or missing:
            raise InvalidSetting(
                f"Embedder user_config needs exactly {sorted(BATCHING_KEYS)}; "
                f"unknown: {sorted(unknown)}, missing: {sorted(missing)}"
            )
        self.analyze_batch.set_max_batch_size(int(user_config["max_batch_size"]))
        self.analyze_batch.set_batch_wait_timeout_s(float(user_config["batch_wait_timeout_s"]))
        self.batches.clear()

    def info(self) -> ModelInfo:
        return self.pipeline.info

    def batch_stats(self, recent: int = 500) -> dict[str, Any]:
        """Faces per embedding call over the recent calls, and the latest ``recent`` calls."""
        batches = list(self.batches)
        sizes = [faces for _, faces, _ in batches]
        return {
            "batches": len(sizes),
            "crops": int(sum(sizes)),
            "mean_batch_size": float(np.mean(sizes)) if sizes else 0.0,
            "max_batch_size": int(max(sizes)) if sizes else 0,
            "recent": [{"time": t, "faces": n, "kind": k} for t, n, k in batches[-recent:]] if recent else [],
        }

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._calls, functools.partial(fn, *args))

    async def analyze(self, photo: bytes, policy: FacePolicy | None = None) -> AnalyzedPhoto | Refused:
        """One photo: its faces (all, or the one ``policy`` selects) with their embeddings; a
        photo refused (no face, not an image, several faces) as ``Refused``, not raised (no
        traceback in the replica's log: serve/refusals.py)."""
        result = await self.analyze_batch((photo, policy))
        if isinstance(result, ManyAnglesError):
            if is_refusal(result):
                return Refused(result)
            raise result
        return result

    @serve.batch
    async def analyze_batch(
        self, items: list[tuple[bytes, FacePolicy | None]]
    ) -> list[AnalyzedPhoto | ManyAnglesError]:
        results = await self._run(self.pipeline.analyze_many, items)
        faces = sum(len(r.faces) for r in results if isinstance(r, AnalyzedPhoto))
        if faces:
            self.batches.append((time.time(), faces, "photos"))
        return results

    async def gate(
        self, generation: GenerationResult | Refused, reference: np.ndarray, threshold: float
    ) -> ViewsOutcome | Refused:
        """Every generated view detected, embedded and judged against ``reference``.

        ``generation`` is usually the Generator's response passed on unresolved, so the views
        go from the Generator straight here, never through the API; the Generator's refusal is
        passed on as it is.
        """
        if isinstance(generation, Refused):
            return generation
        try:
            outcome = await self._run(gate_views, self.pipeline, generation, reference, threshold)
        except ManyAnglesError as exc:
            if is_refusal(exc):
                return Refused(exc)
            raise
        self.batches.append((time.time(), sum(d.embedded is not None for d in outcome.decisions), "views"))
        return outcome

    def __del__(self) -> None:
        pipeline = getattr(self, "pipeline", None)
        if pipeline is not None:
            pipeline.close()

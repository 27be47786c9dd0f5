"""Embedder deployment: detection, alignment, and embedding batched across requests."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from ray import serve

from core.faces.types import Face
from core.recognition import EmbeddedFace
from core.settings import Settings

log = logging.getLogger("ray.serve")
T = TypeVar("T")


@serve.deployment(
    max_ongoing_requests=64,  # at least the batch size, or batches never fill
    ray_actor_options={"num_cpus": 1},
    user_config={"max_batch_size": 16, "batch_wait_timeout_s": 0.05},
)
class Embedder:
    def __init__(self, settings: Settings) -> None:
        from core.models import load_face_models
        from core.recognition import FaceEngine

        self.settings = settings
        self.engine = FaceEngine(load_face_models(settings))
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        # dlib and ONNX model objects are not thread-safe: every model call goes through this one
        # thread, which keeps the event loop free to gather the next batch meanwhile.
        self._models = ThreadPoolExecutor(max_workers=1, thread_name_prefix="models")
        log.info("embedder ready: %s (%s)", self.engine.model_name, self.engine.embedder.provider)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Batching knobs, changeable without a restart (serve_config.yaml user_config)."""
        for batched in (self.embed_batch, self.embed_photos):
            batched.set_max_batch_size(int(user_config.get("max_batch_size", 16)))
            batched.set_batch_wait_timeout_s(float(user_config.get("batch_wait_timeout_s", 0.01)))
        self.batch_sizes.clear()

    def info(self) -> dict[str, Any]:
        embedder = self.engine.embedder
        return {
            "model": {
                "name": embedder.name,
                "dim": embedder.dim,
                "provider": embedder.provider,
                "default_threshold": embedder.default_threshold,
                "default_gate_threshold": embedder.default_gate_threshold,
            },
            "detector": self.engine.detector.name,
        }

    def batch_stats(self) -> dict[str, float]:
        """Faces per embedding-model call, over the recent calls."""
        sizes = list(self.batch_sizes)
        return {
            "batches": len(sizes),
            "crops": int(sum(sizes)),
            "mean_batch_size": float(np.mean(sizes)) if sizes else 0.0,
            "max_batch_size": int(max(sizes)) if sizes else 0,
        }

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._models, functools.partial(fn, *args, **kwargs))

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def embed_batch(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        self.batch_sizes.append(len(crops))
        vectors = await self._run(self.engine.embedder.embed, crops)
        return list(vectors)

    async def detect(self, rgb: np.ndarray) -> list[Face]:
        return await self._run(self.engine.detect, rgb)

    async def embed_face(self, rgb: np.ndarray, face: Face) -> EmbeddedFace:
        crop = await self._run(self.engine.embedder.align, rgb, face)
        return EmbeddedFace(face, await self.embed_batch(crop))

    async def embed_all(self, rgb: np.ndarray) -> list[EmbeddedFace]:
        def detect_and_align() -> tuple[list[Face], list[np.ndarray]]:
            faces = self.engine.detect(rgb)
            return faces, [self.engine.embedder.align(rgb, f) for f in faces]

        faces, crops = await self._run(detect_and_align)
        vectors = await asyncio.gather(*(self.embed_batch(c) for c in crops))
        return [EmbeddedFace(f, v) for f, v in zip(faces, vectors)]

    async def embed_photo(self, data: bytes) -> list[EmbeddedFace]:
        """Bytes in (decoded here, so arrays never cross the network), every face out.

        Photos are batched whole: one batch decodes and detects its photos, then embeds all of
        their faces in one model call.
        """
        result = await self.embed_photos(data)
        if isinstance(result, Exception):
            raise result
        return result

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.01)
    async def embed_photos(self, datas: list[bytes]) -> list[list[EmbeddedFace] | Exception]:
        from core.errors import InvalidImage
        from core.images import decode_image

        def decode(data: bytes) -> Any:
            try:
                return decode_image(
                    data, max_bytes=self.settings.max_upload_bytes, max_pixels=self.settings.max_image_pixels
                )
            except InvalidImage as exc:  # one bad photo fails its own request, not the batch
                return exc

        images = await asyncio.gather(*(asyncio.to_thread(decode, d) for d in datas))

        def detect_align_embed() -> list[list[EmbeddedFace] | Exception]:
            found = [image if isinstance(image, Exception) else self.engine.detect(image.rgb) for image in images]
            crops = [
                self.engine.embedder.align(image.rgb, face)
                for image, faces in zip(images, found)
                if not isinstance(faces, Exception)
                for face in faces
            ]
            if crops:
                self.batch_sizes.append(len(crops))
            vectors = iter(self.engine.embedder.embed(crops)) if crops else iter(())
            return [
                faces if isinstance(faces, Exception) else [EmbeddedFace(f, next(vectors)) for f in faces]
                for faces in found
            ]

        return await self._run(detect_align_embed)

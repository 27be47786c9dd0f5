"""Generator deployment: Stable Diffusion on its GPU replica when weights are configured,
the classic generator otherwise. ``num_gpus`` comes from serve_config.yaml."""

from __future__ import annotations

import logging
import sys
from typing import Any

import numpy as np
from ray import serve

from core.augment.base import GenerationResult
from core.augment.views import ViewRequest
from core.faces.types import Face
from core.settings import Settings

log = logging.getLogger("ray.serve")


@serve.deployment(
    ray_actor_options={"num_gpus": 1},
    max_ongoing_requests=2,
    max_queued_requests=8,  # a full queue answers 503 + Retry-After instead of piling up
    health_check_period_s=10,
)
class Generator:
    def __init__(self, settings: Settings) -> None:
        from core.augment.factory import load_augmentor

        self.augmentor = load_augmentor(settings)
        if hasattr(self.augmentor, "warm_up"):
            self.augmentor.warm_up()
        log.info("generator ready: %s", self.augmentor.name)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.augmentor.name,
            "supported_views": self.augmentor.supported_views,
            "default_views": self.augmentor.default_views,
        }

    def generate(self, rgb: np.ndarray, face: Face, requests: list[ViewRequest]) -> GenerationResult:
        return self.augmentor.generate(rgb, face, requests)

    def check_health(self) -> None:
        if not getattr(self.augmentor, "healthy", True):
            raise RuntimeError("the generator hit an unrecoverable CUDA error")

    def health_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"generator": self.augmentor.name, "device": getattr(self.augmentor, "device", "cpu")}
        torch = sys.modules.get("torch")  # only when SD is loaded; never import it for this
        if torch is not None and torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            info["gpu"] = {
                "name": torch.cuda.get_device_name(),
                "memory_used_bytes": int(total - free),
                "memory_total_bytes": int(total),
            }
        return info

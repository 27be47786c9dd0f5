"""Generator deployment: Stable Diffusion on its GPU replica when weights are configured, the
classic generator otherwise. Resources (``num_gpus``) and queue limits come from
serve_config.yaml alone."""

from __future__ import annotations

import logging
import sys
from typing import Any

from ray import serve

from core.augment.base import GenerationResult
from core.augment.viewmaker import GeneratorInfo, generate_from_photo, generator_info
from core.augment.views import ViewRequest
from core.errors import ManyAnglesError
from core.faces.types import Face
from core.settings import Settings
from serve.logs import route_core_logs
from serve.refusals import Refused, is_refusal

log = logging.getLogger("ray.serve")


@serve.deployment
class Generator:
    def __init__(self, settings: Settings) -> None:
        from core.augment.factory import load_augmentor

        route_core_logs(settings.log_level)
        self.settings = settings
        self.augmentor = load_augmentor(settings)
        if hasattr(self.augmentor, "warm_up"):
            self.augmentor.warm_up()
        log.info("generator ready: %s", self.augmentor.name)

    def info(self) -> GeneratorInfo:
        return generator_info(self.augmentor)

    def generate(self, photo: bytes, face: Face, requests: list[ViewRequest]) -> GenerationResult | Refused:
        """Views of ``face`` in the uploaded photo (decoded here, under the upload caps); a view
        it cannot draw as ``Refused``, not raised (serve/refusals.py)."""
        try:
            return generate_from_photo(self.augmentor, self.settings, photo, face, requests)
        except ManyAnglesError as exc:
            if is_refusal(exc):
                return Refused(exc)
            raise

    def check_health(self) -> None:
        if not getattr(self.augmentor, "healthy", True):
            raise RuntimeError("the generator hit an unrecoverable CUDA error")

    def health_info(self) -> dict[str, Any]:
        views = generator_info(self.augmentor)
        info: dict[str, Any] = {
            "generator": views.name,
            "device": views.device,
            "views": list(views.known_views),
            "custom_views": views.supported_views is None,
            "default_views": list(views.default_views),
        }
        state = getattr(self.augmentor, "state", None)
        if state is not None:  # Stable Diffusion: compile mode, warm-up, decode chunking
            info.update(state())
        torch = sys.modules.get("torch")  # only when SD is loaded; never import it for this
        if torch is not None and torch.cuda.is_available():
            free, total = torch.cuda.mem_get_info()
            info["gpu"] = {
                "name": torch.cuda.get_device_name(),
                "memory_used_bytes": int(total - free),
                "memory_total_bytes": int(total),
            }
        return info

"""Views of a face, gated: generate (augmentor) -> detect and embed every view (pipeline).

The service asks a ``ViewMaker`` for gated views. ``LocalViews`` runs the augmentor in this
process (CLI); serve/remote.py's ``RemoteViews`` chains the Generator and Embedder deployments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from core.augment.base import Augmentor, GenerationResult
from core.augment.gate import ViewAnalyzer, ViewsOutcome, gate_views
from core.augment.views import DEFAULT_ORDER, ViewRequest
from core.faces.decode import decode_image
from core.faces.pipeline import ModelInfo
from core.faces.types import Face
from core.settings import Settings


@dataclass(frozen=True)
class GeneratorInfo:
    name: str
    supported_views: tuple[str, ...] | None  # None: any name (custom views become prompts)
    default_views: tuple[str, ...]
    device: str = "cpu"
    repeats_differ: bool = True  # False: a view asked for twice would be the same image twice

    @property
    def known_views(self) -> tuple[str, ...]:
        """The view names to offer: every supported one, or (custom names allowed) the named prompts."""
        return self.supported_views or tuple(dict.fromkeys((*self.default_views, *DEFAULT_ORDER)))


def default_views_for(info: GeneratorInfo, model: ModelInfo | None) -> tuple[str, ...]:
    """What an enrollment that names no views makes: for the classic generator, the views the
    cross-validated study chose for the embedding model (core/faces/embedders/shipped.py); else the
    generator's own default."""
    if info.name == "classic" and model is not None and model.shipped.views is not None:
        return model.shipped.views
    return info.default_views


class ViewMaker(Protocol):
    def generator_info(self) -> GeneratorInfo: ...

    def make_views(
        self, photo: bytes, face: Face, reference: np.ndarray, requests: list[ViewRequest], threshold: float
    ) -> ViewsOutcome: ...


def generator_info(augmentor: Augmentor) -> GeneratorInfo:
    return GeneratorInfo(
        augmentor.name,
        augmentor.supported_views,
        augmentor.default_views,
        str(getattr(augmentor, "device", "cpu")),
        augmentor.repeats_differ,
    )


def generate_from_photo(
    augmentor: Augmentor, settings: Settings, photo: bytes, face: Face, requests: list[ViewRequest]
) -> GenerationResult:
    """Decode the uploaded photo (under the upload caps) and generate the views of ``face``."""
    image = decode_image(photo, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels)
    return augmentor.generate(image.rgb, face, requests)


class LocalViews:
    """The augmentor in this process (loaded on first use), gated by ``pipeline``."""

    def __init__(self, settings: Settings, pipeline: ViewAnalyzer, augmentor: Augmentor | None = None) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self._augmentor = augmentor

    @property
    def augmentor(self) -> Augmentor:
        if self._augmentor is None:
            from core.augment.factory import load_augmentor

            self._augmentor = load_augmentor(self.settings)
        return self._augmentor

    def generator_info(self) -> GeneratorInfo:
        return generator_info(self.augmentor)

    def make_views(
        self, photo: bytes, face: Face, reference: np.ndarray, requests: list[ViewRequest], threshold: float
    ) -> ViewsOutcome:
        generation = generate_from_photo(self.augmentor, self.settings, photo, face, requests)
        return gate_views(self.pipeline, generation, reference, threshold)

"""ArcFace (insightface's ONNX wrapper) on 112x112 ``norm_crop`` crops: one network pass per
face, batches through the graph at once."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from core.faces.embedders.base import embed_with_tta
from core.faces.embedders.shipped import UNCALIBRATED, Shipped
from core.faces.types import Face


class ArcFaceEmbedder:
    tta = 1

    def __init__(
        self,
        model: Any,
        name: str,
        provider: str,
        shipped: Shipped = UNCALIBRATED,
        source: str = "",
        licence: str = "",
    ) -> None:
        self._model = model
        self.name = name
        self.dim = int(model.output_shape[-1])
        self.provider = provider
        self.crop_size = int(model.input_size[0])
        self.shipped = shipped
        self.source = source
        self.licence = licence

    def align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        from insightface.utils import face_align

        with warnings.catch_warnings():
            # insightface calls SimilarityTransform.estimate, deprecated in scikit-image 0.26.
            warnings.simplefilter("ignore", FutureWarning)
            return face_align.norm_crop(rgb, landmark=face.landmarks5, image_size=self.crop_size)

    def chips(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        # insightface's wrappers expect BGR (they swap to RGB inside blobFromImages).
        return [cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_RGB2BGR) for c in crops]

    def forward(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.get_feat(list(chips)), dtype=np.float32).reshape(-1, self.dim)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return embed_with_tta(self, crops)

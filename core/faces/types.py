"""Face records and the detector interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in the pixel coordinates of the upright RGB image it came from.

    ``landmarks5`` follow insightface's order: image-left eye, image-right eye, nose tip,
    image-left mouth corner, image-right mouth corner (the order of the ArcFace template).
    ``landmarks68`` are dlib's 68 points when the detector produced them.
    """

    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2
    score: float
    landmarks5: np.ndarray  # (5, 2) float32
    landmarks68: np.ndarray | None = None  # (68, 2) float32

    @property
    def width(self) -> float:
        return self.bbox[2] - self.bbox[0]

    @property
    def height(self) -> float:
        return self.bbox[3] - self.bbox[1]

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return ((self.bbox[0] + self.bbox[2]) / 2.0, (self.bbox[1] + self.bbox[3]) / 2.0)

    def as_dict(self) -> dict[str, object]:
        return {
            "bbox": [round(float(v), 1) for v in self.bbox],
            "score": round(float(self.score), 4),
            "landmarks5": [[round(float(x), 1), round(float(y), 1)] for x, y in self.landmarks5],
        }


@runtime_checkable
class FaceDetector(Protocol):
    """Finds every face in an upright RGB image, largest first.

    ``small_faces=False`` tells the detector that the image is mostly one face (a generated
    view), so it may skip the search for small faces when it finds one at native scale.
    """

    name: str
    source: str  # where the weights come from
    licence: str  # on what terms

    def detect(self, rgb: np.ndarray, small_faces: bool = True) -> list[Face]: ...


def sort_largest_first(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda f: f.area, reverse=True)

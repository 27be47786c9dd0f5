"""dlib HOG face detector with 68-point landmarks (the embedded default)."""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np

from core.faces.dlib_models import SHAPE_68, dlib_model_path
from core.faces.types import Face, sort_largest_first

log = logging.getLogger(__name__)

# HOG runs on a copy whose long side is at most this (landmarks use full resolution).
_DETECT_MAX_SIDE = 1600
# A photo with no face at upsample 0 is retried upsampled when its long side is at most this.
_RETRY_MAX_SIDE = 2000


def landmarks68_to_5(points: np.ndarray) -> np.ndarray:
    """dlib's 68 points -> insightface's 5 (eye centres, nose tip, mouth corners)."""
    return np.stack(
        [
            points[36:42].mean(axis=0),
            points[42:48].mean(axis=0),
            points[30],
            points[48],
            points[54],
        ]
    ).astype(np.float32)


class DlibHogDetector:
    """Finds faces with dlib's HOG detector and places 68 landmarks on each.

    Small photos are upsampled once so that faces down to ~40 px are found; a larger photo with no
    face at native scale is retried upsampled.
    """

    name = "dlib_hog"
    source = "PyPI: dlib-bin==20.0.1.post1 (HOG), face_recognition_models==0.3.0 (68-point landmarks)"
    licence = (
        "dlib Boost Software License; the 68-point landmark weights were trained on iBUG 300-W, "
        "whose terms exclude commercial use"
    )

    def __init__(self, upsample_below: int = 1000) -> None:
        import dlib

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(dlib_model_path(SHAPE_68)))
        self.upsample_below = upsample_below

    def detect(self, rgb: np.ndarray, small_faces: bool = True) -> list[Face]:
        """``small_faces=False`` for images that a face fills (generated views): HOG at native
        scale first (4x cheaper than upsampled), the full search only when it finds nothing."""
        height, width = rgb.shape[:2]
        long_side = max(height, width)
        scale = min(1.0, _DETECT_MAX_SIDE / long_side)
        small = (
            rgb
            if scale == 1.0
            else cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        )
        upsample = 1 if long_side * scale <= self.upsample_below else 0
        if not small_faces and upsample:
            rects, scores, _ = self._detector.run(small, 0, 0.0)
            if rects:
                return sort_largest_first([self._face(rgb, r, s, scale) for r, s in zip(rects, scores)])
        rects, scores, _ = self._detector.run(small, upsample, 0.0)
        if not rects and upsample == 0 and long_side * scale <= _RETRY_MAX_SIDE:
            rects, scores, _ = self._detector.run(small, 1, 0.0)
        faces = [self._face(rgb, rect, score, scale) for rect, score in zip(rects, scores)]
        return sort_largest_first(faces)

    def _face(self, rgb: np.ndarray, rect: Any, score: float, scale: float) -> Face:
        dlib = self._dlib
        x1, y1 = rect.left() / scale, rect.top() / scale
        x2, y2 = (rect.right() + 1) / scale, (rect.bottom() + 1) / scale
        full = dlib.rectangle(round(x1), round(y1), round(x2) - 1, round(y2) - 1)
        shape = self._predictor(rgb, full)
        pts = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
        return Face(
            bbox=(float(x1), float(y1), float(x2), float(y2)),
            score=float(score),
            landmarks5=landmarks68_to_5(pts),
            landmarks68=pts,
        )

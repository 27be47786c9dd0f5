"""SCRFD face detection with 5 keypoints (insightface's wrapper), sized to the photo.

The detector's input is the photo scaled so that its long side is at most ``det_size`` and a
face of ``min_face_px`` (photo pixels) is at least ``SCRFD_SMALLEST`` input pixels, rounded up
to SCRFD's stride of 32 on each side, not a fixed 640x640 square: a 250 px photo is searched at
256x256 (about a sixth of the work of 640x640) and a 16:9 photo is not padded into a square.
Faces smaller than ``min_face_px`` are dropped: an ArcFace crop of 112 px drawn from fewer
pixels than that is noise, and a search by it names strangers. A generated view (``small_faces``
False: a face filling about half the image) is searched at no more than ``VIEW_INPUT`` on the long
side: its face is still ~100 input pixels wide, and the view costs ~2.9 ms instead of ~4.9 (on
../shared/faces the views' similarity to their original moves by 0.001 on average).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from core.faces.types import Face, sort_largest_first

# Input pixels of the smallest face SCRFD finds reliably (its stride-8 anchors are 16 px).
SCRFD_SMALLEST = 16
_STRIDE = 32  # SCRFD's coarsest feature stride: every input side is a multiple of it
VIEW_INPUT = 192  # the long side a generated view is searched at


def detector_input(height: int, width: int, det_size: int, min_face_px: int) -> tuple[int, int]:
    """The (width, height) SCRFD runs a photo of this size at."""
    long_side = max(height, width)
    scale = min(det_size / long_side, max(1.0, SCRFD_SMALLEST / max(min_face_px, 1)))
    return (
        max(_STRIDE, _STRIDE * math.ceil(width * scale / _STRIDE)),
        max(_STRIDE, _STRIDE * math.ceil(height * scale / _STRIDE)),
    )


class ScrfdDetector:
    """Every face SCRFD finds at or over ``min_face_px``, largest first, with its 5 keypoints
    (already in ArcFace's order)."""

    def __init__(
        self, model: Any, name: str, det_size: int = 640, min_face_px: int = 20, source: str = "", licence: str = ""
    ) -> None:
        self._model = model
        self.name = name
        self.det_size = det_size
        self.min_face_px = min_face_px
        self.source = source
        self.licence = licence

    def detect(self, rgb: np.ndarray, small_faces: bool = True) -> list[Face]:
        """``small_faces`` False: the image is mostly one face (a view), searched at ``VIEW_INPUT``."""
        height, width = rgb.shape[:2]
        det_size = self.det_size if small_faces else min(self.det_size, VIEW_INPUT)
        size = detector_input(height, width, det_size, self.min_face_px)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        boxes, kpss = self._model.detect(bgr, input_size=size, max_num=0)
        faces = []
        for i, row in enumerate(boxes):
            if kpss is None:
                continue
            x1, y1, x2, y2 = (float(v) for v in row[:4])
            if min(x2 - x1, y2 - y1) < self.min_face_px:
                continue
            faces.append(
                Face(
                    bbox=(x1, y1, x2, y2),
                    score=float(row[4]),
                    landmarks5=np.asarray(kpss[i], dtype=np.float32).reshape(5, 2),
                )
            )
        return sort_largest_first(faces)

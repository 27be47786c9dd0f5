"""Classic views: deterministic geometry and photometry from the detected landmarks.

Pose views rotate insightface's 3D mean face (68 points, dlib order), fitted to the detected
landmarks with an affine camera, and warp the face region piecewise-affinely from the detected to
the rotated-and-projected landmarks. The crop's border is pinned, so only the face moves.
Expression and lighting views are simple, honest approximations (mouth-corner warp, gamma, blur).
No learned model is involved: the generator name ``classic`` keeps these apart from SD views.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from core.augment.base import GeneratedView, GenerationResult, GenerationStats, crop_square, face_region_box
from core.augment.views import ViewRequest
from core.errors import InvalidInput
from core.faces.dlib_models import SHAPE_68, dlib_model_path
from core.faces.types import Face

CLASSIC_VIEWS = ("left", "right", "up", "down", "smiling", "bright", "dark", "blur", "lowres", "mirror")
# Every view: the cross-validated study on ../shared/faces chose all ten with the top2 rule
# (fewest folds worse than original-only; BENCHMARKS.md, "Matching rules and views").
CLASSIC_DEFAULT_VIEWS = CLASSIC_VIEWS
# (pitch, yaw) in degrees; "left" turns the face toward the left of the image, "up" raises the chin.
_MAP_STRIDE = 4  # the warp's map is computed every 4th pixel and interpolated
_POSE_DEGREES = {"left": (0.0, -18.0), "right": (0.0, 18.0), "up": (12.0, 0.0), "down": (-12.0, 0.0)}


def _mean_face() -> np.ndarray:
    import insightface

    path = os.path.join(os.path.dirname(insightface.__file__), "data", "objects", "meanshape_68.pkl")
    with open(path, "rb") as handle:
        return np.asarray(pickle.load(handle), dtype=np.float64)  # (68, 3): x right, y down, z out


def _rotation(pitch_deg: float, yaw_deg: float) -> np.ndarray:
    p, y = np.radians(pitch_deg), np.radians(yaw_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    return ry @ rx


class ClassicAugmentor:
    name = "classic"
    supported_views: tuple[str, ...] | None = CLASSIC_VIEWS
    default_views: tuple[str, ...] = CLASSIC_DEFAULT_VIEWS
    repeats_differ = False  # a view is a fixed warp of the photo: the seed changes nothing

    def __init__(self, size: int = 320, expand: float = 1.9) -> None:
        self.size = size
        self.expand = expand
        self._mean_face = _mean_face()
        self._shape68: Any = None  # dlib's 68-point predictor, loaded for the first face without 68 points
        self._ops: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
            "smiling": self._smile,
            "bright": lambda img, _: self._gamma(img, 0.7),
            "dark": lambda img, _: self._gamma(img, 1.5),
            "blur": lambda img, _: cv2.GaussianBlur(img, (0, 0), sigmaX=1.6),
            "lowres": lambda img, _: cv2.resize(
                cv2.resize(img, (self.size // 4, self.size // 4), interpolation=cv2.INTER_AREA),
                (self.size, self.size),
                interpolation=cv2.INTER_LINEAR,
            ),
            "mirror": lambda img, _: np.ascontiguousarray(img[:, ::-1]),
        }

    def generate(self, rgb: np.ndarray, face: Face, requests: list[ViewRequest]) -> GenerationResult:
        started = time.perf_counter()
        x, y, side = face_region_box(face, self.expand, rgb.shape)
        scale = self.size / side
        region = cv2.resize(crop_square(rgb, x, y, side), (self.size, self.size), interpolation=cv2.INTER_AREA)
        points = (self._landmarks68(rgb, face).astype(np.float64) - [x, y]) * scale
        views = []
        for request in requests:
            view_started = time.perf_counter()
            if request.name in _POSE_DEGREES:
                out = self._pose(region, points, *_POSE_DEGREES[request.name])
            elif request.name in self._ops:
                out = self._ops[request.name](region, points)
            else:
                raise InvalidInput(f"the classic generator cannot draw view {request.name!r}")
            views.append(
                GeneratedView(
                    request,
                    np.ascontiguousarray(out, dtype=np.uint8),
                    time.perf_counter() - view_started,
                    self.name,
                    "cpu",
                )
            )
        stats = GenerationStats(self.name, "cpu", "uint8", time.perf_counter() - started, batches=[len(requests)])
        return GenerationResult(views, stats)

    def _landmarks68(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The face's 68 points: the detector's (dlib), or dlib's 68-point predictor run on the box
        of a detector that gives 5 keypoints (SCRFD). The 3D mean face fitted to the 5 keypoints
        instead tears the turned views (an eye split at the seam) and leaves them further from
        the person (BENCHMARKS.md, "Classic pose views from SCRFD's 5 keypoints")."""
        if face.landmarks68 is not None:
            return face.landmarks68
        import dlib

        if self._shape68 is None:
            self._shape68 = dlib.shape_predictor(str(dlib_model_path(SHAPE_68)))
        x1, y1, x2, y2 = face.bbox
        shape = self._shape68(rgb, dlib.rectangle(round(x1), round(y1), round(x2) - 1, round(y2) - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    # --- geometry ---------------------------------------------------------------------------
    def _warp(self, img: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Piecewise-affine warp moving ``src`` points to ``dst``; the crop border stays pinned.

        Delaunay triangles over the target points; each triangle's pixels are sampled from its
        source triangle through one affine map. The map is continuous, so it is computed on a
        grid of every ``_MAP_STRIDE``-th pixel and interpolated (16x fewer point-in-triangle
        searches; under a tenth of a pixel off near triangle edges), then one cv2.remap.
        """
        from scipy.spatial import Delaunay

        n = self.size - 1
        border = np.array([[0, 0], [n / 2, 0], [n, 0], [n, n / 2], [n, n], [n / 2, n], [0, n], [0, n / 2]])
        source = np.vstack([src, border]).astype(np.float64)
        target = np.vstack([dst, border]).astype(np.float64)
        triangulation = Delaunay(target)
        coarse = np.arange(0, self.size + _MAP_STRIDE - 1, _MAP_STRIDE, dtype=np.float64)
        coarse[-1] = min(coarse[-1], n)
        ys, xs = np.meshgrid(coarse, coarse, indexing="ij")
        pixels = np.stack([xs.ravel(), ys.ravel()], axis=1)
        simplex = triangulation.find_simplex(pixels)
        inside = simplex >= 0
        map_xy = pixels.copy()
        # Barycentric coordinates in the target triangle -> the same point in the source triangle.
        transform = triangulation.transform[simplex[inside]]
        bary2 = np.einsum("ijk,ik->ij", transform[:, :2], pixels[inside] - transform[:, 2])
        bary = np.hstack([bary2, 1.0 - bary2.sum(axis=1, keepdims=True)])
        corners = source[triangulation.simplices[simplex[inside]]]  # (m, 3, 2)
        map_xy[inside] = np.einsum("ij,ijk->ik", bary, corners)
        grid = map_xy.reshape(len(coarse), len(coarse), 2).astype(np.float32)
        full = _upsample_map(grid, _grid_coordinates(coarse, self.size))
        return cv2.remap(
            img, full[..., 0], full[..., 1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )

    def _pose(self, img: np.ndarray, points: np.ndarray, pitch: float, yaw: float) -> np.ndarray:
        model = self._mean_face
        centred = model - model.mean(axis=0)
        # Affine camera: points ~ centred @ A.T + t (least squares).
        design = np.hstack([centred, np.ones((68, 1))])
        solution, *_ = np.linalg.lstsq(design, points, rcond=None)
        a = solution[:3].T  # the translation (solution[3]) cancels in the displacement below
        scale = (np.linalg.norm(a[0]) + np.linalg.norm(a[1])) / 2
        r1 = a[0] / np.linalg.norm(a[0])
        r2 = a[1] - r1 * (r1 @ a[1])
        r2 /= np.linalg.norm(r2)
        head = np.vstack([r1, r2, np.cross(r1, r2)])  # model -> camera rotation
        camera = centred @ head.T * scale
        turned = camera @ _rotation(pitch, yaw).T
        # Keep the detected non-rigid shape: move each point by the projected displacement.
        target = points + (turned[:, :2] - camera[:, :2])
        return self._warp(img, points, target)

    def _smile(self, img: np.ndarray, points: np.ndarray) -> np.ndarray:
        target = points.copy()
        mouth_width = np.linalg.norm(points[54] - points[48])
        lift = 0.12 * mouth_width
        for index, direction in ((48, -1.0), (54, 1.0)):
            target[index] += [direction * 0.08 * mouth_width, -lift]
        for index in (49, 59, 60):
            target[index] += [-0.03 * mouth_width, -lift * 0.5]
        for index in (53, 55, 64):
            target[index] += [0.03 * mouth_width, -lift * 0.5]
        return self._warp(img, points, target)

    @staticmethod
    def _gamma(img: np.ndarray, gamma: float) -> np.ndarray:
        table = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma, 0, 255).astype(np.uint8)
        return cv2.LUT(img, table)


def _grid_coordinates(coarse: np.ndarray, size: int) -> np.ndarray:
    """Each pixel's position in the coarse grid's index space (the grid sampled at ``coarse``)."""
    pixels = np.arange(size, dtype=np.float64)
    index = np.clip(np.searchsorted(coarse, pixels, side="right") - 1, 0, len(coarse) - 2)
    return (index + (pixels - coarse[index]) / (coarse[index + 1] - coarse[index])).astype(np.float32)


def _upsample_map(grid: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of a (k, k, 2) map to every pixel: one cv2.remap of the grid at each
    pixel's grid coordinates (OpenCV interpolates at 1/32 of a grid cell: within 0.07 px here;
    ~0.2 ms at 320 px, a tenth of interpolating elementwise in numpy)."""
    xs = np.broadcast_to(coordinates[None, :], (len(coordinates), len(coordinates)))
    ys = np.broadcast_to(coordinates[:, None], (len(coordinates), len(coordinates)))
    return cv2.remap(grid, np.ascontiguousarray(xs), np.ascontiguousarray(ys), interpolation=cv2.INTER_LINEAR)

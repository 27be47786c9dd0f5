"""dlib's 128-D ResNet (face_recognition_models), the embedded default.

Alignment is dlib's own: its 5-point shape predictor on the detected box and ``get_face_chip``
(150 px, padding 0.25), the crops the network was trained on. The network is dlib's, weights
and all, computed by ONNX Runtime (core/faces/embedders/dlib_onnx.py): the same descriptors as dlib's
``compute_face_descriptor`` to float rounding, ~14x faster on one core. Each face is embedded
twice, as is and mirrored, and the two descriptors are summed and L2-normalised. On ../shared/faces the
normalisation and the mirror together cut FNIR at FPIR=1% from 23.5% (plain dlib, L2 distance)
to about 17% (see BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.faces.dlib_models import RESNET, SHAPE_5, dlib_model_path
from core.faces.embedders.base import embed_with_tta
from core.faces.embedders.dlib_onnx import DlibResnetSession
from core.faces.embedders.onnx_runtime import choose_providers
from core.faces.embedders.shipped import PHOTOS, SHIPPED_FPIR, Shipped
from core.faces.types import Face

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# Cosine thresholds at FPIR = 1% per matching rule, from `manyangles calibrate ../shared/faces`
# (132 identities, 620 photos, 488 impostor searches against a gallery where half the persons
# have the 10 classic views; see BENCHMARKS.md). A store's own calibration overrides them.
DLIB_DEFAULT_THRESHOLDS: dict[str, float] = {"max": 0.9372, "mean": 0.9372, "blend": 0.9382, "top2": 0.9372}
# Views offsets per matching rule (core/search/rules.py), from the same calibration: how far
# the top 0.1% of impostor scores rises when the same persons are enrolled with the 10 views.
DLIB_DEFAULT_VIEWS_OFFSETS: dict[str, float] = {"max": 0.0074, "mean": 0.0044, "blend": 0.0023, "top2": 0.0052}
# Per-person false match rates at those thresholds, from the same calibration: the share of the
# 63,797 impostor (search, person) pairs at or over each (5-8 pairs: half to twice), which sets how FPIR
# grows with the gallery (core/search/fpir.py): FPIR 1% holds up to ~80-130 persons.
DLIB_DEFAULT_PERSON_FMRS: dict[str, float] = {"max": 1.10e-4, "mean": 1.25e-4, "blend": 7.8e-5, "top2": 1.25e-4}
DLIB_FMR_PAIRS = 63_797  # they are 7, 8, 5 and 8 of these: each rate's 95% interval spans about half to twice it
# Identity gate: the cosine similarity reached by 0.1% of the 190k impostor pairs of the same set.
DLIB_GATE_THRESHOLD = 0.9261
# One to one at FMR 0.1% (verify): a photo against a person, per matching rule, read off the same
# 63,797 impostor (claim, person) pairs of the calibration (views offset applied; 63 pairs over
# each); between two photos, the gate's threshold (0.1% of the 190k photo pairs).
DLIB_DEFAULT_VERIFY_THRESHOLDS: dict[str, float] = {
    "max": 0.9261,
    "mean": 0.9261,
    "blend": 0.9264,
    "top2": 0.9263,
    PHOTOS: DLIB_GATE_THRESHOLD,
}


# FPIR 10%, from `manyangles calibrate ../shared/faces --target-fpir 0.1` (2026-12-07; the same
# gallery mix; rounded up in the 4th decimal): 118-121 of the 63,797 impostor pairs reach each.
DLIB_THRESHOLDS_10: dict[str, float] = {"max": 0.9226, "mean": 0.9225, "blend": 0.9225, "top2": 0.9226}
DLIB_PERSON_FMRS_10: dict[str, float] = {"max": 1.90e-3, "mean": 1.88e-3, "blend": 1.85e-3, "top2": 1.90e-3}
DLIB_SHIPPED = Shipped(
    identify={SHIPPED_FPIR: DLIB_DEFAULT_THRESHOLDS, 0.1: DLIB_THRESHOLDS_10},
    person_fmrs={SHIPPED_FPIR: DLIB_DEFAULT_PERSON_FMRS, 0.1: DLIB_PERSON_FMRS_10},
    fmr_pairs=DLIB_FMR_PAIRS,
    views_offsets=DLIB_DEFAULT_VIEWS_OFFSETS,
    gate=DLIB_GATE_THRESHOLD,
    verify=DLIB_DEFAULT_VERIFY_THRESHOLDS,
    # the views study's choice for dlib (BENCHMARKS.md): top2 with all 10 classic views, which are
    # the classic generator's own default (views None)
    match_mode="top2",
    dataset="../shared/faces (132 identities, 620 photos)",
)
DLIB_SOURCE = "PyPI: dlib-bin==20.0.1.post1 (engine), face_recognition_models==0.3.0 (weights)"
DLIB_LICENCE = (
    "permissive: dlib Boost Software License, face_recognition_models MIT; the ResNet and 5-point "
    "weights public domain (CC0)"
)


class DlibEmbedder:
    name = "dlib-resnet-v1-flip"
    dim = 128
    shipped = DLIB_SHIPPED
    source = DLIB_SOURCE
    licence = DLIB_LICENCE
    tta = 2  # the face and its mirror image

    def __init__(self, providers: str = "auto", threads: int = 1) -> None:
        """``providers``: the ONNX Runtime setting (core/faces/embedders/onnx_runtime.py); ``threads``
        per copy (the service runs one copy per core)."""
        import dlib

        self._dlib = dlib
        self._shape5 = dlib.shape_predictor(str(dlib_model_path(SHAPE_5)))
        self._net = DlibResnetSession(dlib_model_path(RESNET), choose_providers(providers), threads)
        self.provider: str = self._net.provider

    def align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        x1, y1, x2, y2 = face.bbox
        rect = self._dlib.rectangle(round(x1), round(y1), round(x2) - 1, round(y2) - 1)
        shape = self._shape5(rgb, rect)
        return np.asarray(
            self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING),
            dtype=np.uint8,
        )

    def chips(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        chips: list[np.ndarray] = []
        for crop in crops:
            if crop.shape != (CHIP_SIZE, CHIP_SIZE, 3):
                raise ValueError(f"dlib crops must be {CHIP_SIZE}x{CHIP_SIZE}x3, got {crop.shape}")
            chips.append(np.ascontiguousarray(crop))
            chips.append(np.ascontiguousarray(crop[:, ::-1]))
        return chips

    def forward(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._net(np.stack(chips))

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return embed_with_tta(self, crops)

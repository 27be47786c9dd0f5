"""insightface model packs (e.g. ``buffalo_l``): SCRFD detection and ArcFace embedding.

A pack is a folder of ``*.onnx`` files, ``<root>/models/<pack>/``. Each file is routed through
insightface's model_zoo, which picks its wrapper by graph shape (>= 5 outputs: SCRFD; square
input >= 112 px: ArcFace). Nothing is ever downloaded: a missing or broken pack is a
:class:`core.errors.ModelUnavailable` that names the folder looked in.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.embedders.base import embed_with_tta
from core.embedders.onnx_runtime import choose_providers
from core.errors import ModelUnavailable
from core.faces.types import Face, sort_largest_first

log = logging.getLogger(__name__)

_INSTALL_HINT = (
    "download buffalo_l.zip from the insightface releases on a machine with internet access and "
    "unzip it so that the .onnx files lie directly in {folder} (or point MANYANGLES_INSIGHTFACE_ROOT "
    "at the folder that holds models/<pack>/)"
)


class InsightFacePack:
    """Loads the detection and recognition models of one pack folder, once."""

    def __init__(self, folder: Path, providers: str = "auto", det_size: int = 640) -> None:
        from insightface.model_zoo import model_zoo

        self.folder = Path(folder)
        self.pack_name = self.folder.name
        hint = _INSTALL_HINT.format(folder=self.folder)
        if not self.folder.is_dir():
            raise ModelUnavailable(f"insightface model pack not found: {self.folder} does not exist; {hint}")
        files = sorted(self.folder.glob("*.onnx"))
        if not files:
            raise ModelUnavailable(f"insightface model pack {self.folder} holds no .onnx file; {hint}")
        chosen = choose_providers(providers)
        self.detector_model: Any = None
        self.recognizer_model: Any = None
        for path in files:
            try:
                model = model_zoo.get_model(str(path), providers=chosen)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises several unrelated types
                raise ModelUnavailable(
                    f"insightface model file {path} could not be loaded ({type(exc).__name__}: {exc}); "
                    f"the pack looks broken: {hint}"
                ) from None
            task = getattr(model, "taskname", None)
            if task == "detection" and self.detector_model is None:
                self.detector_model = model
            elif task == "recognition" and self.recognizer_model is None:
                self.recognizer_model = model
        if self.detector_model is None or self.recognizer_model is None:
            missing = "detection (SCRFD)" if self.detector_model is None else "recognition (ArcFace)"
            raise ModelUnavailable(f"insightface model pack {self.folder} has no {missing} model; {hint}")
        self.detector_model.prepare(0, input_size=(det_size, det_size), det_thresh=0.5)
        self.recognizer_name = Path(self.recognizer_model.model_file).stem
        self.provider = self.recognizer_model.session.get_providers()[0]
        log.info(
            "insightface pack %s loaded: detector %s, recognizer %s, provider %s",
            self.pack_name,
            Path(self.detector_model.model_file).name,
            self.recognizer_name,
            self.provider,
        )


class InsightFaceDetector:
    """SCRFD with its 5 keypoints (already in ArcFace order)."""

    def __init__(self, pack: InsightFacePack) -> None:
        self._model = pack.detector_model
        self.name = f"insightface-{pack.pack_name}-{Path(self._model.model_file).stem}"

    def detect(self, rgb: np.ndarray, small_faces: bool = True) -> list[Face]:
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        boxes, kpss = self._model.detect(bgr, max_num=0)
        faces = []
        for i, row in enumerate(boxes):
            if kpss is None:
                continue
            faces.append(
                Face(
                    bbox=(float(row[0]), float(row[1]), float(row[2]), float(row[3])),
                    score=float(row[4]),
                    landmarks5=np.asarray(kpss[i], dtype=np.float32).reshape(5, 2),
                )
            )
        return sort_largest_first(faces)


class InsightFaceEmbedder:
    """ArcFace on 112x112 ``norm_crop`` crops; batches go through the ONNX graph at once."""

    default_thresholds: dict[str, float] = {}
    default_gate_threshold: float | None = None
    default_views_offsets: dict[str, float] = {}
    default_person_fmrs: dict[str, float] = {}
    default_fmr_pairs = 0
    default_verify_thresholds: dict[str, float] = {}
    tta = 1

    def __init__(self, pack: InsightFacePack) -> None:
        self._model = pack.recognizer_model
        self.name = f"insightface-{pack.pack_name}-{pack.recognizer_name}"
        self.dim = int(self._model.output_shape[-1])
        self.provider = pack.provider
        self.crop_size = int(self._model.input_size[0])

    def align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        from insightface.utils import face_align

        with warnings.catch_warnings():
            # insightface calls SimilarityTransform.estimate, deprecated in scikit-image 0.26.
            warnings.simplefilter("ignore", FutureWarning)
            return face_align.norm_crop(rgb, landmark=face.landmarks5, image_size=self.crop_size)

    def chips(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        # insightface wrappers expect BGR (they swap to RGB inside blobFromImages).
        return [cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_RGB2BGR) for c in crops]

    def forward(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.get_feat(list(chips)), dtype=np.float32).reshape(-1, self.dim)

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return embed_with_tta(self, crops)

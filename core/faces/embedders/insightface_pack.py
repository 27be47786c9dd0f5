"""insightface model packs (e.g. ``buffalo_l``) from a folder: SCRFD detection and ArcFace embedding.

A pack is a folder of ``*.onnx`` files, ``<root>/models/<pack>/``. Each file is routed through
insightface's model_zoo, which picks its wrapper by graph shape (>= 5 outputs: SCRFD; square
input >= 112 px: ArcFace). Nothing is ever downloaded: a missing or broken pack is a
:class:`core.errors.ModelUnavailable` that names the folder looked in. Nothing is shipped
calibrated for a pack: ``manyangles calibrate`` once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.errors import ModelUnavailable
from core.faces.embedders.onnx_runtime import choose_providers

log = logging.getLogger(__name__)

_INSTALL_HINT = (
    "download buffalo_l.zip from the insightface releases on a machine with internet access and "
    "unzip it so that the .onnx files lie directly in {folder} (or point MANYANGLES_INSIGHTFACE_ROOT "
    "at the folder that holds models/<pack>/)"
)
PACK_LICENCE = "insightface model packs: non-commercial research use only (insightface's terms)"


class InsightFacePack:
    """Loads the detection and recognition models of one pack folder, once."""

    def __init__(self, folder: Path, providers: str = "auto") -> None:
        from insightface.model_zoo import model_zoo
        from insightface.model_zoo.scrfd import SCRFD

        self.folder = Path(folder)
        self.pack_name = self.folder.name
        self.source = f"local folder {self.folder}"
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
                # every input size on the one session (insightface's default opens another per
                # size met, ~9 MB each: core/faces/embedders/arcface_wheel.py)
                self.detector_model = SCRFD(
                    model_file=model.model_file, session=model.session, static_shape_sessions=False
                )
            elif task == "recognition" and self.recognizer_model is None:
                self.recognizer_model = model
        if self.detector_model is None or self.recognizer_model is None:
            missing = "detection (SCRFD)" if self.detector_model is None else "recognition (ArcFace)"
            raise ModelUnavailable(f"insightface model pack {self.folder} has no {missing} model; {hint}")
        self.detector_model.prepare(0, input_size=(640, 640), det_thresh=0.5)
        self.detector_name = f"insightface-{self.pack_name}-{Path(self.detector_model.model_file).stem}"
        self.recognizer_name = f"insightface-{self.pack_name}-{Path(self.recognizer_model.model_file).stem}"
        self.provider = self.recognizer_model.session.get_providers()[0]
        log.info(
            "insightface pack %s loaded: detector %s, recognizer %s, provider %s",
            self.pack_name,
            Path(self.detector_model.model_file).name,
            Path(self.recognizer_model.model_file).name,
            self.provider,
        )

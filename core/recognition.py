"""Detect -> align -> embed, and the face-selection policy of enrollment."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.embedders.base import Embedder
from core.errors import InvalidInput, MultipleFaces, NoFaceFound
from core.faces.types import Face, FaceDetector
from core.models import FaceModels

# "single": exactly one face or an error; "largest": the largest face; an int: that face,
# counted largest first (0 = largest).
FacePolicy = str | int


@dataclass(frozen=True, eq=False)
class EmbeddedFace:
    face: Face
    vector: np.ndarray  # (dim,) float32, unit norm


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
                f"the photo shows {len(faces)} faces; ask for the largest face or pick one by "
                "index (0 = largest)"
            )
        return faces[0]
    raise InvalidInput(f"unknown face policy {policy!r}: use 'single', 'largest' or an index")


class FaceEngineBase:
    """Detect -> align -> embed. Subclasses provide ``detect`` and ``embed_many`` (in process
    here; through Ray Serve handles in serve/), the policies are shared."""

    detector: FaceDetector
    embedder: Embedder

    @property
    def model_name(self) -> str:
        return self.embedder.name

    def detect(self, rgb: np.ndarray) -> list[Face]:
        raise NotImplementedError

    def embed_many(self, items: list[tuple[np.ndarray, Face]]) -> list[EmbeddedFace]:
        """One face of each image, embedded as one batch."""
        raise NotImplementedError

    def embed_faces(self, rgb: np.ndarray, faces: list[Face]) -> list[EmbeddedFace]:
        return self.embed_many([(rgb, face) for face in faces])

    def embed_all(self, rgb: np.ndarray) -> list[EmbeddedFace]:
        return self.embed_faces(rgb, self.detect(rgb))

    def embed_one(self, rgb: np.ndarray, policy: FacePolicy = "single") -> EmbeddedFace:
        face = select_face(self.detect(rgb), policy)
        return self.embed_faces(rgb, [face])[0]


class FaceEngine(FaceEngineBase):
    """The models in this process. Not thread-safe (dlib and ONNX model objects are not):
    callers that use threads serialize access, as serve/embedder.py does."""

    def __init__(self, models: FaceModels) -> None:
        self.detector = models.detector
        self.embedder = models.embedder

    def detect(self, rgb: np.ndarray) -> list[Face]:
        return self.detector.detect(rgb)

    def embed_many(self, items: list[tuple[np.ndarray, Face]]) -> list[EmbeddedFace]:
        if not items:
            return []
        vectors = self.embedder.embed([self.embedder.align(rgb, face) for rgb, face in items])
        return [EmbeddedFace(face=face, vector=v) for (_, face), v in zip(items, vectors)]

"""The embedder interface: aligned crops in, L2-normalised float32 vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from core.faces.types import Face


@runtime_checkable
class Embedder(Protocol):
    """A face recognition model.

    ``name`` identifies the whole embedding function (weights, alignment and test-time
    augmentation): vectors of different names are never compared.
    ``default_threshold`` is the cosine threshold shipped with the model (calibrated at 1% FPIR),
    or None when it has not been calibrated here; ``default_gate_threshold`` likewise for the
    identity gate of generated views (calibrated at FMR = 0.1%).
    """

    name: str
    dim: int
    provider: str
    default_threshold: float | None
    default_gate_threshold: float | None

    def align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The canonical crop this model expects, from an upright RGB image."""
        ...

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(n, dim) float32, each row of unit L2 norm."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)

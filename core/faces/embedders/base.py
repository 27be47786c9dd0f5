"""The embedder interface: aligned crops in, L2-normalised float32 vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from core.faces.embedders.shipped import Shipped
from core.faces.types import Face


@runtime_checkable
class Embedder(Protocol):
    """A face recognition model.

    ``name`` identifies the whole embedding function (weights, alignment and test-time
    augmentation): vectors of different names are never compared. ``shipped`` holds what the
    model ships calibrated with (core/faces/embedders/shipped.py: thresholds per matching rule and
    target, the gate, the views offsets, the rule and views the study chose); empty for a model
    not calibrated here. ``source`` and ``licence`` say where the weights come from and on what
    terms (shown by /v1/health and the console).
    """

    name: str
    dim: int
    provider: str
    shipped: Shipped
    source: str
    licence: str
    # forward passes per face (test-time augmentation): their outputs are summed, then normalised
    tta: int

    def align(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The canonical crop this model expects, from an upright RGB image."""
        ...

    def chips(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The network inputs of ``crops``: ``tta`` per crop, crop-major."""
        ...

    def forward(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """(len(chips), dim) float32 raw outputs; independent per chip, so chips can be split
        between model instances (worker processes) and the parts concatenated."""
        ...

    def embed(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(n, dim) float32, each row of unit L2 norm: ``pool_tta(forward(chips(crops)))``."""
        ...


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def embed_with_tta(model: Embedder, crops: Sequence[np.ndarray]) -> np.ndarray:
    """``model.embed``: the crops' chips through the network, each face's passes pooled."""
    if len(crops) == 0:
        return np.zeros((0, model.dim), dtype=np.float32)
    return pool_tta(model.forward(model.chips(crops)), model.tta)


def pool_tta(raw: np.ndarray, tta: int) -> np.ndarray:
    """Sum each face's ``tta`` consecutive raw outputs and L2-normalise: (n * tta, d) -> (n, d)."""
    raw = np.asarray(raw, dtype=np.float32)
    if raw.shape[0] == 0:
        return raw.reshape(0, raw.shape[1] if raw.ndim == 2 else 0)
    return l2_normalise(raw.reshape(-1, tta, raw.shape[1]).sum(axis=1))

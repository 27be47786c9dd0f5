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
    ``default_thresholds`` are the cosine thresholds shipped with the model per matching rule
    (calibrated at 1% FPIR), empty when it has not been calibrated here; ``default_gate_threshold`` likewise for the
    identity gate of generated views (calibrated at FMR = 0.1%), and ``default_views_offsets``
    for the score correction of persons with views (core/matching_rules.py); ``default_person_fmrs``
    the share of impostor pairs at or over each shipped threshold (core/gallery_fpir.py).
    """

    name: str
    dim: int
    provider: str
    default_thresholds: dict[str, float]  # matching rule -> cosine threshold at FPIR 1% ({}: none shipped)
    default_gate_threshold: float | None
    default_views_offsets: dict[str, float]  # matching rule -> score offset of persons with views ({}: 0)
    # matching rule -> per-person false match rate at the shipped threshold ({}: unmeasured)
    default_person_fmrs: dict[str, float]
    default_fmr_pairs: int  # the impostor pairs those rates were measured over (0: unknown)
    default_verify_thresholds: dict[str, float]  # one-to-one at FMR 0.1%: rule (or "photos": two photos) -> threshold
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

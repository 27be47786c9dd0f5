"""The augmentor interface and its records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from core.augment.views import ViewRequest
from core.faces.types import Face


@dataclass(frozen=True, eq=False)
class GeneratedView:
    request: ViewRequest
    rgb: np.ndarray  # (H, W, 3) uint8
    latency_s: float  # for a batched call: the call's time shared equally among its views
    generator: str
    device: str
    prompt: str | None = None  # what a prompted generator was asked for


@dataclass(frozen=True)
class Stage:
    """One stage of a generation call (prompt, vae_encode, denoise, vae_decode, to_uint8)."""

    name: str
    seconds: float
    peak_mem_bytes: int | None = None  # GPU memory peak within the stage (CUDA only)

    def as_record(self) -> dict[str, object]:
        return asdict(self)


def merge_stages(parts: list[list[Stage]]) -> list[Stage]:
    """Stages of several calls as one: seconds summed, the highest peak, first-seen order."""
    merged: dict[str, Stage] = {}
    for stages in parts:
        for s in stages:
            old = merged.get(s.name)
            if old is None:
                merged[s.name] = s
                continue
            peaks = [p for p in (old.peak_mem_bytes, s.peak_mem_bytes) if p is not None]
            merged[s.name] = Stage(s.name, old.seconds + s.seconds, max(peaks) if peaks else None)
    return list(merged.values())


@dataclass(frozen=True)
class GenerationStats:
    """One augmentor call, for the generation-runs table and the latency charts."""

    generator: str
    device: str
    dtype: str
    total_s: float
    steps: int | None = None
    strength: float | None = None
    guidance_scale: float | None = None
    peak_mem_bytes: int | None = None
    batches: list[int] = field(default_factory=list)  # views per pipeline call
    stages: list[Stage] = field(default_factory=list)  # summed over the calls


@dataclass(frozen=True, eq=False)
class GenerationResult:
    views: list[GeneratedView]
    stats: GenerationStats


@runtime_checkable
class Augmentor(Protocol):
    name: str
    # view names it can draw; None: any name (custom views become prompts)
    supported_views: tuple[str, ...] | None
    default_views: tuple[str, ...]
    # whether asking for a view twice gives two different images (another seed); False: the same one
    repeats_differ: bool

    def generate(self, rgb: np.ndarray, face: Face, requests: list[ViewRequest]) -> GenerationResult: ...


def face_region_box(face: Face, expand: float, image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A square (x, y, side) around the face, ``expand`` times its larger side."""
    cx, cy = face.center
    side = max(face.width, face.height) * expand
    side = int(round(max(side, 16)))
    return int(round(cx - side / 2)), int(round(cy - side / 2)), side


def crop_square(rgb: np.ndarray, x: int, y: int, side: int) -> np.ndarray:
    """The square crop, padded by edge reflection where it leaves the image."""
    import cv2

    h, w = rgb.shape[:2]
    pad_l, pad_t = max(0, -x), max(0, -y)
    pad_r, pad_b = max(0, x + side - w), max(0, y + side - h)
    if pad_l or pad_t or pad_r or pad_b:
        fits = max(pad_t, pad_b) < h and max(pad_l, pad_r) < w
        mode = cv2.BORDER_REFLECT_101 if fits else cv2.BORDER_REPLICATE
        rgb = cv2.copyMakeBorder(rgb, pad_t, pad_b, pad_l, pad_r, mode)
        x, y = x + pad_l, y + pad_t
    return np.ascontiguousarray(rgb[y : y + side, x : x + side])

"""The identity gate: a generated view enters the gallery only if it still looks like the person.

A view passes when exactly one face is detected in it and the cosine similarity of that face's
embedding to the original's is at least the gate threshold. A face under ``BYSTANDER_RATIO`` (core/faces/recognition.py) of
the largest one's size does not count: the view's region (the face box x1.9) often holds part of
a bystander, which SCRFD finds where dlib's HOG did not (on ../shared/faces such bystanders
rejected every view of 8 of 132 persons); a face that a generator drew twice is of a size. The dlib default (0.9261) is the
similarity that 0.1% of impostor pairs on ../shared/faces reach (FMR = 0.1%): a kept view is
closer to the person than 99.9% of strangers are.

``gate_views`` asks a face pipeline (core/faces/pipeline.py: worker processes) for the views'
faces and embeddings; this module holds the records, the decision rule and that one step.
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from core.augment.base import GeneratedView, GenerationResult, GenerationStats
from core.augment.views import ViewRequest
from core.faces.decode import encode_png
from core.faces.pipeline import ModelInfo
from core.faces.recognition import EmbeddedFace
from core.faces.types import Face
from core.store.records import GenerationRunRecord


@dataclass(frozen=True, eq=False)
class GateDecision:
    """One generated view, encoded as PNG, with the gate's verdict."""

    request: ViewRequest
    generator: str
    device: str
    prompt: str | None
    latency_s: float
    png: bytes  # the view, lossless
    width: int
    height: int
    accepted: bool
    reason: str  # "accepted", "no face", "3 faces", "similarity 0.81 < 0.93"
    similarity: float | None
    embedded: EmbeddedFace | None
    preview: bytes = b""  # a small JPEG of the view (``preview_jpeg``), made with the PNG

    def preview_jpeg(self) -> bytes:
        """A small JPEG of the view, for a preview grid (rejected views are never stored)."""
        if self.preview:
            return self.preview
        with Image.open(io.BytesIO(self.png)) as image:
            return preview_jpeg(np.asarray(image.convert("RGB")))

    def as_record(self) -> dict[str, object]:
        return {
            "view": self.request.name,
            "source": self.request.source,
            "generator": self.generator,
            "prompt": self.prompt,
            "seed": self.request.seed,
            "latency_s": round(self.latency_s, 4),
            "accepted": self.accepted,
            "reason": self.reason,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
        }


def preview_jpeg(rgb: np.ndarray, max_side: int = 256) -> bytes:
    """A view as a JPEG of at most ``max_side`` pixels, for a preview grid."""
    thumbnail = Image.fromarray(rgb)
    thumbnail.thumbnail((max_side, max_side))
    out = io.BytesIO()
    thumbnail.save(out, "JPEG", quality=85)
    return out.getvalue()


def encode_view(rgb: np.ndarray) -> tuple[bytes, bytes]:
    """A generated view as stored (lossless PNG) and as previewed (a small JPEG)."""
    return encode_png(rgb), preview_jpeg(rgb)


def decide(
    num_faces: int, vector: np.ndarray | None, reference: np.ndarray, threshold: float
) -> tuple[bool, str, float | None]:
    """(accepted, reason, similarity) for a view with ``num_faces`` faces and its embedding."""
    if num_faces != 1 or vector is None:
        return False, "no face" if num_faces == 0 else f"{num_faces} faces", None
    similarity = float(np.dot(vector, reference))
    if similarity >= threshold:
        return True, "accepted", similarity
    return False, f"similarity {similarity:.4f} < {threshold:.4f}", similarity


@dataclass(frozen=True, eq=False)
class ViewsOutcome:
    """Every view of one generation call with its gate decision."""

    stats: GenerationStats
    decisions: list[GateDecision]
    gate_threshold: float
    gate_s: float = 0.0  # detecting and embedding the views
    timings: dict[str, float] = field(default_factory=dict)
    model: str = ""  # the model that embedded the views

    @property
    def accepted(self) -> list[GateDecision]:
        return [d for d in self.decisions if d.accepted]

    def run_record(self) -> GenerationRunRecord:
        stats = self.stats
        return GenerationRunRecord(
            generator=stats.generator,
            device=stats.device,
            dtype=stats.dtype,
            num_views=len(self.decisions),
            num_accepted=len(self.accepted),
            total_s=stats.total_s,
            views=[d.as_record() for d in self.decisions],
            steps=stats.steps,
            strength=stats.strength,
            peak_mem_bytes=stats.peak_mem_bytes,
            stages=[stage.as_record() for stage in stats.stages],
        )


class ViewAnalyzer(Protocol):
    """Finds and embeds the faces of generated views (core/faces/pipeline.py, core/faces/active.py)."""

    def current(self) -> ViewAnalyzer:
        """The one model's pipeline a whole gate runs on (a switch meanwhile waits for the next)."""
        ...

    @property
    def info(self) -> ModelInfo: ...

    def view_faces(self, images: list[np.ndarray]) -> list[tuple[list[Face], np.ndarray | None]]: ...

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray: ...


def gate_views(
    analyzer: ViewAnalyzer, generation: GenerationResult, reference: np.ndarray, threshold: float
) -> ViewsOutcome:
    """Detect and embed every view, keep those that still look like ``reference``. The views'
    PNG encoding (zlib, which lets go of the GIL) runs on a thread of its own while the
    network embeds them: on 2 cores an enrollment's 5 views take ~25 ms less."""
    started = time.perf_counter()
    analyzer = analyzer.current()  # detection, embedding and the model's name from one model
    views = generation.views
    found = analyzer.view_faces([view.rgb for view in views])
    singles = [i for i, (_, crop) in enumerate(found) if crop is not None]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="png") as encoder:
        pngs = encoder.map(encode_view, [view.rgb for view in views])
        vectors = dict(zip(singles, analyzer.embed_crops([crop for _, crop in found if crop is not None])))
        encoded = list(pngs)
    decisions = []
    for i, (view, (faces, _), (png, preview)) in enumerate(zip(views, found, encoded)):
        vector = vectors.get(i)
        accepted, reason, similarity = decide(len(faces), vector, reference, threshold)
        embedded = EmbeddedFace(faces[0], vector) if vector is not None else None
        decisions.append(_decision(view, png, (accepted, reason, similarity), embedded, preview))
    return ViewsOutcome(
        generation.stats, decisions, threshold, gate_s=time.perf_counter() - started, model=analyzer.info.name
    )


def _decision(
    view: GeneratedView,
    png: bytes,
    verdict: tuple[bool, str, float | None],
    embedded: EmbeddedFace | None,
    preview: bytes = b"",
) -> GateDecision:
    accepted, reason, similarity = verdict
    return GateDecision(
        request=view.request,
        generator=view.generator,
        device=view.device,
        prompt=view.prompt,
        latency_s=view.latency_s,
        png=png,
        width=int(view.rgb.shape[1]),
        height=int(view.rgb.shape[0]),
        accepted=accepted,
        reason=reason,
        similarity=similarity,
        embedded=embedded,
        preview=preview,
    )

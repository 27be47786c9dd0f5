"""Building one enrollment: the original face, generated views through the identity gate, and
the records the store writes in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.augment.base import Augmentor, GenerationResult
from core.augment.gate import GateDecision, gate_views
from core.augment.views import ViewRequest
from core.images import DecodedImage, encode_png
from core.recognition import EmbeddedFace, FaceEngineBase
from core.store.records import Enrollment, GenerationRunRecord, NewEmbedding, NewImage


@dataclass(frozen=True)
class ProgressEvent:
    """One step of an enrollment, for streaming to clients."""

    stage: str  # decoded, detected, generating, generated, accepted, rejected, embedded, stored
    message: str
    data: dict[str, object] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True, eq=False)
class ViewsOutcome:
    result: GenerationResult
    decisions: list[GateDecision]
    gate_threshold: float

    @property
    def accepted(self) -> list[GateDecision]:
        return [d for d in self.decisions if d.accepted]

    def run_record(self) -> GenerationRunRecord:
        stats = self.result.stats
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
        )


def generate_and_gate(
    engine: FaceEngineBase,
    augmentor: Augmentor,
    rgb: np.ndarray,
    original: EmbeddedFace,
    requests: list[ViewRequest],
    gate_threshold: float,
    emit: ProgressCallback,
) -> ViewsOutcome:
    total = len(requests)
    emit(ProgressEvent("generating", f"generating {total} view(s) with {augmentor.name}", {"views": [r.name for r in requests]}))
    result = augmentor.generate(rgb, original.face, requests)
    for k, view in enumerate(result.views, start=1):
        emit(
            ProgressEvent(
                "generated",
                f"view {k} of {total} generated: {view.request.name}",
                {"view": view.request.name, "index": k, "total": total, "latency_s": round(view.latency_s, 4)},
            )
        )
    decisions = gate_views(engine, original.vector, result.views, gate_threshold)
    for decision in decisions:
        emit(
            ProgressEvent(
                "accepted" if decision.accepted else "rejected",
                f"{decision.view.request.name}: {decision.reason}",
                {"view": decision.view.request.name, "similarity": decision.similarity, "reason": decision.reason},
            )
        )
    return ViewsOutcome(result, decisions, gate_threshold)


def build_enrollment(
    name: str,
    photo: bytes,
    image: DecodedImage,
    original: EmbeddedFace,
    model: str,
    views: ViewsOutcome | None,
) -> Enrollment:
    images = [
        NewImage(
            data=photo,
            sha256=image.sha256,
            extension=image.extension,
            mime=image.mime,
            width=image.width,
            height=image.height,
            source="original",
            display_name=f"original{image.extension}",
        )
    ]
    embeddings = [NewEmbedding(0, "original", model, original.vector, original.face.score, original.face.bbox)]
    runs = []
    if views is not None:
        import hashlib

        for decision in views.accepted:
            view = decision.view
            data = encode_png(view.rgb)
            images.append(
                NewImage(
                    data=data,
                    sha256=hashlib.sha256(data).hexdigest(),
                    extension=".png",
                    mime="image/png",
                    width=int(view.rgb.shape[1]),
                    height=int(view.rgb.shape[0]),
                    source=view.request.source,
                    display_name=f"{view.request.display_stem}.png",
                    generator=view.generator,
                )
            )
            assert decision.embedded is not None
            embeddings.append(
                NewEmbedding(
                    len(images) - 1,
                    view.request.source,
                    model,
                    decision.embedded.vector,
                    decision.embedded.face.score,
                    decision.embedded.face.bbox,
                )
            )
        runs.append(views.run_record())
    return Enrollment(name=name, images=images, embeddings=embeddings, generation_runs=runs)

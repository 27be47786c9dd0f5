"""Building one enrollment: the original face, its gated views, and the records the store
writes in one transaction; and the progress events an enrollment streams."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from core.augment.gate import ViewsOutcome
from core.faces.decode import ImageInfo
from core.faces.recognition import EmbeddedFace
from core.store.records import Enrollment, NewEmbedding, NewImage


@dataclass(frozen=True)
class ProgressEvent:
    """One step of an enrollment, for streaming to clients."""

    stage: str  # decoded, detected, generating, generated, accepted, rejected, embedded, stored
    message: str
    data: dict[str, object] = field(default_factory=dict)


ProgressCallback = Callable[[ProgressEvent], None]


def views_events(outcome: ViewsOutcome) -> Iterator[ProgressEvent]:
    """'generated k of n' for every view, then each gate decision."""
    total = len(outcome.decisions)
    for k, decision in enumerate(outcome.decisions, start=1):
        name = decision.request.name
        yield ProgressEvent(
            "generated",
            f"view {k} of {total} generated: {name}",
            {"view": name, "index": k, "total": total, "latency_s": round(decision.latency_s, 4)},
        )
    for decision in outcome.decisions:
        yield ProgressEvent(
            "accepted" if decision.accepted else "rejected",
            f"{decision.request.name}: {decision.reason}",
            {"view": decision.request.name, "similarity": decision.similarity, "reason": decision.reason},
        )


def build_enrollment(
    name: str,
    photo: bytes,
    image: ImageInfo,
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
        for decision in views.accepted:
            assert decision.embedded is not None
            images.append(
                NewImage(
                    data=decision.png,
                    sha256=hashlib.sha256(decision.png).hexdigest(),
                    extension=".png",
                    mime="image/png",
                    width=decision.width,
                    height=decision.height,
                    source=decision.request.source,
                    display_name=f"{decision.request.display_stem}.png",
                    generator=decision.generator,
                    made_from=0,
                )
            )
            face = decision.embedded
            embeddings.append(
                NewEmbedding(
                    len(images) - 1, decision.request.source, model, face.vector, face.face.score, face.face.bbox
                )
            )
        runs.append(views.run_record())
    return Enrollment(name=name, images=images, embeddings=embeddings, generation_runs=runs)

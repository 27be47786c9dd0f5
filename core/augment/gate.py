"""The identity gate: a generated view enters the gallery only if it still looks like the person.

A view passes when exactly one face is detected in it and the cosine similarity of that face's
embedding to the original's is at least the gate threshold. The dlib default (0.9261) is the
similarity that 0.1% of impostor pairs on ../shared/faces reach (FMR = 0.1%): a kept view is
closer to the person than 99.9% of strangers are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.augment.base import GeneratedView
from core.recognition import EmbeddedFace, FaceEngineBase


@dataclass(frozen=True, eq=False)
class GateDecision:
    view: GeneratedView
    accepted: bool
    reason: str  # "accepted", "no face", "3 faces", "similarity 0.81 < 0.93"
    similarity: float | None
    embedded: EmbeddedFace | None

    def as_record(self) -> dict[str, object]:
        return {
            "view": self.view.request.name,
            "source": self.view.request.source,
            "generator": self.view.generator,
            "prompt": self.view.prompt,
            "seed": self.view.request.seed,
            "latency_s": round(self.view.latency_s, 4),
            "accepted": self.accepted,
            "reason": self.reason,
            "similarity": None if self.similarity is None else round(self.similarity, 4),
        }


def gate_views(
    engine: FaceEngineBase, reference: np.ndarray, views: list[GeneratedView], threshold: float
) -> list[GateDecision]:
    detections = [engine.detect(v.rgb) for v in views]
    single = [i for i, faces in enumerate(detections) if len(faces) == 1]
    embedded = engine.embed_many([(views[i].rgb, detections[i][0]) for i in single])
    vectors = {i: e.vector for i, e in zip(single, embedded)}
    decisions = []
    for i, view in enumerate(views):
        faces = detections[i]
        if len(faces) != 1:
            reason = "no face" if not faces else f"{len(faces)} faces"
            decisions.append(GateDecision(view, False, reason, None, None))
            continue
        similarity = float(np.dot(vectors[i], reference))
        accepted = similarity >= threshold
        reason = "accepted" if accepted else f"similarity {similarity:.4f} < {threshold:.4f}"
        decisions.append(GateDecision(view, accepted, reason, similarity, EmbeddedFace(faces[0], vectors[i])))
    return decisions

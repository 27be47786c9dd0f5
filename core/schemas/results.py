"""The shapes of every result, as the HTTP API answers and the CLI's ``--json`` prints them.

One formatter per result (``*.of(...)``), shared by serve/api.py and core/cli/main.py, so a client
reads the same fields whichever way it asked. These models are the API's response models: the
OpenAPI document at /docs is generated from them. Here: errors, faces (identify, verify, embed),
views and enrollment; beside it, the gallery (``schemas_gallery``), models, jobs, keys and the
access log (``schemas_models``), the service's stats and thresholds (``schemas_stats``) and its
health (``schemas_health``).
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.augment.gate import GateDecision, ViewsOutcome
from core.errors import ManyAnglesError
from core.faces.pipeline import AnalyzedPhoto, ModelInfo
from core.faces.recognition import EmbeddedFace
from core.results import EnrollResult, IdentifyResult, PersonVerifyResult, VerifyResult


class Schema(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- errors ----------------------------------------------------------------------------------
class ErrorFace(Schema):
    bbox: list[float] = Field(description="x1, y1, x2, y2 in pixels of the upright photo")
    score: float = Field(description="detector confidence")


class ErrorMatch(Schema):
    person_id: int
    name: str
    score: float = Field(description="the photo's score against that person under the matching rule")
    threshold: float = Field(
        description="the identification threshold it clears; not_this_person: the one-to-one threshold it misses"
    )
    same_photo: bool | None = Field(
        None, description="already_enrolled only: that person has this very photo (adding it to them is pointless)"
    )


class ErrorDetail(Schema):
    code: str = Field(description="stable machine-readable code, e.g. no_face, person_exists, busy")
    message: str = Field(description="what went wrong, for a person to read")
    faces: list[ErrorFace] | None = Field(
        None, description="multiple_faces only: every face, largest first (the order of the `face` index)"
    )
    match: ErrorMatch | None = Field(
        None,
        description="matches_another_person and already_enrolled: the person the photo is identified as; "
        "not_this_person: the person it was added to, whom it does not verify as",
    )


class ErrorResponse(Schema):
    error: ErrorDetail

    @classmethod
    def of(
        cls,
        code: str,
        message: str,
        faces: list[dict[str, Any]] | None = None,
        match: dict[str, Any] | None = None,
    ) -> ErrorResponse:
        boxes = [ErrorFace(**f) for f in faces] if faces else None
        who = ErrorMatch(**match) if match else None
        return cls(error=ErrorDetail(code=code, message=message, faces=boxes, match=who))

    @classmethod
    def of_error(cls, exc: ManyAnglesError) -> ErrorResponse:
        return cls.of(exc.code, exc.message, getattr(exc, "faces", None), getattr(exc, "match", None))

    def body(self) -> dict[str, Any]:
        """The JSON body: ``faces`` and ``match`` only where there are some."""
        return self.model_dump(exclude_none=True)


# --- faces -----------------------------------------------------------------------------------
class FaceBox(Schema):
    bbox: list[float] = Field(description="x1, y1, x2, y2 in pixels of the upright photo")
    score: float = Field(description="detector confidence")
    landmarks5: list[list[float]] = Field(description="eyes, nose tip, mouth corners (x, y)")

    @classmethod
    def of(cls, face: EmbeddedFace) -> FaceBox:
        return cls(**face.face.as_dict())


class EmbeddedFaceOut(FaceBox):
    embedding: list[float] = Field(description="unit-length vector of the model")

    @classmethod
    def of(cls, face: EmbeddedFace) -> EmbeddedFaceOut:
        return cls(**face.face.as_dict(), embedding=[round(float(x), 6) for x in face.vector])


class Candidate(Schema):
    person_id: int
    name: str
    score: float = Field(
        description="cosine similarity under the active matching rule, less the views offset for a person with views"
    )


class IdentifiedFace(FaceBox):
    label: str = Field(description="the identity's name, or 'unknown' below the threshold")
    identity: Candidate | None = Field(description="the top candidate when it clears the threshold")
    candidates: list[Candidate] = Field(
        description="top-k persons, best first; for a key that may not read the gallery (scope identify), only "
        "those at or over the threshold: the names of persons the face is not are not its to know"
    )


class IdentifyResponse(Schema):
    model: str
    threshold: float | None = Field(description="identification threshold (None: no face found)")
    match_mode: str
    faces: list[IdentifiedFace] = Field(description="every face in the photo, largest first")

    @classmethod
    def of(cls, result: IdentifyResult, below_threshold: bool = True) -> IdentifyResponse:
        """``below_threshold`` False: each face's candidates only where they clear the threshold."""
        faces = []
        for item in result.faces:
            identity = item.match.identity
            shown = [
                c
                for c in item.match.candidates
                if below_threshold or (result.threshold is not None and c.score >= result.threshold)
            ]
            faces.append(
                IdentifiedFace(
                    **item.face.face.as_dict(),
                    label=identity.name if identity else "unknown",
                    identity=Candidate(**asdict(identity)) if identity else None,
                    candidates=[Candidate(**asdict(c)) for c in shown],
                )
            )
        return cls(model=result.model, threshold=result.threshold, match_mode=result.match_mode, faces=faces)


TARGET_FMR = "the false match rate per claim the threshold is set at (the verify_fmr setting); null: the identification threshold"


class VerifyResponse(Schema):
    same_person: bool
    score: float = Field(description="cosine similarity of the two photos' (largest) faces")
    threshold: float
    model: str
    target_fmr: float | None = Field(description=TARGET_FMR)

    @classmethod
    def of(cls, result: VerifyResult) -> VerifyResponse:
        return cls(**asdict(result))


class PersonVerifyResponse(Schema):
    person_id: int
    name: str | None = Field(
        description="null for a key that may not read the gallery (scope identify) when the photo is not this "
        "person: a claim that fails does not learn whose id it named"
    )
    same_person: bool = Field(description="the score is at or over the threshold")
    score: float = Field(
        description="the photo's score against the person as identification ranks them: the matching rule over "
        "all their entries, less the views offset when they have generated views"
    )
    threshold: float = Field(description="the one-to-one threshold of the matching rule")
    match_mode: str
    model: str
    target_fmr: float | None = Field(description=TARGET_FMR)

    @classmethod
    def of(cls, result: PersonVerifyResult, name_if_not_same: bool = True) -> PersonVerifyResponse:
        fields = asdict(result)
        if not (result.same_person or name_if_not_same):
            fields["name"] = None
        return cls(**fields)


class EmbedResult(Schema):
    filename: str
    width: int
    height: int
    faces: list[EmbeddedFaceOut]


class EmbedResponse(Schema):
    model: str
    dim: int
    results: list[EmbedResult]

    @classmethod
    def of(cls, model: ModelInfo, results: list[tuple[str, AnalyzedPhoto]]) -> EmbedResponse:
        return cls(
            model=model.name,
            dim=model.dim,
            results=[
                EmbedResult(
                    filename=name,
                    width=photo.image.width,
                    height=photo.image.height,
                    faces=[EmbeddedFaceOut.of(f) for f in photo.faces],
                )
                for name, photo in results
            ],
        )


# --- views and enrollment --------------------------------------------------------------------
class ViewDecision(Schema):
    view: str
    source: str = Field(description="the source tag stored with the view: augmented_<view>")
    generator: str
    prompt: str | None
    seed: int
    latency_s: float
    accepted: bool
    reason: str = Field(description="accepted, no face, N faces, or the similarity below the gate")
    similarity: float | None = Field(description="cosine similarity to the original face")


class EnrolledView(ViewDecision):
    preview_jpeg_base64: str = Field(description="the view as a small JPEG (at most 256 px), accepted or not")


class GeneratedViewOut(ViewDecision):
    image_png_base64: str

    @classmethod
    def of(cls, decision: GateDecision) -> GeneratedViewOut:
        return cls(**decision.as_record(), image_png_base64=base64.b64encode(decision.png).decode())


class GenerateResponse(Schema):
    generator: str
    device: str
    total_s: float
    gate_threshold: float
    views: list[GeneratedViewOut]

    @classmethod
    def of(cls, outcome: ViewsOutcome) -> GenerateResponse:
        stats = outcome.stats
        return cls(
            generator=stats.generator,
            device=stats.device,
            total_s=round(stats.total_s, 4),
            gate_threshold=outcome.gate_threshold,
            views=[GeneratedViewOut.of(d) for d in outcome.decisions],
        )


class EnrollResponse(Schema):
    person_id: int
    name: str
    model: str
    num_images: int
    num_embeddings: int
    sources: list[str] = Field(description="source tag of each stored embedding: original, augmented_left, ...")
    elapsed_s: float
    views: list[EnrolledView] = Field(description="every generated view with its gate decision and a preview")
    timings_s: dict[str, float] = Field(
        description="seconds per stage: decode, detect, embed, generate, gate, store, total"
    )
    images_url: str

    @classmethod
    def of(cls, result: EnrollResult) -> EnrollResponse:
        return cls(**asdict(result), images_url=f"/v1/persons/{result.person_id}")


class ProgressLine(Schema):
    """One line of a streamed enrollment (``Accept: application/x-ndjson``); the last line is
    ``{"type": "result", ...EnrollResponse}`` or ``{"type": "error", "error": {...}}``."""

    model_config = ConfigDict(frozen=True, extra="allow")
    type: Literal["progress"] = "progress"
    stage: str
    message: str


class LegacyEnrollResponse(Schema):
    success: bool
    person_id: int
    name: str
    embeddings_count: int
    images: list[str]
    message: str

"""The shapes of every result, as the HTTP API answers and the CLI's ``--json`` prints them.

One formatter per result (``*.of(...)``), shared by serve/api.py and core/cli.py, so a client
reads the same fields whichever way it asked. These models are the API's response models: the
OpenAPI document at /docs is generated from them.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.augment.gate import GateDecision, ViewsOutcome
from core.errors import ManyAnglesError
from core.pipeline import AnalyzedPhoto, ModelInfo
from core.recognition import EmbeddedFace
from core.results import EnrollResult, IdentifyResult, VerifyResult
from core.service import ManyAnglesService


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
    threshold: float = Field(description="the identification threshold it clears")
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
        None, description="matches_another_person and already_enrolled only: the person the photo is identified as"
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
    candidates: list[Candidate] = Field(description="top-k persons, best first")


class IdentifyResponse(Schema):
    model: str
    threshold: float | None = Field(description="identification threshold (None: no face found)")
    match_mode: str
    faces: list[IdentifiedFace] = Field(description="every face in the photo, largest first")

    @classmethod
    def of(cls, result: IdentifyResult) -> IdentifyResponse:
        faces = []
        for item in result.faces:
            identity = item.match.identity
            faces.append(
                IdentifiedFace(
                    **item.face.face.as_dict(),
                    label=identity.name if identity else "unknown",
                    identity=Candidate(**asdict(identity)) if identity else None,
                    candidates=[Candidate(**asdict(c)) for c in item.match.candidates],
                )
            )
        return cls(model=result.model, threshold=result.threshold, match_mode=result.match_mode, faces=faces)


class VerifyResponse(Schema):
    same_person: bool
    score: float
    threshold: float
    model: str

    @classmethod
    def of(cls, result: VerifyResult) -> VerifyResponse:
        return cls(**asdict(result))


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


# --- service ---------------------------------------------------------------------------------
class ModelInfoOut(Schema):
    name: str
    dim: int
    provider: str
    detector: str
    tta: int
    default_thresholds: dict[str, float] = Field(description="matching rule -> shipped threshold at FPIR 1%")
    default_gate_threshold: float | None
    workers: int

    @classmethod
    def of(cls, info: ModelInfo) -> ModelInfoOut:
        return cls(**asdict(info))


class StageOut(Schema):
    name: str = Field(description="prompt, vae_encode, denoise, vae_decode or to_uint8")
    seconds: float
    peak_mem_bytes: int | None = Field(None, description="GPU memory peak within the stage (CUDA only)")


class GenerationRun(Schema):
    id: int
    person_id: int | None
    generator: str
    device: str
    dtype: str
    num_views: int
    num_accepted: int
    steps: int | None
    strength: float | None
    total_s: float
    peak_mem_bytes: int | None
    views: list[ViewDecision]
    stages: list[StageOut] = Field(default_factory=list, description="Stable Diffusion: time and GPU peak per stage")
    created_at: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> GenerationRun:
        return cls(**{k: v for k, v in row.items() if k not in ("views_json", "stages_json")})


class GenerationStatsResponse(Schema):
    runs: list[GenerationRun] = Field(description="newest first")


class BatchPoint(Schema):
    time: float = Field(description="unix time the batch finished")
    faces: int = Field(description="faces embedded in the call")
    kind: Literal["photos", "views"] = Field(description="a batch of uploaded photos, or an enrollment's views")


class BatchingStats(Schema):
    batches: int
    crops: int
    mean_batch_size: float
    max_batch_size: int
    recent: list[BatchPoint] = Field(description="the latest batches, oldest first (kept in the replica's memory)")


class EnrollmentRun(Schema):
    id: int
    person_id: int | None = Field(description="None once the person was deleted")
    model: str
    num_views: int = Field(description="views asked for; 0 without augmentation")
    num_accepted: int
    total_s: float
    timings_s: dict[str, float] = Field(description="seconds per stage")
    created_at: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> EnrollmentRun:
        return cls(**{k: v for k, v in row.items() if k != "timings_json"})


class EnrollmentStatsResponse(Schema):
    runs: list[EnrollmentRun] = Field(description="newest first")


class ThresholdOut(Schema):
    model: str
    kind: str = Field(
        description="fpir (1:N identification), gate_fmr (identity gate of views) or views_offset "
        "(score subtracted from persons with views; target: the impostor-score tail it was measured at)"
    )
    rule: str = Field(description="matching rule of an identification threshold or views offset; empty for the gate")
    target: float
    threshold: float
    n_negative: int = Field(description="impostor searches or pairs it was calibrated on")
    dataset: str
    created_at: str
    person_fmr: float | None = Field(
        None, description="identification: share of impostor (search, person) pairs at or over it"
    )
    gallery_size: int | None = Field(None, description="identification: the persons its target FPIR holds for")
    fmr_pairs: int | None = Field(None, description="identification: the impostor pairs person_fmr was measured over")


class ThresholdsResponse(Schema):
    model: str
    match_mode: str
    target_fpir: float
    identify_threshold: float | None = Field(description="what identify uses now (None: not calibrated)")
    gate_threshold: float | None = Field(description="what the identity gate uses now")
    views_offset: float = Field(description="what identify subtracts now from the score of a person with views")
    problems: list[str] = Field(description="why a threshold is missing")
    shipped: dict[str, float] = Field(description="the model's shipped identification thresholds per rule")
    shipped_views_offsets: dict[str, float] = Field(description="the model's shipped views offsets per rule")
    stored: list[ThresholdOut] = Field(description="every calibrated threshold in the store, all models")
    persons: int = Field(
        description="persons enrolled now (with a vector of the active model: those a search can name)"
    )
    person_fmr: float | None = Field(
        description="per-person false match rate at the identify threshold (None: not measured): a stranger's "
        "search is falsely accepted when any person clears it"
    )
    calibrated_for: int | None = Field(description="the persons the stored calibration's target FPIR holds for")
    expected_fpir: float | None = Field(description="FPIR at this gallery's size: 1 - (1 - person_fmr) ** persons")
    holds_up_to: int | None = Field(description="the most persons at which FPIR stays at the target")
    fmr_pairs: int | None = Field(
        description="the impostor pairs person_fmr was measured over (null: not known); `fmr_hits` of them cleared it"
    )
    fmr_hits: int | None
    person_fmr_interval: tuple[float, float] | None = Field(
        description="95% confidence interval of person_fmr (exact binomial): a rate resting on a handful of pairs "
        "is uncertain by a factor of two"
    )
    expected_fpir_interval: tuple[float, float] | None = Field(
        description="expected_fpir at the interval's lowest and highest rate"
    )
    holds_up_to_interval: tuple[int, int | None] | None = Field(
        description="holds_up_to at the interval's highest and lowest rate (null upper end: any number)"
    )
    warnings: list[str] = Field(description="set when the gallery has outgrown its threshold")

    @classmethod
    def of(cls, service: ManyAnglesService) -> ThresholdsResponse:
        problems: list[str] = []
        values: list[float | None] = []
        for resolve in (service.threshold, service.gate_threshold):
            try:
                values.append(resolve())
            except ManyAnglesError as exc:
                problems.append(exc.message)
                values.append(None)
        settings = service.settings
        fit = service.gallery_fit()
        interval = fit.interval()
        return cls(
            model=service.model.name,
            match_mode=settings.match_mode,
            target_fpir=settings.target_fpir,
            identify_threshold=values[0],
            gate_threshold=values[1],
            views_offset=service.views_offset(),
            problems=problems,
            shipped=service.model.default_thresholds,
            shipped_views_offsets=service.model.default_views_offsets,
            stored=[ThresholdOut(**asdict(t)) for t in service.store.thresholds()],
            persons=fit.persons,
            person_fmr=fit.person_fmr,
            calibrated_for=fit.calibrated_for,
            expected_fpir=fit.expected_fpir,
            holds_up_to=fit.holds_up_to,
            fmr_pairs=None if interval is None else interval.pairs,
            fmr_hits=None if interval is None else interval.hits,
            person_fmr_interval=None if interval is None else interval.person_fmr,
            expected_fpir_interval=None if interval is None else interval.expected_fpir,
            holds_up_to_interval=None if interval is None else interval.holds_up_to,
            warnings=[fit.warning] if fit.warning else [],
        )

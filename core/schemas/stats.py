"""The shapes of what the service says about itself: its model, generation and enrollment
timings, embedder batching, and the thresholds in use (``GET /v1/stats/*``, ``GET /v1/thresholds``,
the model of ``/v1/health``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from pydantic import Field

from core.errors import ManyAnglesError
from core.faces.embedders.shipped import SHIPPED_FPIR
from core.faces.pipeline import ModelInfo
from core.schemas.results import Schema, ViewDecision
from core.service import ManyAnglesService


class ModelInfoOut(Schema):
    name: str = Field(description="the embedding model's name, stored with every vector it made")
    dim: int
    provider: str = Field(description="the ONNX Runtime provider it runs on")
    detector: str
    tta: int
    workers: int
    source: str = Field("", description="where the embedding model's weights come from")
    licence: str = Field("", description="the terms the embedding model's weights come under")
    detector_source: str = ""
    detector_licence: str = ""
    default_match_mode: str = Field(
        "top2", description="the matching rule the views study chose for this model (used when match_mode is unset)"
    )
    default_views: list[str] | None = Field(
        None, description="the classic views the views study chose for this model (null: the generator's own)"
    )
    default_thresholds: dict[str, float] = Field(description="matching rule -> shipped threshold at FPIR 1%")
    default_thresholds_by_fpir: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="target FPIR -> matching rule -> shipped threshold"
    )
    default_gate_threshold: float | None
    default_verify_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="one-to-one at FMR 0.1%: matching rule -> a photo against a person; 'photos': two photos",
    )

    @classmethod
    def of(cls, info: ModelInfo) -> ModelInfoOut:
        shipped = info.shipped
        return cls(
            name=info.name,
            dim=info.dim,
            provider=info.provider,
            detector=info.detector,
            tta=info.tta,
            workers=info.workers,
            source=info.source,
            licence=info.licence,
            detector_source=info.detector_source,
            detector_licence=info.detector_licence,
            default_match_mode=shipped.match_mode,
            default_views=None if shipped.views is None else list(shipped.views),
            default_thresholds=dict(shipped.identify_at(SHIPPED_FPIR)),
            default_thresholds_by_fpir={f"{t:g}": dict(v) for t, v in shipped.identify.items()},
            default_gate_threshold=shipped.gate,
            default_verify_thresholds=dict(shipped.verify),
        )


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


class SearchRun(Schema):
    """One identify or verify call's time: no person, name, image or vector is recorded."""

    id: int
    kind: Literal["identify", "verify", "verify_person"] = Field(
        description="identify (POST /v1/identify), verify (two photos, POST /v1/verify) or verify_person "
        "(a photo against an enrolled person, POST /v1/persons/{id}/verify)"
    )
    faces: int = Field(description="faces searched (identify) or compared (verify)")
    total_s: float = Field(description="the call's time in the service: decoding, detection, embedding, search")
    timings_s: dict[str, float] = Field(
        description="seconds per stage: analyze (decode, detect, embed: in the API replica or on the Embedder), "
        "then search (identify), compare (verify) or score (verify_person), and total"
    )
    created_at: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> SearchRun:
        return cls(**{k: v for k, v in row.items() if k != "timings_json"})


class SearchStatsResponse(Schema):
    runs: list[SearchRun] = Field(description="newest first (the store keeps the newest 10,000 calls)")


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
    shipped: dict[str, float] = Field(
        description="the model's shipped identification thresholds per rule at target_fpir ({}: none shipped there)"
    )
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
    verify_fmr: float = Field(description="the false match rate per claim one-to-one decisions are set at (0: none)")
    verify_threshold: float | None = Field(
        description="what verify uses now for a photo against a person (None: not calibrated)"
    )
    verify_photos_threshold: float | None = Field(description="what verify uses now for two photos")

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
        one_to_one: list[float | None] = []
        for person in (True, False):
            try:
                one_to_one.append(service.verify_threshold(person=person)[0])
            except ManyAnglesError as exc:
                problems.append(exc.message)
                one_to_one.append(None)
        settings = service.settings
        fit = service.gallery_fit()
        interval = fit.interval()
        return cls(
            model=service.model.name,
            match_mode=service.rule(),
            target_fpir=settings.target_fpir,
            identify_threshold=values[0],
            gate_threshold=values[1],
            views_offset=service.views_offset(),
            problems=problems,
            shipped=dict(service.model.shipped.identify_at(settings.target_fpir)),
            shipped_views_offsets=dict(service.model.shipped.views_offsets),
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
            verify_fmr=settings.verify_fmr,
            verify_threshold=one_to_one[0],
            verify_photos_threshold=one_to_one[1],
        )

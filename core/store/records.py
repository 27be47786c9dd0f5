"""Records written to and read from the gallery store."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class NewImage:
    """An image to store: the bytes are written content-addressed by their sha256."""

    data: bytes
    sha256: str
    extension: str  # ".jpg", ".png", ".webp"
    mime: str
    width: int
    height: int
    source: str  # "original" or "augmented_<view>"
    display_name: str  # "original.jpg", "augmented_left_1.png"
    generator: str | None = None
    made_from: int | None = None  # a view: the index in Enrollment.images of the photo it was made from


@dataclass(frozen=True, eq=False)
class NewEmbedding:
    image_index: int  # index into Enrollment.images
    source: str
    model: str
    vector: np.ndarray  # (dim,) float32, unit norm
    det_score: float
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True)
class GenerationRunRecord:
    generator: str
    device: str
    dtype: str
    num_views: int
    num_accepted: int
    total_s: float
    views: list[dict[str, object]]
    steps: int | None = None
    strength: float | None = None
    peak_mem_bytes: int | None = None
    stages: list[dict[str, object]] = field(default_factory=list)  # name, seconds, peak_mem_bytes


@dataclass(frozen=True)
class EnrollmentRunRecord:
    """How long one enrollment took, stage by stage (what the console's latency page charts)."""

    person_id: int
    model: str
    num_views: int
    num_accepted: int
    total_s: float
    timings: dict[str, float]


@dataclass(frozen=True)
class Enrollment:
    """Everything one enrollment writes; stored in one transaction or not at all."""

    name: str
    images: list[NewImage]
    embeddings: list[NewEmbedding]
    generation_runs: list[GenerationRunRecord] = field(default_factory=list)


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    created_at: str
    num_images: int
    num_embeddings: int


@dataclass(frozen=True)
class ImageRecord:
    id: int
    person_id: int
    sha256: str
    path: str
    source: str
    display_name: str
    mime: str
    width: int
    height: int
    num_bytes: int
    generator: str | None
    created_at: str
    source_image_id: int | None = (
        None  # a view: the photo it was made from (None: a photo, or a view whose photo is gone)
    )


@dataclass(frozen=True)
class PersonDetail:
    person: Person
    images: list[ImageRecord]
    embedding_counts: dict[str, dict[str, int]]  # model -> source -> count


@dataclass(frozen=True, eq=False)
class GalleryMatrix:
    """All embeddings of one model, ready for matching."""

    model: str
    vectors: np.ndarray  # (n, dim) float32
    person_ids: np.ndarray  # (n,) int64
    sources: list[str]
    names: dict[int, str]  # person id -> name

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])


@dataclass(frozen=True)
class StoredThreshold:
    model: str
    kind: str  # "fpir", "gate_fmr", "verify_fmr" or "views_offset" (then: target is the impostor tail, threshold the offset)
    rule: str  # the matching rule of an "fpir" or "verify_fmr" threshold or a views offset; "photos" for two photos; "" for "gate_fmr"
    target: float
    threshold: float
    n_negative: int
    dataset: str
    created_at: str
    # identification thresholds (None where unmeasured: older calibrations, other kinds): the share
    # of impostor (search, person) pairs at or over it, and the persons the target FPIR holds for
    person_fmr: float | None = None
    gallery_size: int | None = None
    fmr_pairs: int | None = None  # the impostor pairs person_fmr was measured over (its interval)


@dataclass(frozen=True)
class ModelThresholds:
    """One read of a model's calibrations together with the gallery's active model then (a search
    reads both at once: one round trip to PostgreSQL, where two thresholds and an active-model
    check were three). Answers ``get_threshold`` as the store does, for this model only."""

    model: str
    active: str | None  # the active model's name at the read (None: a gallery with none yet)
    rows: tuple[StoredThreshold, ...]

    def get_threshold(self, model: str, kind: str, target: float, rule: str = "") -> StoredThreshold | None:
        if model != self.model:
            raise ValueError(f"these thresholds are {self.model}'s, not {model}'s")
        return next(
            (r for r in self.rows if r.kind == kind and r.rule == rule and abs(r.target - target) < 1e-12), None
        )


@dataclass(frozen=True)
class FaceConflict:
    """A person of an import left out (or forced in) by the face check: a new person
    identified as someone already in the gallery (``already_enrolled``), or a merge identified
    as another person (``another_person``) or as nobody (``not_identified``) instead of the
    person of that name it would join."""

    person: str  # the name in the export
    reason: str  # "already_enrolled" | "another_person" | "not_identified"
    threshold: float
    match_id: int | None = None  # whom the face is identified as (None: nobody)
    match: str | None = None
    score: float | None = None  # of that match; for ``not_identified``: of the person it would join, when searched
    into: str | None = None  # a merge's person


@dataclass(frozen=True)
class DuplicatePair:
    """Two persons one of whose photos is identified as the other (``person_id`` < ``other_id``)."""

    person_id: int
    name: str
    other_id: int
    other: str
    score: float  # the highest score of a photo of one of them for the other
    threshold: float

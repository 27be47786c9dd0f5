"""What the core service answers: an enrollment, an identification, a verification (the HTTP
schemas in core/schemas/results.py and the CLI's text are made from these).

May import: core.errors, core.faces, core.search.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.faces.recognition import EmbeddedFace
from core.search.matching import MatchResult


@dataclass(frozen=True)
class EnrollResult:
    person_id: int
    name: str
    model: str
    num_images: int
    num_embeddings: int
    sources: list[str]
    elapsed_s: float
    views: list[dict[str, object]]  # every generated view with its gate decision and a small preview
    timings_s: dict[str, float] = field(default_factory=dict)  # per stage


@dataclass(frozen=True, eq=False)
class FaceIdentification:
    face: EmbeddedFace
    match: MatchResult


@dataclass(frozen=True, eq=False)
class IdentifyResult:
    model: str
    threshold: float | None
    match_mode: str
    faces: list[FaceIdentification]  # largest face first


@dataclass(frozen=True)
class VerifyResult:
    same_person: bool
    score: float
    threshold: float
    model: str
    target_fmr: float | None = None  # the false match rate the threshold is set at (None: identification's)


@dataclass(frozen=True)
class PersonVerifyResult:
    """A photo against one enrolled person (a claimed identity), under the matching rule."""

    person_id: int
    name: str
    same_person: bool
    score: float
    threshold: float
    match_mode: str
    model: str
    target_fmr: float | None = None  # the false match rate the threshold is set at (None: identification's)

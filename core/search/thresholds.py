"""The one threshold resolver: explicit setting > stored calibration > the model's shipped value."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from core.errors import ModelSwitching, NotCalibrated
from core.faces.embedders.shipped import PHOTOS, SHIPPED_FMR, Shipped
from core.faces.pipeline import ModelInfo
from core.search.fpir import MIN_PAIR_HITS, OUTGROWN, expected_fpir, person_fmr_for, persons_within, rate_interval
from core.search.rules import VIEWS_OFFSET_TAIL
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.records import ModelThresholds, StoredThreshold

ThresholdKind = Literal["fpir", "gate_fmr", "views_offset", "verify_fmr"]


class ThresholdLookup(Protocol):
    """Where calibrations are read: the store (GalleryStore), or one read of a model's
    (ModelThresholds: ``Thresholds.read_once``)."""

    def get_threshold(self, model: str, kind: str, target: float, rule: str = "") -> StoredThreshold | None: ...


_WHAT = {
    "fpir": "identification threshold for FPIR",
    "gate_fmr": "identity-gate threshold for FMR",
    "verify_fmr": "one-to-one verification threshold for FMR",
}


def resolve_threshold(
    store: ThresholdLookup,
    model: ModelInfo,
    kind: ThresholdKind,
    target: float,
    rule: str = "",
    explicit: float | None = None,
) -> float:
    """``rule``: the matching rule of an identification or one-to-one threshold (each rule has
    its own: more entries per person under ``max`` raise impostor scores; ``PHOTOS`` for a
    one-to-one threshold between two photos); unused for the gate."""
    if explicit is not None:
        return explicit
    rule = rule if kind in ("fpir", "verify_fmr") else ""
    stored = store.get_threshold(model.name, kind, target, rule)
    if stored is not None:
        return stored.threshold
    shipped = _shipped(model.shipped, kind, target, rule)
    if shipped is not None:
        return shipped
    hint = " or set MANYANGLES_GATE_THRESHOLD" if kind == "gate_fmr" else ""
    which = " between two photos" if rule == PHOTOS else f" under the '{rule}' matching rule" if rule else ""
    raise NotCalibrated(
        f"model {model.name} has no {_WHAT[kind]} {target:g}{which}; run "
        f"`manyangles calibrate DIR` on a labelled folder of faces{hint}"
        + (" (or set verify_fmr 0: one-to-one at the identification threshold)" if kind == "verify_fmr" else "")
    )


def _shipped(shipped: Shipped, kind: ThresholdKind, target: float, rule: str) -> float | None:
    """The model's shipped value for this kind, target and rule (None: not shipped)."""
    if kind == "fpir":
        return shipped.identify_at(target).get(rule)
    if abs(target - SHIPPED_FMR) >= 1e-12:
        return None
    return shipped.verify.get(rule) if kind == "verify_fmr" else shipped.gate


def resolve_views_offset(store: ThresholdLookup, model: ModelInfo, rule: str, explicit: float | None = None) -> float:
    """What a person with generated views loses from their score under ``rule``
    (core/search/rules.py): the setting > the store's calibration > the model's shipped value
    > 0 (no correction: a model nobody calibrated)."""
    if explicit is not None:
        return explicit
    stored = store.get_threshold(model.name, "views_offset", VIEWS_OFFSET_TAIL, rule)
    if stored is not None:
        return stored.threshold
    return model.shipped.views_offsets.get(rule, 0.0)


@dataclass(frozen=True)
class GalleryFit:
    """How the identification threshold in use holds at the gallery's size (core/search/fpir.py)."""

    persons: int
    person_fmr: float | None  # at the threshold in use; None: not measured (an older calibration)
    calibrated_for: int | None  # persons its calibration's target FPIR holds for; None: shipped or older
    expected_fpir: float | None  # the FPIR this gallery answers at that threshold
    holds_up_to: int | None  # the most persons at which FPIR stays at the target
    warning: str | None  # set when the gallery has outgrown the threshold
    fmr_pairs: int | None = None  # the impostor pairs person_fmr was measured over (None: not known)
    target: float = 0.01

    def interval(self, level: float = 0.95) -> FitInterval | None:
        """How sure ``person_fmr`` and ``holds_up_to`` are, from the pairs the rate rests on (None:
        not known). Computed on demand: identification asks for the fit, not for this."""
        if self.person_fmr is None or not self.fmr_pairs:
            return None
        hits = min(self.fmr_pairs, max(0, round(self.person_fmr * self.fmr_pairs)))
        low, high = rate_interval(hits, self.fmr_pairs, level)
        return FitInterval(
            level,
            hits,
            self.fmr_pairs,
            (low, high),
            (expected_fpir(low, self.persons), expected_fpir(high, self.persons)),
            (persons_within(high, self.target) or 0, persons_within(low, self.target)),
        )


@dataclass(frozen=True)
class FitInterval:
    level: float
    hits: int  # impostor pairs at or over the threshold
    pairs: int  # of these
    person_fmr: tuple[float, float]
    expected_fpir: tuple[float, float]  # at the gallery's size
    holds_up_to: tuple[int, int | None]  # at the interval's highest rate, at its lowest (None: any number)


def gallery_fit(store: ThresholdLookup, model: ModelInfo, target: float, rule: str, persons: int) -> GalleryFit:
    """What the threshold ``resolve_threshold`` picks for ``rule`` promises at ``persons``:
    its per-person false match rate (stored with a calibration, else the model's shipped one)
    turned into the FPIR of this gallery, and a warning once that is above ``OUTGROWN`` x the target."""
    stored = store.get_threshold(model.name, "fpir", target, rule)
    calibrated_for = None
    if stored is not None:
        fmr, calibrated_for = stored.person_fmr, stored.gallery_size
    else:
        fmr = model.shipped.person_fmrs_at(target).get(rule)
    if fmr is None:
        return GalleryFit(persons, None, calibrated_for, None, None, None)
    expected, holds = expected_fpir(fmr, persons), persons_within(fmr, target)
    pairs = stored.fmr_pairs if stored is not None else (model.shipped.fmr_pairs or None)
    fit = GalleryFit(persons, fmr, calibrated_for, expected, holds, None, pairs, target)
    if expected <= OUTGROWN * target:
        return fit
    need = math.ceil(MIN_PAIR_HITS / person_fmr_for(target, persons))
    sure = fit.interval()  # only here: identification asks for the fit on every search
    span = "" if sure is None else f" (95% CI {sure.holds_up_to[0]:,} to {_at_most(sure.holds_up_to[1])})"
    warning = (
        f"with {persons:,} persons enrolled, about {expected:.1%} of searches by people not enrolled would be "
        f"named as someone (target FPIR {target:.1%}; this threshold holds it up to ~{holds:,} "
        f"person{'' if holds == 1 else 's'}{span}): calibrate for this gallery with `manyangles calibrate DIR "
        f"--gallery-size {persons}` on a labelled folder of people not enrolled, large enough for about "
        f"{need:,} impostor pairs"
    )
    return replace(fit, warning=warning)


@dataclass(frozen=True)
class Thresholds:
    """The thresholds a service decides by, for a model, at its settings' targets and rule."""

    settings: Settings
    store: GalleryStore
    read: ThresholdLookup | None = None  # one read of a model's calibrations (read_once); None: the store's

    def read_once(self, model: ModelInfo, early: ModelThresholds | None = None) -> Thresholds:
        """These thresholds over one read of ``model``'s calibrations, which also checks that
        ``model`` was the active one at that read (ModelSwitching: retry): a search's threshold,
        views offset and active-model check in one statement, not three (round trips on
        PostgreSQL). ``early``: that read, made with the active-model pointer before the analysis
        or while the Embedder works (core/store/search_reads.py), used when it is ``model``'s (its
        calibrations and the pointer are then one moment's: the check holds by construction);
        otherwise (the analysis was another model's: a switch in between) read again now."""
        stored = early if early is not None and early.model == model.name else self.store.model_thresholds(model.name)
        ModelSwitching.unless(stored.active, model.name)
        return replace(self, read=stored)

    @property
    def _lookup(self) -> ThresholdLookup:
        return self.read or self.store

    def rule(self, model: ModelInfo) -> str:
        """The matching rule: the ``match_mode`` setting, else the one the views study chose for
        ``model`` (core/faces/embedders/shipped.py)."""
        return self.settings.match_mode or model.shipped.match_mode

    def identify(self, model: ModelInfo) -> float:
        """Identification, at ``target_fpir`` under the matching rule."""
        return resolve_threshold(self._lookup, model, "fpir", self.settings.target_fpir, self.rule(model))

    def views_offset(self, model: ModelInfo) -> float:
        """What a person with generated views loses from their score (core/search/rules.py)."""
        return resolve_views_offset(self._lookup, model, self.rule(model), explicit=self.settings.views_offset)

    def verify(self, model: ModelInfo, person: bool = True) -> tuple[float, float | None]:
        """One-to-one decisions: the threshold at ``verify_fmr`` false matches per claim, a photo
        against a person under the matching rule (``person``) or against another photo; and
        that rate (None: ``verify_fmr`` 0, the identification threshold instead)."""
        fmr = self.settings.verify_fmr
        if not fmr:
            return self.identify(model), None
        rule = self.rule(model) if person else PHOTOS
        return resolve_threshold(self._lookup, model, "verify_fmr", fmr, rule), fmr

    def gate(self, model: ModelInfo) -> float:
        """The identity gate of generated views, at ``gate_fmr``."""
        s = self.settings
        return resolve_threshold(self._lookup, model, "gate_fmr", s.gate_fmr, explicit=s.gate_threshold)

    def fit(self, model: ModelInfo, persons: int) -> GalleryFit:
        """How the identification threshold holds at a gallery of ``persons``."""
        return gallery_fit(self._lookup, model, self.settings.target_fpir, self.rule(model), persons)


def _at_most(persons: int | None) -> str:
    return "any number" if persons is None else f"{persons:,}"

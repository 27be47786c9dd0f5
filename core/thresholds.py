"""The one threshold resolver: explicit setting > stored calibration > the model's shipped value."""

from __future__ import annotations

from typing import Literal

from core.errors import NotCalibrated
from core.matching_rules import VIEWS_OFFSET_TAIL
from core.pipeline import ModelInfo
from core.store.gallery import GalleryStore

ThresholdKind = Literal["fpir", "gate_fmr", "views_offset"]
# The targets the shipped defaults were calibrated at.
SHIPPED_TARGETS: dict[str, float] = {"fpir": 0.01, "gate_fmr": 0.001, "views_offset": VIEWS_OFFSET_TAIL}
_WHAT = {"fpir": "identification threshold for FPIR", "gate_fmr": "identity-gate threshold for FMR"}


def resolve_threshold(
    store: GalleryStore,
    model: ModelInfo,
    kind: ThresholdKind,
    target: float,
    rule: str = "",
    explicit: float | None = None,
) -> float:
    """``rule``: the matching rule of an identification threshold (each rule has its own: more
    entries per person under ``max`` raise impostor scores); unused for the gate."""
    if explicit is not None:
        return explicit
    rule = rule if kind == "fpir" else ""
    stored = store.get_threshold(model.name, kind, target, rule)
    if stored is not None:
        return stored.threshold
    shipped = model.default_thresholds.get(rule) if kind == "fpir" else model.default_gate_threshold
    if shipped is not None and abs(target - SHIPPED_TARGETS[kind]) < 1e-12:
        return shipped
    hint = " or set MANYANGLES_GATE_THRESHOLD" if kind == "gate_fmr" else ""
    which = f" under the '{rule}' matching rule" if rule else ""
    raise NotCalibrated(
        f"model {model.name} has no {_WHAT[kind]} {target:g}{which}; run "
        f"`manyangles calibrate DIR` on a labelled folder of faces{hint}"
    )


def resolve_views_offset(store: GalleryStore, model: ModelInfo, rule: str, explicit: float | None = None) -> float:
    """What a person with generated views loses from their score under ``rule``
    (core/matching_rules.py): the setting > the store's calibration > the model's shipped value
    > 0 (no correction: a model nobody calibrated)."""
    if explicit is not None:
        return explicit
    stored = store.get_threshold(model.name, "views_offset", VIEWS_OFFSET_TAIL, rule)
    if stored is not None:
        return stored.threshold
    return model.default_views_offsets.get(rule, 0.0)

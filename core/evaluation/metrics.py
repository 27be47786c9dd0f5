"""Identification metrics: rank-1, FPIR/FNIR and threshold calibration.

Terms follow NIST FRVT 1:N. A *mated* search is a probe whose identity is in the gallery; it
succeeds at threshold t when the mate is the top candidate with a score >= t. A *non-mated*
(impostor) search is a probe whose identity is not enrolled; it is a false positive when its top
score is >= t. A probe in which no face was detected has score -inf: a miss when mated, a correct
rejection when not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SearchOutcome:
    """The result of one search against a gallery."""

    top_score: float  # -inf when no face was detected or the gallery is empty
    mate_is_top: bool  # mated searches only; False for impostors


def threshold_for_fpir(impostor_scores: np.ndarray, target_fpir: float) -> float:
    """Lowest threshold whose FPIR on these scores is at most ``target_fpir``.

    Scores >= threshold count as positive; the returned value sits just above the k-th highest
    impostor score, k = floor(target * n), so at most k impostors pass.
    """
    scores = np.sort(np.asarray(impostor_scores, dtype=np.float64))[::-1]
    scores = scores[np.isfinite(scores)]
    n_total = len(impostor_scores)
    if n_total == 0:
        raise ValueError("no impostor searches: cannot calibrate a threshold")
    allowed = math.floor(target_fpir * n_total + 1e-9)
    if allowed >= len(scores):
        return float(scores[-1]) if len(scores) else -1.0
    return float(np.nextafter(scores[allowed], np.inf))


def fpir_at(impostors: list[SearchOutcome], threshold: float) -> float:
    if not impostors:
        return float("nan")
    return sum(o.top_score >= threshold for o in impostors) / len(impostors)


def fnir_at(mated: list[SearchOutcome], threshold: float) -> float:
    if not mated:
        return float("nan")
    hits = sum(o.mate_is_top and o.top_score >= threshold for o in mated)
    return 1.0 - hits / len(mated)


def rank1(mated: list[SearchOutcome]) -> float:
    if not mated:
        return float("nan")
    return sum(o.mate_is_top for o in mated) / len(mated)


@dataclass(frozen=True)
class OpenSetReport:
    fnir_at_fpir: dict[str, float]  # "0.01" -> FNIR
    threshold_at_fpir: dict[str, float]
    n_mated: int
    n_impostor: int


def open_set_report(
    mated: list[SearchOutcome], impostors: list[SearchOutcome], fpirs: tuple[float, ...]
) -> OpenSetReport:
    impostor_scores = np.array([o.top_score for o in impostors], dtype=np.float64)
    thresholds = {f"{f:g}": threshold_for_fpir(impostor_scores, f) for f in fpirs}
    return OpenSetReport(
        fnir_at_fpir={k: fnir_at(mated, t) for k, t in thresholds.items()},
        threshold_at_fpir=thresholds,
        n_mated=len(mated),
        n_impostor=len(impostors),
    )

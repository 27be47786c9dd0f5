"""Matching (max / mean template, top-k, unknown) and the identification metrics."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.metrics import SearchOutcome, fnir_at, fpir_at, rank1, threshold_for_fpir
from core.search.matching import Matcher
from core.store.records import GalleryMatrix


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def gallery() -> GalleryMatrix:
    vectors = np.stack([unit(1, 0, 0), unit(0.6, 0.8, 0), unit(0, 1, 0), unit(0, 0, 1)])
    return GalleryMatrix("m", vectors, np.array([1, 1, 2, 3]), ["original"] * 4, {1: "A", 2: "B", 3: "C"})


def test_max_mode_scores_a_person_by_their_best_embedding():
    result = Matcher(gallery(), "max").match(unit(0, 1, 0)[None], top_k=2, threshold=0.9)[0]
    assert [c.name for c in result.candidates] == ["B", "A"]
    assert result.candidates[0].score == pytest.approx(1.0)
    assert result.candidates[1].score == pytest.approx(0.8)
    assert result.identity is not None and result.identity.name == "B"


def test_mean_template_mode():
    matcher = Matcher(gallery(), "mean")
    scores = matcher.person_scores(unit(1, 0, 0)[None])[0]
    template_a = unit(1.6, 0.8, 0)
    assert scores[0] == pytest.approx(float(template_a @ unit(1, 0, 0)), rel=1e-5)


def test_unknown_below_threshold_and_empty_gallery():
    result = Matcher(gallery()).match(unit(1, 1, 1)[None], top_k=5, threshold=0.95)[0]
    assert len(result.candidates) == 3 and result.identity is None
    empty = GalleryMatrix("m", np.zeros((0, 0), np.float32), np.zeros(0, np.int64), [], {})
    assert Matcher(empty).match(unit(1, 0, 0)[None], 5, 0.5)[0].candidates == []


def test_threshold_for_fpir_lets_through_at_most_the_target():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, 1000)
    for target in (0.001, 0.01, 0.1):
        t = threshold_for_fpir(scores, target)
        assert (scores >= t).mean() <= target
        # and it is the lowest such threshold: one notch lower lets one more through
        assert (scores >= np.nextafter(np.sort(scores)[::-1][int(target * 1000)], -np.inf)).mean() > target


def test_no_face_impostors_count_as_rejections():
    scores = np.array([0.9, 0.5, -np.inf, -np.inf])
    t = threshold_for_fpir(scores, 0.25)
    assert 0.5 < t <= 0.9 + 1e-9
    impostors = [SearchOutcome(s, False) for s in scores]
    assert fpir_at(impostors, t) == 0.25


def test_fnir_and_rank1():
    mated = [
        SearchOutcome(0.95, True),
        SearchOutcome(0.85, True),
        SearchOutcome(0.99, False),
        SearchOutcome(-np.inf, False),
    ]
    assert rank1(mated) == 0.5
    assert fnir_at(mated, 0.9) == 0.75
    assert fnir_at(mated, 0.8) == 0.5

"""Matching rules and the cross-validation's fold logic, on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidInput
from core.evaluation.calibration import calibrate_rules, calibrate_verify
from core.evaluation.crossval import _deal, cross_validate
from core.evaluation.eval_data import EvalData
from core.search.matching import Matcher
from core.search.rules import RULES, GalleryIndex, person_scores
from core.store.records import GalleryMatrix

E = np.eye(3, dtype=np.float32)
# person 0: original e1 and one view e2; person 1: original e3 only
INDEX = GalleryIndex.build(np.stack([E[0], E[1], E[2]]), np.array([0, 0, 1]), np.array([True, False, True]))
PROBE = np.array([[0.6, 0.8, 0.0]], dtype=np.float32)  # cos 0.6 to e1, 0.8 to e2, 0 to e3


@pytest.mark.parametrize(
    "rule,expected",
    [
        ("max", [0.8, 0.0]),  # the best entry
        ("mean", [(0.6 + 0.8) / np.sqrt(2), 0.0]),  # cosine to normalise(e1 + e2)
        ("blend", [0.5 * 0.6 + 0.5 * 0.8, 0.0]),  # half the original, half the views' template
        ("top2", [(0.8 + 0.6) / 2, 0.0]),  # the two best entries; one entry: itself
    ],
)
def test_rules_by_hand(rule: str, expected: list[float]):
    np.testing.assert_allclose(person_scores(rule, INDEX, PROBE)[0], expected, atol=1e-6)


def test_one_entry_per_person_makes_every_rule_the_same():
    index = GalleryIndex.build(E, np.array([0, 1, 2]), np.array([True, True, True]))
    probes = np.array([[0.6, 0.8, 0.0], [0.0, 0.28, 0.96]], dtype=np.float32)
    first = person_scores("max", index, probes)
    for rule in RULES:
        np.testing.assert_allclose(person_scores(rule, index, probes), first, atol=1e-6)


def test_blend_with_more_views_uses_their_template():
    # person 0: original e1, views e2 and e3: views template = normalise(e2 + e3)
    index = GalleryIndex.build(E, np.array([0, 0, 0]), np.array([True, False, False]))
    probe = np.array([[0.0, 0.6, 0.8]], dtype=np.float32)
    expected = 0.5 * 0.0 + 0.5 * (0.6 + 0.8) / np.sqrt(2)
    np.testing.assert_allclose(person_scores("blend", index, probe)[0], [expected], atol=1e-6)


def test_matcher_uses_the_rule_and_the_source_tags():
    gallery = GalleryMatrix(
        "m",
        np.stack([E[0], E[1], E[2]]),
        np.array([7, 7, 9]),
        ["original", "augmented_left", "original"],
        {7: "A", 9: "B"},
    )
    result = Matcher(gallery, "blend").match(PROBE, top_k=2, threshold=0.65)[0]
    assert [c.name for c in result.candidates] == ["A", "B"]
    assert result.candidates[0].score == pytest.approx(0.7) and result.identity is not None
    assert Matcher(gallery, "max").match(PROBE, 1, 0.81)[0].identity is None  # 0.8 < 0.81
    with pytest.raises(ValueError, match="unknown match mode"):
        Matcher(gallery, "median")  # type: ignore[arg-type]


def test_folds_are_balanced_and_cover_everyone():
    rng = np.random.default_rng(0)
    folds = _deal(13, 5, rng)
    assert sorted(np.bincount(folds)) == [2, 2, 3, 3, 3]
    assert len(folds) == 13


def _data(n: int, mated_sim: float, probes_each: int = 2) -> EvalData:
    """n identities on orthonormal axes; each probe is its own axis tilted by ``mated_sim``."""
    dim = n + 1
    originals = np.eye(dim, dtype=np.float32)[:n]
    noise = np.eye(dim, dtype=np.float32)[n]
    tilt = np.sqrt(1 - mated_sim**2)
    identity = np.repeat(np.arange(n), probes_each)
    vectors = originals[identity] * mated_sim + noise * tilt
    views = [{"classic:left": originals[i]} for i in range(n)]
    return EvalData(
        [f"p{i}" for i in range(n)],
        originals,
        views,
        identity,
        vectors.astype(np.float32),
        np.ones(len(identity), bool),
    )


def test_separable_data_has_no_misses_in_any_fold():
    # mated similarity 0.9; every impostor's best score is 0 (orthogonal identities) -> the
    # calibrated threshold sits just above 0 and every mated search clears it
    data = _data(20, 0.9)
    report = cross_validate(data, {"original": None, "+views": ("classic:left",)}, seeds=3, folds=5, bootstrap=50)
    for condition in report.conditions.values():
        for result in condition.values():
            assert result.fnir == {"0.01": 0.0, "0.1": 0.0}
            assert result.rank1 == 1.0 and result.worse_folds == {"0.01": 0, "0.1": 0}
            assert result.folds == 15
    assert report.conditions["+views"]["max"].mean_gallery_size == 20  # 10 enrolled x (original + view)


def test_calibrate_rules_by_hand():
    # 4 identities; enrolled halves: (p0, p2) then (p1, p3). Impostor probes of the other half
    # score 0 against every enrolled axis, except p1's second probe, tilted towards p0.
    data = _data(4, 1.0)
    vectors = data.probe_vectors.copy()
    vectors[3] = np.array([0.5, np.sqrt(0.75), 0, 0, 0], dtype=np.float32)  # p1's 2nd probe: cos 0.5 to p0
    data = EvalData(data.identities, data.originals, data.views, data.probe_identity, vectors, data.probe_found)
    out = calibrate_rules(data, None, target=0.25)
    # 8 impostor searches pooled, 25% may pass: 2; scores sorted: 0.5, 0, 0, ... -> just above 0.
    # Pairs: 8 probes x the 3 other identities = 24, one of them (0.5) over the threshold.
    for rule in RULES:
        c = out[rule]
        assert c.searches == 8 and c.threshold == pytest.approx(np.nextafter(0.0, 1.0))
        assert (c.pairs, c.person_fmr, c.gallery_size) == (24, pytest.approx(1 / 24), 2)
    out = calibrate_rules(data, None, target=0.1)  # none may pass: just above 0.5
    assert out["max"].threshold == pytest.approx(np.nextafter(np.float32(0.5), 1.0), abs=1e-6)
    assert out["max"].person_fmr == 0.0


def _tilted(n: int = 12) -> EvalData:
    """n identities, 2 probes each; identity i's first probe leans b_i = 0.05 (i + 1) towards
    identity i + 1: 12 impostor pairs score 0.05..0.6, the other 252 of 24 x 11 score 0."""
    data = _data(n, 1.0)
    vectors = data.probe_vectors.copy()
    for i in range(n):
        b = 0.05 * (i + 1)
        vectors[2 * i] = 0.0
        vectors[2 * i, i], vectors[2 * i, (i + 1) % n] = np.sqrt(1 - b * b), b
    return EvalData(data.identities, data.originals, data.views, data.probe_identity, vectors, data.probe_found)


def test_calibrate_rules_for_a_gallery_size_by_hand():
    # FPIR 8% in a gallery of 2: per-person rate 1 - 0.92 ** (1 / 2) = 0.0408; 264 pairs x 0.0408
    # = 10.8: 10 may pass, the threshold sits just above the 11th highest pair score (0.10)
    out = calibrate_rules(_tilted(), None, target=0.08, gallery_size=2)
    for rule in RULES:
        c = out[rule]
        assert c.threshold == pytest.approx(0.1, abs=1e-6)
        assert (c.pairs, c.person_fmr, c.gallery_size) == (264, pytest.approx(10 / 264), 2)


def test_calibrating_for_a_gallery_the_folder_cannot_measure_is_refused():
    # a gallery of 3: rate 0.0274, 264 pairs give 7 hits, fewer than the 10 a rate needs
    with pytest.raises(InvalidInput, match=r"a gallery of 3 persons .* 365 impostor pairs .* this folder gives 264"):
        calibrate_rules(_tilted(), None, target=0.08, gallery_size=3)


def test_calibrate_verify_by_hand():
    # one to one, the same 264 impostor claims (12 score 0.05..0.60, the rest 0): at FMR 4%,
    # 264 x 0.04 = 10.6, 10 may pass: just above the 11th highest claim (0.10)
    out = calibrate_verify(_tilted(), None, target=0.04)
    for rule in RULES:
        threshold, claims = out[rule]
        assert threshold == pytest.approx(0.1, abs=1e-6) and claims == 264
    # FMR 3%: 7.9 claims over it, fewer than the 10 a rate needs (334 claims would give them)
    with pytest.raises(InvalidInput, match=r"FMR 0.03 rests on about 334 impostor claims .* this folder gives 264"):
        calibrate_verify(_tilted(), None, target=0.03)

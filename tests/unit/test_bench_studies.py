"""bench/multi_photo.py, bench/gallery_size.py and bench/verify_person.py: their arithmetic on hand-made
vectors."""

from __future__ import annotations

import numpy as np
import pytest

from bench.multi_photo import Person, Tally, paired_gain, run_split


def test_paired_gain_is_the_pooled_fnir_difference() -> None:
    # without: 2+0 misses of 4+4 searches = 25%; with: 1+0 of 8 = 12.5%
    gain, low, high = paired_gain({"a": [2, 4], "b": [0, 4]}, {"a": [1, 4], "b": [0, 4]})
    assert gain == pytest.approx(-12.5)
    assert low <= gain <= high <= 0.0  # "b" never changes, "a" only improves: no resample is worse


def _unit(axis: int, dim: int = 8, tilt: float = 0.0) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[axis] = 1.0
    v[(axis + 1) % dim] = tilt
    return v / np.linalg.norm(v)


def test_one_split_counts_hits_misses_and_false_accepts() -> None:
    # four people on four axes; person 0's second photo is the only way to find their probe
    # (it lies on axis 7, where that photo is); every stranger searches with their own axis
    persons = [
        Person(
            name=f"p{i}",
            photos=(_unit(i), _unit(7) if i == 0 else _unit(i)),
            views=(),
            views_2=(),
            probes=(_unit(7, tilt=0.01) if i == 0 else _unit(i),),
            all_photos=(_unit(i),),
        )
        for i in range(4)
    ]
    for share in (0.0, 1.0):
        totals, p0_enrolled = Tally(), 0
        for seed in range(6):  # whoever is enrolled, the counts follow from the axes
            tally, seen = run_split(persons, np.random.default_rng(seed), "max", 0.99, 0.0, False, share)
            totals += tally
            p0_enrolled += "p0" in seen
            assert tally.impostor == 2 and tally.fa_two + tally.fa_one == 0  # strangers on other axes
        assert p0_enrolled > 0
        if share == 0.0:  # one photo each: p0's probe is missed every time p0 is enrolled
            assert (totals.mated_one, totals.miss_one, totals.mated_two) == (12, p0_enrolled, 0)
        else:  # everyone has the second photo: nobody is missed
            assert (totals.mated_two, totals.miss_two, totals.mated_one) == (12, 0, 0)


def test_fpir_of_a_gallery_follows_the_per_person_rate() -> None:
    from bench.gallery_size import SIZES, measure, predicted_fpir

    assert predicted_fpir(0.5, 2) == pytest.approx(0.75)  # 1 - 0.5^2
    assert predicted_fpir(0.0, 10_000) == 0.0 and predicted_fpir(1e-4, 1) == pytest.approx(1e-4)
    from core.evaluation.eval_data import EvalData

    # six people, every vector the same: every search clears any threshold against every person
    same = _unit(0)
    data = EvalData(
        identities=[f"p{i}" for i in range(6)],
        originals=np.stack([same] * 6),
        views=[{"classic:left": same} for _ in range(6)],
        probe_identity=np.array([0, 1, 2, 3, 4, 5]),
        probe_vectors=np.stack([same] * 6),
        probe_found=np.array([True] * 5 + [False]),
    )
    results = measure(data, "top2", 0.99, 0.0, splits=2)
    assert [r.size for r in results] == list(SIZES)
    for r in results:  # 3 strangers: their 3 originals and their found probes (2 or 3) per split
        enrolled = min(r.size, 3)
        assert r.fpir == 1.0 and r.fmr == 1.0 and r.pairs == r.searches * enrolled
        assert 2 * 5 <= r.searches <= 2 * 6


def test_one_to_one_claims_thresholds_and_halves_by_hand() -> None:
    """bench/verify_person.py: the threshold at an FMR sits just above the claim that must not
    pass; a half's impostor claims are its probes against its other persons only."""
    from bench.verify_person import Claims, _among, at_fmr, held_out

    # 4 of 4 impostor scores, 25% may pass: 1 -> just above the 2nd highest (0.5)
    assert at_fmr(np.array([0.9, 0.5, 0.1, 0.0]), 0.25) == pytest.approx(np.nextafter(0.5, 1.0))
    assert at_fmr(np.array([0.9, 0.5, 0.1, 0.0]), 0.1) == pytest.approx(np.nextafter(0.9, 1.0))  # none may pass
    owner = np.array([0, 0, 1, 2, 3])
    scores = np.array(
        [
            [0.95, 0.10, 0.20, 0.30],  # person 0's probes
            [0.90, 0.40, 0.50, 0.60],
            [0.15, 0.80, 0.25, 0.35],  # person 1's
            [0.05, 0.45, 0.70, 0.55],  # person 2's
            [0.65, 0.75, 0.85, 0.99],  # person 3's
        ]
    )
    rows = np.arange(len(owner))
    others = np.ones_like(scores, dtype=bool)
    others[rows, owner] = False
    c = Claims(owner, scores[rows, owner], scores[others].reshape(len(owner), -1), scores)
    assert sorted(_among(c, np.array([0, 1]))) == [0.10, 0.15, 0.40]  # 0's probes vs 1, 1's vs 0
    assert sorted(_among(c, np.array([2, 3]))) == [0.55, 0.85]
    # at FMR 1e-3 no fitted claim may pass: the threshold is just above the fitted half's highest.
    # {0,1} | {2,3}: fit 0.40 -> the other half's claims 0.55, 0.85 pass (FMR 1), genuine 0.70, 0.99
    # do (FNMR 0); fit 0.85 -> none of 0.10, 0.15, 0.40 pass, genuine 0.80 of 0.95, 0.90, 0.80 fails.
    # {0,2} | {1,3}: fit 0.50 -> (1/2, 0); fit 0.75 -> (0, 1/3). {0,3} | {1,2}: 0.65 -> (0, 0); 0.45 -> (2/3, 0)
    splits = [
        {(1.0, 0.0), (0.0, 1 / 3)},
        {(0.5, 0.0), (0.0, 1 / 3)},
        {(0.0, 0.0), (2 / 3, 0.0)},
    ]
    fmrs, fnmrs = held_out(c, halves=5)
    measured = [(round(f, 6), round(n, 6)) for f, n in zip(fmrs, fnmrs, strict=True)]
    assert len(measured) == 10  # each split both ways
    for one_way, other_way in zip(measured[::2], measured[1::2], strict=True):
        assert {one_way, other_way} in [{(round(f, 6), round(n, 6)) for f, n in pair} for pair in splits]

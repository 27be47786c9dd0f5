"""bench/multi_photo.py: the paired FNIR difference and one split, on hand-made vectors."""

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

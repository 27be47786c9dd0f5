"""How the false positive identification rate grows with the number of persons enrolled.

A stranger's search is a false accept when ANY enrolled person clears the threshold. With a
per-person false match rate ``fmr`` (the share of (stranger, person) pairs at or over the
threshold), a gallery of ``N`` persons answers ``FPIR(N) = 1 - (1 - fmr) ** N``: a threshold
calibrated at FPIR 1% on ~66 persons lets ~8% of strangers through at 1,000
(BENCHMARKS.md, "FPIR and the size of the gallery"; the formula was checked there at 4-66).
"""

from __future__ import annotations

import math

# A per-person rate is measured from the impostor pairs over the threshold: with fewer than
# this many, it is a guess (10 hits: +-30% at one standard error).
MIN_PAIR_HITS = 10
# A gallery has outgrown its threshold once the FPIR it answers passes this multiple of the target.
OUTGROWN = 1.5


def expected_fpir(person_fmr: float, persons: int) -> float:
    """FPIR of a gallery of ``persons`` whose per-person false match rate is ``person_fmr``."""
    if persons <= 0 or person_fmr <= 0.0:
        return 0.0
    return float(-math.expm1(persons * math.log1p(-min(person_fmr, 1.0 - 1e-15))))


def person_fmr_for(target_fpir: float, persons: int) -> float:
    """The per-person false match rate at which ``persons`` answer ``target_fpir``."""
    return float(-math.expm1(math.log1p(-target_fpir) / max(persons, 1)))


def persons_within(person_fmr: float, target_fpir: float) -> int | None:
    """The most persons a threshold with ``person_fmr`` holds at ``target_fpir`` (None: any
    number; a rate of 0 measured on a finite set is only a bound, see the caller)."""
    if person_fmr <= 0.0:
        return None
    return max(0, math.floor(math.log1p(-target_fpir) / math.log1p(-person_fmr) + 1e-9))

"""How the false positive identification rate grows with the number of persons enrolled.

A stranger's search is a false accept when ANY enrolled person clears the threshold. With a
per-person false match rate ``fmr`` (the share of (stranger, person) pairs at or over the
threshold), a gallery of ``N`` persons answers ``FPIR(N) = 1 - (1 - fmr) ** N``: a threshold
calibrated at FPIR 1% on ~66 persons lets ~8% of strangers through at 1,000
(docs/studies/thresholds.md, "FPIR and the size of the gallery"; the formula was checked there at 4-66).
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


def _binomial_cdf(hits: int, pairs: int, rate: float) -> float:
    """P(X <= hits) for X ~ Binomial(pairs, rate)."""
    if rate <= 0.0:
        return 1.0
    if rate >= 1.0:
        return 1.0 if hits >= pairs else 0.0
    log_rate, log_miss = math.log(rate), math.log1p(-rate)
    base = math.lgamma(pairs + 1)
    return min(
        1.0,
        math.fsum(
            math.exp(base - math.lgamma(i + 1) - math.lgamma(pairs - i + 1) + i * log_rate + (pairs - i) * log_miss)
            for i in range(hits + 1)
        ),
    )


def _solve(f: float, cdf_at: int, pairs: int) -> float:
    """The rate at which P(X <= cdf_at) equals ``f`` (the CDF falls as the rate rises): bisection."""
    low, high = 0.0, 1.0
    for _ in range(200):
        mid = (low + high) / 2
        if _binomial_cdf(cdf_at, pairs, mid) > f:
            low = mid
        else:
            high = mid
    return (low + high) / 2


MAX_EXACT_HITS = 200  # above: the Wilson interval (the exact one costs hits x 200 terms; ~0.1 s at 200)


def rate_interval(hits: int, pairs: int, level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of a rate seen ``hits`` times in ``pairs`` (exact:
    Clopper-Pearson; a per-person rate rests on a handful of impostor pairs, where the normal
    approximation fails)."""
    if pairs <= 0 or not 0 <= hits <= pairs:
        raise ValueError(f"{hits} hits in {pairs} pairs")
    tail = (1.0 - level) / 2
    if hits > MAX_EXACT_HITS:
        z = math.sqrt(2.0) * _erfinv(level)
        p, n = hits / pairs, pairs
        centre, spread = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return max(0.0, (centre - spread) / (1 + z * z / n)), min(1.0, (centre + spread) / (1 + z * z / n))
    low = 0.0 if hits == 0 else _solve(1.0 - tail, hits - 1, pairs)  # P(X >= hits) = tail
    high = 1.0 if hits == pairs else _solve(tail, hits, pairs)  # P(X <= hits) = tail
    return low, high


def _erfinv(y: float) -> float:
    """The inverse error function, by Newton's method from a close start."""
    x = math.copysign(math.sqrt(-math.log((1 - y) / 2)), y) if abs(y) > 0.7 else y * math.sqrt(math.pi) / 2
    for _ in range(60):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x

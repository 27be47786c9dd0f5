"""How FPIR at the shipped threshold grows with the number of persons enrolled.

The shipped threshold is calibrated at FPIR 1% on galleries of ~66 persons (half of
../shared/faces). A stranger's search is a false accept when ANY enrolled person clears the
threshold, so the more persons, the more chances: with a per-person false match rate ``fmr``,
``FPIR(N) = 1 - (1 - fmr) ** N``. This measures FPIR at gallery sizes the dev set allows (4 to
66 persons, every rule's shipped threshold and views offset, persons enrolled with the default
views) and the per-person rate behind it, and extrapolates to galleries it cannot hold.

Reads the embeddings of ``manyangles eval DIR --cache CACHE`` (run that first).

    python -m bench.gallery_size ../shared/faces --cache out/eval_cache
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from bench.cached_study import cached_eval_data, start, study_parser
from bench.machine import describe_machine
from core.evaluation.eval_data import EvalData
from core.search.rules import RULES, GalleryIndex, person_scores

log = logging.getLogger("bench.gallery_size")
SIZES = (4, 8, 16, 33, 66)
EXTRAPOLATE = (1_000, 10_000, 100_000)


@dataclass(frozen=True)
class SizeResult:
    size: int
    false_accepts: int
    searches: int
    pair_hits: int  # (search, person) pairs over the threshold
    pairs: int

    @property
    def fpir(self) -> float:
        return self.false_accepts / self.searches

    @property
    def fmr(self) -> float:
        return self.pair_hits / self.pairs


def predicted_fpir(fmr: float, size: int) -> float:
    """FPIR of a gallery of ``size`` persons whose per-person false match rate is ``fmr``."""
    return float(1.0 - (1.0 - fmr) ** size)


def gallery(data: EvalData, persons: np.ndarray) -> GalleryIndex:
    vectors, owner, original = [], [], []
    for slot, identity in enumerate(persons):
        entries = [(data.originals[identity], True)] + [(v, False) for v in data.views[identity].values()]
        for vector, is_original in entries:
            vectors.append(vector)
            owner.append(slot)
            original.append(is_original)
    return GalleryIndex.build(np.stack(vectors), np.array(owner), np.array(original))


def measure(data: EvalData, rule: str, threshold: float, offset: float, splits: int) -> list[SizeResult]:
    totals = {size: [0, 0, 0, 0] for size in SIZES}
    count = len(data.identities)
    for split in range(splits):
        rng = np.random.default_rng(split)
        order = rng.permutation(count)
        enrolled, strangers = order[: count // 2], order[count // 2 :]
        searches = np.concatenate(
            [data.originals[strangers], data.probe_vectors[np.isin(data.probe_identity, strangers) & data.probe_found]]
        )
        for size in SIZES:
            scores = person_scores(rule, gallery(data, enrolled[:size]), searches, offset)
            over = scores >= threshold
            total = totals[size]
            total[0] += int(over.any(axis=1).sum())
            total[1] += len(searches)
            total[2] += int(over.sum())
            total[3] += over.size
    return [SizeResult(size, *totals[size]) for size in SIZES]


def main() -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--splits", type=int, default=50)
    args, settings, service = start(parser)
    data = cached_eval_data(args, settings, service)
    thresholds, offsets = dict(service.model.shipped.identify_at(0.01)), dict(service.model.shipped.views_offsets)
    log.info("%s", describe_machine())
    sizes = " | ".join(f"N={n}" for n in SIZES)
    ahead = " | ".join(f"N={n:,} (predicted)" for n in EXTRAPOLATE)
    log.info("| rule | threshold | per-person FMR | %s | %s |", sizes, ahead)
    log.info("|---|---|---|%s%s", "---|" * len(SIZES), "---|" * len(EXTRAPOLATE))
    for rule in RULES:
        results = measure(data, rule, thresholds[rule], offsets.get(rule, 0.0), args.splits)
        fmr = sum(r.pair_hits for r in results) / sum(r.pairs for r in results)
        cells = " | ".join(f"{100 * r.fpir:.2f}% (pred. {100 * predicted_fpir(fmr, r.size):.2f}%)" for r in results)
        far = " | ".join(f"{100 * predicted_fpir(fmr, n):.0f}%" for n in EXTRAPOLATE)
        log.info("| %s | %.4f | %.2e | %s | %s |", rule, thresholds[rule], fmr, cells, far)


if __name__ == "__main__":
    main()

"""Persons with two real photos in a gallery of persons with one: are both on one scale?

`POST /v1/persons/{id}/photos` lets an admin give a person a second photo (with or without its
views). Such a person has more gallery entries, so, like a person with views, more chances to
out-score a stranger. This measures, at the shipped threshold and offset of each rule, where
the false accepts land in a gallery where half the enrolled persons have a second photo, and
what the second photo buys their mated searches.

Protocol: ``--splits`` random halves of the identities (enrolled / strangers); within the
enrolled half, a random half gets photo 2 as well (the "two-photo" persons). Mated searches:
photos 3+ of the enrolled persons (photo 2 is never a probe). Impostor searches: every photo
of the strangers. Conditions: no views anywhere; views of photo 1 for everyone and of photo 2
for the two-photo persons (an add-photo with views). Reads the embeddings of
``manyangles eval DIR --cache CACHE``; the views of photo 2 are embedded (and cached) here.

    python -m bench.multi_photo ../shared/faces --cache out/eval_cache
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.cached_study import start, study_parser
from bench.machine import describe_machine
from core.evaluation.dataset import load_labelled_folder
from core.evaluation.embedding import EmbeddingCache, PhotoEmbedding, embed_photos
from core.search.rules import RULES, GalleryIndex, person_scores
from core.service import ManyAnglesService
from core.settings import Settings

log = logging.getLogger("bench.multi_photo")


@dataclass(frozen=True)
class Person:
    name: str
    photos: tuple[np.ndarray, ...]  # photo 1, photo 2
    views: tuple[np.ndarray, ...]  # accepted views of photo 1
    views_2: tuple[np.ndarray, ...]  # accepted views of photo 2
    probes: tuple[np.ndarray, ...]  # photos 3+
    all_photos: tuple[np.ndarray, ...]  # every photo with a face (as a stranger's searches)


@dataclass(frozen=True)
class Tally:
    fa_two: int = 0  # impostor searches accepted with a two-photo person on top
    fa_one: int = 0
    impostor: int = 0
    miss_two: int = 0
    mated_two: int = 0
    miss_one: int = 0
    mated_one: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(*(a + b for a, b in zip(vars(self).values(), vars(other).values(), strict=True)))


def _accepted(record: PhotoEmbedding) -> tuple[np.ndarray, ...]:
    made = record.views or {}
    return tuple(v.vector for views in made.values() for v in views if v.accepted and v.vector is not None)


def load_persons(
    folder_dir: Path, cache_dir: Path, workers: int, settings: Settings, service: ManyAnglesService
) -> list[Person]:
    folder = load_labelled_folder(folder_dir)
    gate = service.gate_threshold()
    cache = EmbeddingCache(cache_dir, settings, ("classic",), gate)
    firsts = frozenset(i.enrollment for i in folder.identities)
    seconds = frozenset(i.probes[0] for i in folder.identities if len(i.probes) >= 2)
    records, _ = embed_photos(settings, folder.all_images(), workers, firsts, ("classic",), gate, cache)
    augmented_2, _ = embed_photos(settings, sorted(seconds), workers, seconds, ("classic",), gate, cache)
    persons = []
    for identity in folder.identities:
        first = records[identity.enrollment]
        if first.vector is None or len(identity.probes) < 2 or records[identity.probes[0]].vector is None:
            continue
        second = augmented_2[identity.probes[0]]
        probes = tuple(v for p in identity.probes[1:] if (v := records[p].vector) is not None)
        everything = (identity.enrollment, *identity.probes)
        persons.append(
            Person(
                identity.name,
                (first.vector, records[identity.probes[0]].vector),  # type: ignore[arg-type]
                _accepted(first),
                _accepted(second),
                probes,
                tuple(v for p in everything if (v := records[p].vector) is not None),
            )
        )
    return persons


def _gallery(enrolled: list[Person], two: set[int], views: bool) -> GalleryIndex:
    vectors, owner, original = [], [], []
    for index, person in enumerate(enrolled):
        entries = [(person.photos[0], True)] + ([(v, False) for v in person.views] if views else [])
        if index in two:
            entries += [(person.photos[1], True)] + ([(v, False) for v in person.views_2] if views else [])
        for vector, is_original in entries:
            vectors.append(vector)
            owner.append(index)
            original.append(is_original)
    return GalleryIndex.build(np.stack(vectors), np.array(owner), np.array(original))


def run_split(
    persons: list[Person],
    rng: np.random.Generator,
    rule: str,
    threshold: float,
    offset: float,
    views: bool,
    share: float,
) -> tuple[Tally, dict[str, tuple[int, int]]]:
    """The split's tally, and each enrolled person's (misses, mated searches)."""
    order = rng.permutation(len(persons))
    enrolled = [persons[i] for i in order[: len(order) // 2]]
    strangers = [persons[i] for i in order[len(order) // 2 :]]
    two = set(rng.permutation(len(enrolled))[: round(share * len(enrolled))].tolist())
    index = _gallery(enrolled, two, views)
    impostor = np.stack([v for p in strangers for v in p.all_photos])
    scores = person_scores(rule, index, impostor, offset if views else 0.0)
    top = scores.argmax(axis=1)
    accepted = scores.max(axis=1) >= threshold
    fa_two = int(sum(1 for t, a in zip(top, accepted, strict=True) if a and int(t) in two))
    tally = Tally(fa_two=fa_two, fa_one=int(accepted.sum()) - fa_two, impostor=len(impostor))
    per_person: dict[str, tuple[int, int]] = {}
    for index_, person in enumerate(enrolled):
        if not person.probes:
            continue
        mated = person_scores(rule, index, np.stack(person.probes), offset if views else 0.0)
        hit = (mated.argmax(axis=1) == index_) & (mated.max(axis=1) >= threshold)
        misses, n = int((~hit).sum()), len(person.probes)
        per_person[person.name] = (misses, n)
        if index_ in two:
            tally += Tally(miss_two=misses, mated_two=n)
        else:
            tally += Tally(miss_one=misses, mated_one=n)
    return tally, per_person


def paired_gain(
    without: dict[str, list[int]], with_: dict[str, list[int]], resamples: int = 1000
) -> tuple[float, float, float]:
    """FNIR with a second photo less FNIR without it (points), over the same persons and
    searches, with a 95% bootstrap interval over identities. Values: name -> [misses, n]."""
    names = sorted(set(without) & set(with_))
    a = np.array([without[n] for n in names], dtype=np.float64)
    b = np.array([with_[n] for n in names], dtype=np.float64)

    def diff(rows: np.ndarray) -> float:
        return 100 * (b[rows, 0].sum() / b[rows, 1].sum() - a[rows, 0].sum() / a[rows, 1].sum())

    rng = np.random.default_rng(0)
    boot = [diff(rng.integers(0, len(names), len(names))) for _ in range(resamples)]
    low, high = np.percentile(boot, [2.5, 97.5])
    return diff(np.arange(len(names))), float(low), float(high)


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f}%" if b else "-"


def main() -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--splits", type=int, default=50)
    parser.add_argument("--shares", default="0,0.5,1", help="the shares of enrolled persons given a second photo")
    args, settings, service = start(parser)
    thresholds = dict(service.model.shipped.identify_at(0.01))
    offsets = dict(service.model.shipped.views_offsets)
    persons = load_persons(args.dir, args.cache, args.workers, settings, service)
    log.info("%s", describe_machine())
    log.info("%d identities with a second photo and at least one more to search with", len(persons))
    log.info(
        "| rule | views | threshold / offset | with two photos | FPIR | false accepts on two-photo persons"
        " | FNIR two-photo | FNIR one-photo |"
    )
    log.info("|---|---|---|---|---|---|---|---|")
    by_share: dict[tuple[str, bool, float], dict[str, list[int]]] = {}
    for rule in RULES:
        for views, share in itertools.product((False, True), [float(s) for s in args.shares.split(",")]):
            total = Tally()
            summed: dict[str, list[int]] = {}
            for split in range(args.splits):
                rng = np.random.default_rng(split)
                tally, per_person = run_split(
                    persons, rng, rule, thresholds[rule], offsets.get(rule, 0.0), views, share
                )
                total += tally
                for name, (misses, n) in per_person.items():
                    summed.setdefault(name, [0, 0])
                    summed[name][0] += misses
                    summed[name][1] += n
            by_share[(rule, views, share)] = summed
            fa = total.fa_two + total.fa_one
            log.info(
                "| %s | %s | %.4f / %.4f | %.0f%% | %s (%d of %d) | %s (%d of %d) | %s | %s |",
                rule,
                "yes" if views else "no",
                thresholds[rule],
                offsets.get(rule, 0.0) if views else 0.0,
                100 * share,
                _pct(fa, total.impostor),
                fa,
                total.impostor,
                _pct(total.fa_two, fa),
                total.fa_two,
                fa,
                _pct(total.miss_two, total.mated_two),
                _pct(total.miss_one, total.mated_one),
            )
    log.info("\nWhat a second photo does to a person's misses (the same persons and searches, every split):")
    for (name, views, share), summed in by_share.items():
        if share == 1.0 and (name, views, 0.0) in by_share:
            gain, low, high = paired_gain(by_share[(name, views, 0.0)], summed)
            log.info(
                "  %s, views %s: FNIR %+.1f points [95%% CI %+.1f to %+.1f]",
                name,
                "yes" if views else "no",
                gain,
                low,
                high,
            )


if __name__ == "__main__":
    main()

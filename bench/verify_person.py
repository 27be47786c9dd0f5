"""A photo against one enrolled person (``POST /v1/persons/{id}/verify``): do the views help?

One to one: a probe claims to be one enrolled person and is accepted when its score against that
person (the matching rule over their entries, less the views offset when they have views) clears
the threshold. Every identity of the folder is enrolled from its photo 1, either alone or with
its default classic views (gate-accepted). Genuine claims: each probe (photos 2+) against its own
person; impostor claims: each probe against every other person. Reported per rule: at the
identification threshold and views offset (what verify answered with ``verify_fmr`` 0) and at
the shipped one-to-one threshold (FMR 0.1%: what it answers by default), FNMR and FMR; and FNMR where the
impostor claims give FMR 1e-3 (threshold read off them in sample). Intervals: 95% bootstrap over
identities (a resampled identity brings its probes, genuine and impostor claims together); the
views' effect is paired (the same probes, with and without views). Then, out of sample: the
threshold at FMR 1e-3 read off half the identities, FMR and FNMR measured on the other half.

Reads the embeddings of ``manyangles eval DIR --cache CACHE`` (embedded here where it misses).

    python -m bench.verify_person ../shared/faces --cache out/eval_cache
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from bench.cached_study import cached_eval_data, start, study_parser
from bench.machine import describe_machine
from core.augment.classic import CLASSIC_DEFAULT_VIEWS
from core.evaluation.eval_data import EvalData, gallery_index
from core.search.rules import RULES, person_scores

log = logging.getLogger("bench.verify_person")
TARGET_FMR = 1e-3
VIEWS = tuple(f"classic:{name}" for name in CLASSIC_DEFAULT_VIEWS)  # as the eval cache names them


@dataclass(frozen=True)
class Claims:
    """Per probe (with a face): its genuine score and its impostor scores (one per other person)."""

    owner: np.ndarray  # (Q,) identity of the probe
    genuine: np.ndarray  # (Q,)
    impostor: np.ndarray  # (Q, P - 1)
    scores: np.ndarray  # (Q, P): every probe against every person


def claims(data: EvalData, rule: str, views: bool, offset: float) -> Claims:
    everyone = np.arange(len(data.identities))
    index = gallery_index(data, everyone, VIEWS if views else None)
    if views and bool(index.original.all()):
        raise SystemExit("no view of the default set in the cache: run `manyangles eval DIR --cache CACHE` first")
    found = data.probe_found
    owner = data.probe_identity[found]
    scores = person_scores(rule, index, data.probe_vectors[found], offset if views else 0.0)
    rows = np.arange(len(owner))
    genuine = scores[rows, owner]
    others = np.ones_like(scores, dtype=bool)
    others[rows, owner] = False
    return Claims(owner, genuine, scores[others].reshape(len(owner), -1), scores)


def held_out(c: Claims, halves: int, seed: int = 0) -> tuple[list[float], list[float]]:
    """FMR and FNMR on one half of the identities at the threshold read off the other half's
    impostor claims (claims among its own persons) at ``TARGET_FMR``; each split both ways."""
    rng = np.random.default_rng(seed)
    identities = np.unique(c.owner)
    fmrs, fnmrs = [], []
    for _ in range(halves):
        order = rng.permutation(identities)
        split = (order[: order.size // 2], order[order.size // 2 :])
        for fit, test in (split, split[::-1]):
            threshold = at_fmr(_among(c, fit), TARGET_FMR)
            fmrs.append(float(np.mean(_among(c, test) >= threshold)))
            fnmrs.append(float(np.mean(c.genuine[np.isin(c.owner, test)] < threshold)))
    return fmrs, fnmrs


def _among(c: Claims, persons: np.ndarray) -> np.ndarray:
    """The impostor claims of these persons' probes against the other persons of the set."""
    rows = np.isin(c.owner, persons)
    block = c.scores[np.ix_(rows, persons)]
    own = c.owner[rows][:, None] == persons[None, :]
    return block[~own]


def at_fmr(impostor: np.ndarray, fmr: float) -> float:
    """The lowest threshold at which at most ``fmr`` of the impostor scores clear it."""
    ordered = np.sort(impostor.ravel())[::-1]
    allowed = int(np.floor(fmr * ordered.size))
    return float(np.nextafter(ordered[allowed], np.float32(np.inf)))


def fnmr(c: Claims, threshold: float, rows: np.ndarray | None = None) -> float:
    genuine = c.genuine if rows is None else c.genuine[rows]
    return float(np.mean(genuine < threshold))


def resamples(owner: np.ndarray, n: int, seed: int = 0) -> list[np.ndarray]:
    """Probe rows of ``n`` bootstrap resamples of the identities."""
    rng = np.random.default_rng(seed)
    identities = np.unique(owner)
    by_identity = {i: np.flatnonzero(owner == i) for i in identities}
    return [np.concatenate([by_identity[i] for i in rng.choice(identities, identities.size)]) for _ in range(n)]


def interval(values: list[float]) -> str:
    low, high = np.percentile(values, [2.5, 97.5])
    return f"[{100 * low:.1f}-{100 * high:.1f}]"


def main() -> None:
    parser = study_parser(__doc__)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--halves", type=int, default=20, help="random halves of the identities for the held-out check")
    args, settings, service = start(parser)
    data = cached_eval_data(args, settings, service)
    thresholds, offsets = dict(service.model.shipped.identify_at(0.01)), dict(service.model.shipped.views_offsets)
    log.info("%s", describe_machine())
    log.info(
        "| rule | views | identification threshold / offset | FNMR at it [95%% CI] | FMR at it (pairs over / pairs) "
        "| shipped one-to-one threshold (FMR 0.1%%): FNMR [95%% CI], FMR "
        "| FNMR at FMR %g [95%% CI] | views' effect on FNMR, shipped threshold [95%% CI] "
        "| views' effect on FNMR at FMR %g [95%% CI] |",
        TARGET_FMR,
        TARGET_FMR,
    )
    log.info("|---|---|---|---|---|---|---|---|---|")
    for rule in RULES:
        threshold, offset = thresholds[rule], offsets.get(rule, 0.0)
        one_to_one = service.model.shipped.verify[rule]
        both = {views: claims(data, rule, views, offset) for views in (False, True)}
        boot = resamples(both[False].owner, args.resamples)
        for views, c in both.items():
            over = int((c.impostor >= threshold).sum())
            calibrated = at_fmr(c.impostor, TARGET_FMR)
            rate = fnmr(c, calibrated)
            rates = [fnmr(c, at_fmr(c.impostor[rows], TARGET_FMR), rows) for rows in boot]
            shipped = [fnmr(c, threshold, rows) for rows in boot]
            verify = [fnmr(c, one_to_one, rows) for rows in boot]
            verify_cell = (
                f"{one_to_one:.4f}: {100 * fnmr(c, one_to_one):.1f}% {interval(verify)}, "
                f"{float(np.mean(c.impostor >= one_to_one)):.1e}"
            )
            effect = " | "
            if views:
                base = both[False]
                diffs = [fnmr(c, threshold, rows) - fnmr(base, threshold, rows) for rows in boot]
                delta = fnmr(c, threshold) - fnmr(base, threshold)
                at_base = [fnmr(base, at_fmr(base.impostor[rows], TARGET_FMR), rows) for rows in boot]
                equal = [a - b for a, b in zip(rates, at_base, strict=True)]
                level = rate - fnmr(base, at_fmr(base.impostor, TARGET_FMR))
                effect = f"{100 * delta:+.1f} points {interval(diffs)} | {100 * level:+.1f} points {interval(equal)}"
            log.info(
                "| %s | %s | %.4f / %.4f | %.1f%% %s | %.1e (%d / %d) | %s | %.1f%% %s | %s |",  # effect: 2 cells
                rule,
                "+10 classic" if views else "none",
                threshold,
                offset if views else 0.0,
                100 * fnmr(c, threshold),
                interval(shipped),
                over / c.impostor.size,
                over,
                c.impostor.size,
                verify_cell,
                100 * rate,
                interval(rates),
                effect,
            )
    report_held_out(data, RULES, offsets, args.halves)


def report_held_out(data: EvalData, rules: tuple[str, ...], offsets: dict[str, float], halves: int) -> None:
    """The threshold at FMR ``TARGET_FMR`` read off half the identities, measured on the others."""
    log.info("")
    log.info(
        "| rule | views | FMR out of sample, target %g: mean (5-95%% of halves) | FNMR out of sample: mean (5-95%%) |",
        TARGET_FMR,
    )
    log.info("|---|---|---|---|")
    for rule in rules:
        for views in (False, True):
            fmrs, fnmrs = held_out(claims(data, rule, views, offsets.get(rule, 0.0)), halves)
            low, high = np.percentile(fmrs, [5, 95])
            f_low, f_high = np.percentile(fnmrs, [5, 95])
            log.info(
                "| %s | %s | %.1e (%.1e-%.1e) | %.1f%% (%.1f-%.1f) |",
                rule,
                "+10 classic" if views else "none",
                float(np.mean(fmrs)),
                low,
                high,
                100 * float(np.mean(fnmrs)),
                100 * f_low,
                100 * f_high,
            )


if __name__ == "__main__":
    main()

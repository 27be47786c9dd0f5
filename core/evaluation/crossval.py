"""Cross-validated open-set identification: which matching rule and which views to ship.

Protocol, repeated for ``seeds`` random splits of the identities:

- half the identities are enrolled (their first photo, plus the condition's generated views);
  the probes of the other half are impostor searches, the probes of the enrolled half are mated;
- the identities are dealt into ``folds`` folds (enrolled and non-enrolled alike); for each
  fold the threshold at the target FPIR is calibrated on the impostor searches of the OTHER
  folds, and FNIR (mated searches) and FPIR (impostor searches) are measured on the held-out
  fold: every figure is out of sample;
- the gallery is the same for all folds of a split, so a threshold is calibrated on the gallery
  it is used with.

Reports per condition and rule: mean FNIR at each FPIR over all folds of all splits, a 95%
bootstrap interval over identities (all of an identity's searches resampled together), rank-1
(closed set, everyone enrolled), how many folds are worse than original-only, and for a mixed
gallery (half the enrolled persons with views) which half the false accepts land on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from core.evaluation.calibration import calibrate_views_offsets
from core.evaluation.eval_data import EvalData, gallery_index, top_searches
from core.evaluation.metrics import threshold_for_fpir
from core.search.rules import RULES

FPIRS = (0.01, 0.1)


@dataclass(frozen=True)
class RuleResult:
    fnir: dict[str, float]  # "0.01" -> mean out-of-fold FNIR
    fnir_ci: dict[str, tuple[float, float]]  # bootstrap 95% interval over identities
    fpir: dict[str, float]  # mean out-of-fold FPIR at the calibrated threshold
    threshold: dict[str, float]  # mean calibrated threshold
    rank1: float
    worse_folds: dict[str, int]  # folds where FNIR > original-only's (same split, same fold)
    folds: int
    mean_gallery_size: float
    mixed: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CrossValReport:
    conditions: dict[str, dict[str, RuleResult]]  # condition -> rule -> result
    seeds: int
    folds: int
    n_identities: int
    n_probes: int

    def selected(self, tolerance: float = 0.005) -> tuple[str, str] | None:
        """The (condition, rule) to ship: among those whose mean FNIR at 1% and at 10% is not
        above original-only's (within ``tolerance``: half a point, about one search per fold),
        the fewest folds worse than original-only at either rate, then the lowest FNIR at 1%."""
        base = next(iter(self.conditions.get("original", {}).values()), None)  # the same under every rule
        if base is None:
            return None
        candidates = [
            (r.worse_folds["0.01"] + r.worse_folds["0.1"], r.fnir["0.01"], condition, rule)
            for condition, rules in self.conditions.items()
            if condition != "original"
            for rule, r in rules.items()
            if all(r.fnir[k] <= base.fnir[k] + tolerance for k in ("0.01", "0.1"))
        ]
        if not candidates:
            return None
        _, _, condition, rule = min(candidates)
        return condition, rule

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _deal(n: int, folds: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % folds)


def _mixed(
    data: EvalData, enrolled: np.ndarray, views: tuple[str, ...], half: np.ndarray, rule: str, offset: float
) -> dict[str, float]:
    """A gallery where the ``half`` of the enrolled persons have views, threshold at FPIR 10% in
    sample (a share, not a rate: at 1% only 2-3 false accepts exist): the share of false accepts
    landing on the with-views half, and FNIR of each half and of all."""
    index = gallery_index(data, enrolled, views, with_views=half)
    mated = np.isin(data.probe_identity, enrolled)
    score, hit, top = top_searches(data, index, enrolled, rule, offset)
    threshold = threshold_for_fpir(score[~mated], 0.1)
    false_accepts = (~mated) & (score >= threshold)
    own_half = half[np.searchsorted(enrolled, data.probe_identity[mated])]
    accepted = (hit & (score >= threshold))[mated]
    out = {
        "fnir": 1.0 - float(accepted.mean()),
        "fnir_with": 1.0 - float(accepted[own_half].mean()),
        "fnir_without": 1.0 - float(accepted[~own_half].mean()),
        "views_offset": offset,
    }
    if false_accepts.any():
        out["with_views_share"] = float(half[top[false_accepts]].mean())
    return out


Key = tuple[str, str, str]  # condition, rule, FPIR ("0.01")


@dataclass
class _Tallies:
    """What the splits measured so far. Per (condition, rule, FPIR): each fold's FNIR, FPIR and
    threshold, and per identity its held-out mated searches and their misses (the bootstrap's
    unit); per condition the gallery's size in each split; per "condition|rule" the mixed
    gallery's figures in each split."""

    n_id: int
    fnir: dict[Key, list[float]] = field(default_factory=dict)
    fpir: dict[Key, list[float]] = field(default_factory=dict)
    threshold: dict[Key, list[float]] = field(default_factory=dict)
    misses: dict[Key, np.ndarray] = field(default_factory=dict)
    totals: dict[Key, np.ndarray] = field(default_factory=dict)
    sizes: dict[str, list[int]] = field(default_factory=dict)
    mixed: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add_fold(
        self,
        data: EvalData,
        key: Key,
        fpir: float,
        scored: tuple[np.ndarray, np.ndarray],
        mated: np.ndarray,
        in_fold: np.ndarray,
    ) -> None:
        """One fold: the threshold at ``fpir`` calibrated on the impostor searches of the other
        folds, FNIR and FPIR measured on this one's (``scored``: each search's top score and
        whether it is the right person)."""
        score, hit = scored
        miss_count = self.misses.setdefault(key, np.zeros(self.n_id))
        total_count = self.totals.setdefault(key, np.zeros(self.n_id))
        train = (~mated) & ~in_fold
        held_mated = mated & in_fold
        held_impostor = (~mated) & in_fold
        if not train.any() or not held_mated.any() or not held_impostor.any():
            return  # a tiny set: this fold has nothing to calibrate or to measure
        threshold = threshold_for_fpir(score[train], fpir)
        accepted = hit & (score >= threshold)
        self.fnir.setdefault(key, []).append(1.0 - accepted[held_mated].mean())
        self.fpir.setdefault(key, []).append(float((score[held_impostor] >= threshold).mean()))
        self.threshold.setdefault(key, []).append(threshold)
        np.add.at(miss_count, data.probe_identity[held_mated], ~accepted[held_mated])
        np.add.at(total_count, data.probe_identity[held_mated], 1)


@dataclass(frozen=True)
class _AtFpir:
    """One rule's figures at one FPIR, over every fold of every split."""

    fnir: float
    interval: tuple[float, float]
    fpir: float
    threshold: float
    worse_folds: int


def _split(n_id: int, folds: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half the identities enrolled, the others not, and each half dealt into ``folds`` folds:
    (enrolled, others, each identity's fold)."""
    order = rng.permutation(n_id)
    enrolled, others = np.sort(order[: n_id // 2]), np.sort(order[n_id // 2 :])
    fold_of = np.empty(n_id, dtype=np.int64)
    fold_of[enrolled] = _deal(len(enrolled), folds, rng)
    fold_of[others] = _deal(len(others), folds, rng)
    return enrolled, others, fold_of


def _tally_split(
    tallies: _Tallies,
    data: EvalData,
    conditions: dict[str, tuple[str, ...] | None],
    rules: tuple[str, ...],
    enrolled: np.ndarray,
    fold_of: np.ndarray,
    folds: int,
) -> None:
    """Every condition and rule on one split, fold by fold."""
    is_enrolled = np.zeros(tallies.n_id, dtype=bool)
    is_enrolled[enrolled] = True
    mated = is_enrolled[data.probe_identity]
    probe_fold = fold_of[data.probe_identity]
    for condition, views in conditions.items():
        index = gallery_index(data, enrolled, views)
        tallies.sizes.setdefault(condition, []).append(int(index.vectors.shape[0]))
        for rule in rules:
            score, hit, _ = top_searches(data, index, enrolled, rule)
            for fpir in FPIRS:
                for f in range(folds):
                    key = (condition, rule, f"{fpir:g}")
                    tallies.add_fold(data, key, fpir, (score, hit), mated, probe_fold == f)


def _tally_mixed(
    tallies: _Tallies,
    data: EvalData,
    conditions: dict[str, tuple[str, ...] | None],
    rules: tuple[str, ...],
    split: tuple[np.ndarray, np.ndarray],
    half: np.ndarray,
) -> None:
    """The mixed gallery of one split (``split``: enrolled, others; ``half`` of the enrolled with
    views), for every condition with views: without the views offset, then with it."""
    enrolled, others = split
    for condition, views in conditions.items():
        if not views:
            continue
        # the offset is calibrated with the roles swapped (the other half as the gallery):
        # none of the mixed gallery's persons or impostor searches take part in it
        offsets = calibrate_views_offsets(data.subset(others), views, rules)
        for rule in rules:
            stats = tallies.mixed.setdefault(f"{condition}|{rule}", {})
            for suffix, offset in (("", 0.0), ("_offset", offsets[rule][0])):
                for name, value in _mixed(data, enrolled, views, half, rule, offset).items():
                    if name != "views_offset" or suffix:  # the offset once, under its own name
                        stats.setdefault(name if name == "views_offset" else name + suffix, []).append(value)


def _at_fpir(tallies: _Tallies, key: Key, base: Key, samples: np.ndarray) -> _AtFpir:
    """The means over every fold, the bootstrap interval over identities (``samples``: one row of
    identities per resample; none: NaN), and the folds worse than ``base``'s."""
    boot = tallies.misses[key][samples].sum(axis=1) / np.maximum(tallies.totals[key][samples].sum(axis=1), 1)
    interval = (
        (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))) if len(samples) else (math.nan, math.nan)
    )
    worse = int(sum(a > b + 1e-12 for a, b in zip(tallies.fnir[key], tallies.fnir[base])))
    return _AtFpir(
        float(np.mean(tallies.fnir[key])),
        interval,
        float(np.mean(tallies.fpir[key])),
        float(np.mean(tallies.threshold[key])),
        worse,
    )


def _rule_result(
    tallies: _Tallies, condition: str, rule: str, base: str, samples: np.ndarray, rank1: float, folds: int
) -> RuleResult:
    """One condition and rule, compared fold by fold with condition ``base`` under the same rule."""
    out = {
        f"{fpir:g}": _at_fpir(tallies, (condition, rule, f"{fpir:g}"), (base, rule, f"{fpir:g}"), samples)
        for fpir in FPIRS
    }
    stats = tallies.mixed.get(f"{condition}|{rule}", {})
    return RuleResult(
        fnir={k: v.fnir for k, v in out.items()},
        fnir_ci={k: v.interval for k, v in out.items()},
        fpir={k: v.fpir for k, v in out.items()},
        threshold={k: v.threshold for k, v in out.items()},
        rank1=rank1,
        worse_folds={k: v.worse_folds for k, v in out.items()},
        folds=folds,
        mean_gallery_size=float(np.mean(tallies.sizes[condition])),
        mixed={k: float(np.mean(v)) for k, v in stats.items() if v},
    )


def _results(
    tallies: _Tallies,
    data: EvalData,
    conditions: dict[str, tuple[str, ...] | None],
    rules: tuple[str, ...],
    folds: int,
    bootstrap: int,
) -> dict[str, dict[str, RuleResult]]:
    """Per condition and rule, the tallies summed up; rank-1 on a closed set (everyone enrolled)."""
    everyone = np.arange(tallies.n_id)
    results: dict[str, dict[str, RuleResult]] = {}
    rng = np.random.default_rng(12345)
    samples = rng.integers(0, tallies.n_id, size=(bootstrap, tallies.n_id))
    for condition, views in conditions.items():
        closed = gallery_index(data, everyone, views)
        base = "original" if "original" in conditions else condition
        results[condition] = {}
        for rule in rules:
            _, hit, _ = top_searches(data, closed, everyone, rule)
            results[condition][rule] = _rule_result(tallies, condition, rule, base, samples, float(hit.mean()), folds)
    return results


def cross_validate(
    data: EvalData,
    conditions: dict[str, tuple[str, ...] | None],
    rules: tuple[str, ...] = RULES,
    seeds: int = 10,
    folds: int = 5,
    bootstrap: int = 1000,
) -> CrossValReport:
    """The study described at the top of this module; ``bootstrap=0`` leaves the intervals out
    (NaN), for callers that only need the means."""
    n_id = len(data.identities)
    folds = max(2, min(folds, n_id // 2))  # every fold holds at least one identity of each half
    tallies = _Tallies(n_id)
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        enrolled, others, fold_of = _split(n_id, folds, rng)
        _tally_split(tallies, data, conditions, rules, enrolled, fold_of, folds)
        half = np.zeros(len(enrolled), dtype=bool)  # the mixed gallery: half the persons with views
        half[rng.permutation(len(enrolled))[: len(enrolled) // 2]] = True
        _tally_mixed(tallies, data, conditions, rules, (enrolled, others), half)
    results = _results(tallies, data, conditions, rules, seeds * folds, bootstrap)
    return CrossValReport(results, seeds, folds, n_id, int(len(data.probe_identity)))


def _pct(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def format_crossval(report: CrossValReport) -> str:
    """One row per condition and rule: FNIR at 1% and 10% with intervals, rank-1, worse folds."""
    lines = [
        f"cross-validated open set: {report.seeds} splits x {report.folds} folds over "
        f"{report.n_identities} identities ({report.n_probes} probes); thresholds calibrated out of fold",
        f"{'condition':<30}{'rule':<7}{'FNIR@1% [95% CI]':>24}{'FNIR@10% [95% CI]':>24}{'rank-1':>8}"
        f"{'worse folds 1%/10%':>20}{'FPIR@1%':>9}",
    ]
    for condition, rules in report.conditions.items():
        for rule, r in rules.items():
            ci1, ci10 = r.fnir_ci["0.01"], r.fnir_ci["0.1"]
            lines.append(
                f"{condition:<30}{rule:<7}"
                f"{_pct(r.fnir['0.01']) + ' [' + _pct(ci1[0]) + '-' + _pct(ci1[1]) + ']':>24}"
                f"{_pct(r.fnir['0.1']) + ' [' + _pct(ci10[0]) + '-' + _pct(ci10[1]) + ']':>24}"
                f"{_pct(r.rank1):>8}"
                f"{str(r.worse_folds['0.01']) + '/' + str(r.worse_folds['0.1']) + ' of ' + str(r.folds):>20}"
                f"{_pct(r.fpir['0.01']):>9}"
            )
            if r.mixed and (condition, rule) == report.selected():
                lines.append(f"{'':<37}{format_mixed(r.mixed)}")
    choice = report.selected()
    lines.append(
        f"selected (not worse than original-only on average, fewest worse folds, then lowest FNIR@1%): "
        f"{choice[0]}, rule {choice[1]}"
        if choice
        else "selected: none (every view set is worse than original-only on average)"
    )
    return "\n".join(lines)


def format_mixed(m: dict[str, float]) -> str:
    """The mixed-gallery figures of one rule: without the views offset, then with it."""
    nan = float("nan")

    def one(suffix: str) -> str:
        return (
            f"false accepts on the with-views half {_pct(m.get('with_views_share' + suffix, nan))}, "
            f"FNIR {_pct(m.get('fnir' + suffix, nan))} (with views {_pct(m.get('fnir_with' + suffix, nan))}, "
            f"without {_pct(m.get('fnir_without' + suffix, nan))})"
        )

    return (
        f"mixed gallery (half with views, FPIR 10%): {one('')}; with the views offset "
        f"{m.get('views_offset', nan):.4f}: {one('_offset')}"
    )

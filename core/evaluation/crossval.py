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
    # per (condition, rule): per split and fold FNIR/FPIR/threshold; per identity misses
    fold_fnir: dict[tuple[str, str, str], list[float]] = {}
    fold_fpir: dict[tuple[str, str, str], list[float]] = {}
    fold_thr: dict[tuple[str, str, str], list[float]] = {}
    misses: dict[tuple[str, str, str], np.ndarray] = {}
    totals: dict[tuple[str, str, str], np.ndarray] = {}
    sizes: dict[str, list[int]] = {}
    mixed: dict[str, dict[str, list[float]]] = {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(n_id)
        enrolled, others = np.sort(order[: n_id // 2]), np.sort(order[n_id // 2 :])
        fold_of = np.empty(n_id, dtype=np.int64)
        fold_of[enrolled] = _deal(len(enrolled), folds, rng)
        fold_of[others] = _deal(len(others), folds, rng)
        is_enrolled = np.zeros(n_id, dtype=bool)
        is_enrolled[enrolled] = True
        mated = is_enrolled[data.probe_identity]
        probe_fold = fold_of[data.probe_identity]
        for condition, views in conditions.items():
            index = gallery_index(data, enrolled, views)
            sizes.setdefault(condition, []).append(int(index.vectors.shape[0]))
            for rule in rules:
                score, hit, _ = top_searches(data, index, enrolled, rule)
                for fpir in FPIRS:
                    key = (condition, rule, f"{fpir:g}")
                    miss_count = misses.setdefault(key, np.zeros(n_id))
                    total_count = totals.setdefault(key, np.zeros(n_id))
                    for f in range(folds):
                        train = (~mated) & (probe_fold != f)
                        held_mated = mated & (probe_fold == f)
                        held_impostor = (~mated) & (probe_fold == f)
                        if not train.any() or not held_mated.any() or not held_impostor.any():
                            continue  # a tiny set: this fold has nothing to calibrate or to measure
                        threshold = threshold_for_fpir(score[train], fpir)
                        accepted = hit & (score >= threshold)
                        fold_fnir.setdefault(key, []).append(1.0 - accepted[held_mated].mean())
                        fold_fpir.setdefault(key, []).append(float((score[held_impostor] >= threshold).mean()))
                        fold_thr.setdefault(key, []).append(threshold)
                        np.add.at(miss_count, data.probe_identity[held_mated], ~accepted[held_mated])
                        np.add.at(total_count, data.probe_identity[held_mated], 1)
        half = np.zeros(len(enrolled), dtype=bool)  # the mixed gallery: half the persons with views
        half[rng.permutation(len(enrolled))[: len(enrolled) // 2]] = True
        for condition, views in conditions.items():
            if not views:
                continue
            # the offset is calibrated with the roles swapped (the other half as the gallery):
            # none of the mixed gallery's persons or impostor searches take part in it
            offsets = calibrate_views_offsets(data.subset(others), views, rules)
            for rule in rules:
                stats = mixed.setdefault(f"{condition}|{rule}", {})
                for suffix, offset in (("", 0.0), ("_offset", offsets[rule][0])):
                    for name, value in _mixed(data, enrolled, views, half, rule, offset).items():
                        if name != "views_offset" or suffix:  # the offset once, under its own name
                            stats.setdefault(name if name == "views_offset" else name + suffix, []).append(value)

    everyone = np.arange(n_id)
    results: dict[str, dict[str, RuleResult]] = {}
    rng = np.random.default_rng(12345)
    samples = rng.integers(0, n_id, size=(bootstrap, n_id))
    for condition, views in conditions.items():
        closed = gallery_index(data, everyone, views)
        results[condition] = {}
        for rule in rules:
            _, hit, _ = top_searches(data, closed, everyone, rule)
            out = {}
            for fpir in FPIRS:
                key = (condition, rule, f"{fpir:g}")
                boot = misses[key][samples].sum(axis=1) / np.maximum(totals[key][samples].sum(axis=1), 1)
                interval = (
                    (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5)))
                    if bootstrap
                    else (math.nan, math.nan)
                )
                base = fold_fnir[("original", rule, f"{fpir:g}")] if "original" in conditions else fold_fnir[key]
                worse = int(sum(a > b + 1e-12 for a, b in zip(fold_fnir[key], base)))
                out[f"{fpir:g}"] = (
                    float(np.mean(fold_fnir[key])),
                    interval,
                    float(np.mean(fold_fpir[key])),
                    float(np.mean(fold_thr[key])),
                    worse,
                )
            stats = mixed.get(f"{condition}|{rule}", {})
            results[condition][rule] = RuleResult(
                fnir={k: v[0] for k, v in out.items()},
                fnir_ci={k: v[1] for k, v in out.items()},
                fpir={k: v[2] for k, v in out.items()},
                threshold={k: v[3] for k, v in out.items()},
                rank1=float(hit.mean()),
                worse_folds={k: v[4] for k, v in out.items()},
                folds=seeds * folds,
                mean_gallery_size=float(np.mean(sizes[condition])),
                mixed={k: float(np.mean(v)) for k, v in stats.items() if v},
            )
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

"""Nested cross-validation: is the choice of rule and views still right for people not seen?

The study in crossval.py picks a (views, rule) on the same identities it reports on, so its
winner's figures are optimistic: among a dozen candidates within noise of each other, one wins
by chance. Here the whole selection procedure is tested on people it never saw, ``repeats``
times: the identities are split in two halves at random; the cross-validated study runs on the
first half and selects (``CrossValReport.selected``); the selected pair and original-only are
then measured (cross-validated the same way) on the second half. The change in FNIR on that
unseen half is what choosing this way is worth for new people.

The halves of different repeats overlap (they are drawn from the same people), so the spread
over repeats shows how much one unseen set of this size varies, not an interval of the mean.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from core.evaluation.crossval import FPIRS, cross_validate
from core.evaluation.eval_data import EvalData

log = logging.getLogger(__name__)

# below this many identities a half holds too few persons to calibrate a fold
MIN_IDENTITIES = 20


@dataclass(frozen=True)
class UnseenRepeat:
    """One split: what the seen half selected, and FNIR on the unseen half, selected vs original."""

    choice: tuple[str, str] | None  # (condition, rule); None: nothing beat original-only
    fnir: dict[str, float]  # the selected pair on the unseen half (original-only when None)
    original: dict[str, float]  # original-only on the unseen half
    shipped: dict[str, float]  # the configured default (views, rule) on the unseen half


@dataclass(frozen=True)
class NestedReport:
    repeats: list[UnseenRepeat]
    n_identities: int
    inner_seeds: int
    shipped: tuple[str, str]

    @property
    def picks(self) -> dict[str, int]:
        """How often each (condition, rule) was selected, most often first."""
        counts = Counter(
            "original only" if r.choice is None else f"{r.choice[0]} / {r.choice[1]}" for r in self.repeats
        )
        return dict(counts.most_common())

    def delta(self, key: str) -> np.ndarray:
        """Per repeat: FNIR of the selected pair minus original-only's on the unseen half."""
        return np.array([r.fnir[key] - r.original[key] for r in self.repeats])

    def summary(self) -> dict[str, dict[str, float]]:
        """Per FPIR: mean change, 5th-95th percentile over repeats, and how many repeats were
        worse; the same for the shipped default (``shipped_*``)."""
        out = {}
        for key in (f"{f:g}" for f in FPIRS):
            d = self.delta(key)
            shipped = np.array([r.shipped[key] - r.original[key] for r in self.repeats])
            out[key] = {
                "mean_delta": float(d.mean()),
                "p5": float(np.percentile(d, 5)),
                "p95": float(np.percentile(d, 95)),
                "worse": int(np.sum(d > 1e-12)),
                "original": float(np.mean([r.original[key] for r in self.repeats])),
                "selected": float(np.mean([r.fnir[key] for r in self.repeats])),
                "shipped_delta": float(shipped.mean()),
                "shipped_worse": int(np.sum(shipped > 1e-12)),
            }
        return out

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "picks": self.picks, "summary": self.summary()}


def nested_selection(
    data: EvalData,
    conditions: dict[str, tuple[str, ...] | None],
    rules: tuple[str, ...],
    repeats: int = 20,
    inner_seeds: int = 5,
    seed: int = 1000,
    shipped: tuple[str, str] | None = None,
) -> NestedReport | None:
    """Select on one half of the identities, measure on the other, ``repeats`` times; None when
    there are fewer than ``MIN_IDENTITIES`` identities (each half must hold enough to calibrate).

    ``shipped``: the (condition, rule) the service uses by default, measured on the same unseen
    halves (default: the first condition after original-only under the first rule). It was
    chosen on every identity, so these halves are not unseen to it: a stability check only.
    """
    n_id = len(data.identities)
    if n_id < MIN_IDENTITIES:
        log.info("nested cross-validation skipped: %d identities, at least %d needed", n_id, MIN_IDENTITIES)
        return None
    if shipped is None:
        shipped = (next(c for c in conditions if c != "original"), rules[0])
    out = []
    for repeat in range(repeats):
        order = np.random.default_rng(seed + repeat).permutation(n_id)
        seen, unseen = data.subset(order[: n_id // 2]), data.subset(order[n_id // 2 :])
        choice = cross_validate(seen, conditions, rules, seeds=inner_seeds, bootstrap=0).selected()
        names = ("original", shipped[0], *((choice[0],) if choice else ()))
        measured = {name: conditions[name] for name in names}
        rule_set = tuple(dict.fromkeys((rules[0], shipped[1], *((choice[1],) if choice else ()))))
        report = cross_validate(unseen, measured, rule_set, seeds=inner_seeds, bootstrap=0)
        original = report.conditions["original"][rules[0]].fnir  # any rule: one entry per person
        selected = report.conditions[choice[0]][choice[1]].fnir if choice else original
        default = report.conditions[shipped[0]][shipped[1]].fnir
        out.append(UnseenRepeat(choice, dict(selected), dict(original), dict(default)))
        log.info("nested cross-validation: repeat %d/%d selected %s", repeat + 1, repeats, choice)
    return NestedReport(out, n_id, inner_seeds, shipped)


def format_nested(report: NestedReport | None) -> str:
    if report is None:
        return f"selection on unseen people: skipped (fewer than {MIN_IDENTITIES} identities)"
    lines = [
        f"selection on unseen people (nested): {len(report.repeats)} random halves of the "
        f"{report.n_identities} identities; the study selects on one half, FNIR measured on the other",
        "  selected: " + ", ".join(f"{k} x{n}" for k, n in report.picks.items()),
    ]
    for key, s in report.summary().items():
        lines.append(
            f"  FNIR@FPIR={100 * float(key):g}% on the unseen half: original {100 * s['original']:.1f}% -> "
            f"selected {100 * s['selected']:.1f}% ({100 * s['mean_delta']:+.2f} points; 5-95% of halves "
            f"{100 * s['p5']:+.1f} to {100 * s['p95']:+.1f}; worse in {s['worse']} of {len(report.repeats)})"
        )
    for key, s in report.summary().items():
        lines.append(
            f"  shipped default ({report.shipped[0]} / {report.shipped[1]}, chosen on every identity) on the same "
            f"halves, FNIR@FPIR={100 * float(key):g}%: {100 * s['shipped_delta']:+.2f} points, worse in "
            f"{s['shipped_worse']} of {len(report.repeats)}"
        )
    return "\n".join(lines)

"""Nested cross-validation (the study's choice checked on identities it never saw) and the
identity subsets it runs on, on hand-made data."""

from __future__ import annotations

import numpy as np
import pytest

from core.evaluation.eval_data import EvalData
from core.evaluation.nested import NestedReport, UnseenRepeat, format_nested, nested_selection


def _data(n: int) -> EvalData:
    """n identities on orthonormal axes, two probes each at cosine 0.9: separable, no misses."""
    dim = n + 1
    axes = np.eye(dim, dtype=np.float32)
    identity = np.repeat(np.arange(n), 2)
    probes = 0.9 * axes[identity] + np.sqrt(1 - 0.81) * axes[n]
    views = [{"classic:left": axes[i]} for i in range(n)]
    return EvalData([f"p{i}" for i in range(n)], axes[:n], views, identity, probes, np.ones(2 * n, bool))


def test_subset_keeps_the_identities_and_renumbers_their_probes():
    data = _data(5)
    sub = data.subset(np.array([3, 1]))
    assert sub.identities == ["p1", "p3"]
    np.testing.assert_array_equal(sub.originals, data.originals[[1, 3]])
    assert sub.probe_identity.tolist() == [0, 0, 1, 1]  # p1's two probes, then p3's
    np.testing.assert_array_equal(sub.probe_vectors, data.probe_vectors[[2, 3, 6, 7]])
    assert sub.views[1] is data.views[3]


def test_nested_selection_on_separable_data():
    data = _data(24)
    conditions = {"original": None, "+views": ("classic:left",)}
    report = nested_selection(data, conditions, ("top2", "max"), repeats=3, inner_seeds=2)
    assert report is not None and len(report.repeats) == 3 and report.n_identities == 24
    # no misses anywhere: every pair ties at 0 FNIR and 0 worse folds; the tie goes to the
    # smallest (condition, rule): "+views" / "max"
    assert report.picks == {"+views / max": 3}
    assert set(report.summary()) == {"0.01", "0.1"}
    for s in report.summary().values():
        assert s == {
            "mean_delta": 0.0,
            "p5": 0.0,
            "p95": 0.0,
            "worse": 0,
            "original": 0.0,
            "selected": 0.0,
            "shipped_delta": 0.0,
            "shipped_worse": 0,
        }
    assert report.shipped == ("+views", "top2")  # the first view condition under the first rule
    text = format_nested(report)
    assert "3 random halves of the 24 identities" in text and "+views / max x3" in text
    assert report.to_json()["picks"] == {"+views / max": 3}


def test_nested_selection_needs_enough_identities():
    assert nested_selection(_data(19), {"original": None, "+views": ("classic:left",)}, ("max",)) is None
    assert "skipped" in format_nested(None)


def test_summary_by_hand():
    repeats = [
        UnseenRepeat(
            ("a", "max"), {"0.01": 0.10, "0.1": 0.02}, {"0.01": 0.12, "0.1": 0.02}, {"0.01": 0.11, "0.1": 0.02}
        ),
        UnseenRepeat(None, {"0.01": 0.20, "0.1": 0.05}, {"0.01": 0.20, "0.1": 0.05}, {"0.01": 0.22, "0.1": 0.05}),
        UnseenRepeat(
            ("a", "max"), {"0.01": 0.15, "0.1": 0.04}, {"0.01": 0.14, "0.1": 0.03}, {"0.01": 0.14, "0.1": 0.03}
        ),
    ]
    report = NestedReport(repeats, 40, 2, ("a", "top2"))
    assert report.picks == {"a / max": 2, "original only": 1}
    s = report.summary()["0.01"]
    assert s["mean_delta"] == pytest.approx(-0.01 / 3) and s["worse"] == 1
    assert s["original"] == pytest.approx(0.46 / 3) and s["selected"] == pytest.approx(0.45 / 3)
    assert report.summary()["0.1"]["worse"] == 1
    assert s["shipped_delta"] == pytest.approx(0.01 / 3) and s["shipped_worse"] == 1  # -0.01, +0.02, 0

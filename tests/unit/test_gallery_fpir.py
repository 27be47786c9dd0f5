"""FPIR against the gallery's size: the formula, and what the service reports, by hand."""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest

from core.faces.embedders.shipped import Shipped
from core.faces.pipeline import ModelInfo
from core.search.fpir import expected_fpir, person_fmr_for, persons_within, rate_interval
from core.search.thresholds import gallery_fit
from core.store.gallery import GalleryStore
from core.store.records import StoredThreshold

from conftest import photo_bytes

MODEL = ModelInfo(
    "m1", 4, "cpu", "dlib", 1, Shipped(identify={0.01: {"top2": 0.9}}, person_fmrs={0.01: {"top2": 1.25e-4}})
)


def test_the_formula_by_hand():
    assert expected_fpir(0.5, 2) == pytest.approx(0.75)  # 1 - 0.5 ** 2
    assert expected_fpir(1e-4, 100) == pytest.approx(1 - 0.9999**100)
    assert expected_fpir(1e-4, 0) == 0.0 and expected_fpir(0.0, 1000) == 0.0
    assert person_fmr_for(0.75, 2) == pytest.approx(0.5)
    assert expected_fpir(person_fmr_for(0.01, 1000), 1000) == pytest.approx(0.01)
    assert persons_within(0.5, 0.75) == 2 and persons_within(0.5, 0.74) == 1
    # ln(0.99) / ln(1 - 1.25e-4) = 80.4: the shipped top2 threshold keeps FPIR 1% up to 80 persons
    assert persons_within(1.25e-4, 0.01) == 80 and persons_within(0.0, 0.01) is None


def test_the_rate_interval_by_hand():
    """Clopper-Pearson: no hit in n leaves [0, 1 - 0.025 ** (1 / n)], all n hits [0.025 ** (1 / n), 1];
    k of n mirrors n - k of n; at a tiny rate it is the Poisson interval, chi2 quantiles / 2n
    (for 8 hits: chi2(0.025; 16) = 6.9077 and chi2(0.975; 18) = 31.5264)."""
    assert rate_interval(0, 100) == (0.0, pytest.approx(1 - 0.025 ** (1 / 100)))
    assert rate_interval(10, 10) == (pytest.approx(0.025 ** (1 / 10)), 1.0)
    low, high = rate_interval(3, 20)
    assert rate_interval(17, 20) == (pytest.approx(1 - high), pytest.approx(1 - low))
    low, high = rate_interval(8, 63_797)  # the shipped dlib top2 rate: 8 of 63,797 pairs
    assert low == pytest.approx(6.9077 / 2 / 63_797, rel=2e-3) and high == pytest.approx(31.5264 / 2 / 63_797, rel=2e-3)
    assert low < 8 / 63_797 < high
    # many hits: the Wilson interval, close to p +- 1.96 sqrt(p (1 - p) / n) = 0.03 +- 0.00106
    low, high = rate_interval(3000, 100_000)
    assert low == pytest.approx(0.02894, abs=5e-5) and high == pytest.approx(0.03106, abs=5e-5)
    with pytest.raises(ValueError):
        rate_interval(5, 4)


def test_how_sure_the_shipped_rate_is(tmp_path: Path):
    """8 hits in 63,797 pairs: the rate 5.4e-5 to 2.5e-4, so FPIR 1% holds for 40 to 185 persons
    (ln 0.99 / ln(1 - 2.4707e-4) = 40.7; / ln(1 - 5.4141e-5) = 185.6), not just "80"."""
    shipped = replace(MODEL, shipped=replace(MODEL.shipped, fmr_pairs=63_797))
    fit = gallery_fit(GalleryStore(tmp_path), shipped, 0.01, "top2", 50)
    interval = fit.interval()
    assert interval is not None and (interval.hits, interval.pairs, interval.holds_up_to) == (8, 63_797, (40, 185))
    low, high = interval.person_fmr
    assert interval.expected_fpir == (pytest.approx(1 - (1 - low) ** 50), pytest.approx(1 - (1 - high) ** 50))
    assert gallery_fit(GalleryStore(tmp_path), MODEL, 0.01, "top2", 50).interval() is None  # pairs unknown
    store = GalleryStore(tmp_path)  # a calibration's own pairs replace the shipped ones
    store.set_threshold(StoredThreshold("m1", "fpir", "top2", 0.01, 0.95, 5000, "big", "t", 0.0, 1000, 400_000))
    calibrated = gallery_fit(store, shipped, 0.01, "top2", 1000).interval()
    assert calibrated is not None and calibrated.hits == 0 and calibrated.person_fmr[0] == 0.0
    assert calibrated.holds_up_to[1] is None  # a rate of 0 may be any lower: any number of persons
    outgrown = gallery_fit(GalleryStore(tmp_path / "shipped"), shipped, 0.01, "top2", 1000).warning
    assert outgrown is not None and "holds it up to ~80 persons (95% CI 40 to 185))" in outgrown


def test_the_shipped_rate_holds_a_small_gallery_and_warns_for_a_large_one(tmp_path: Path):
    store = GalleryStore(tmp_path)
    small = gallery_fit(store, MODEL, 0.01, "top2", 50)
    assert small.expected_fpir == pytest.approx(1 - (1 - 1.25e-4) ** 50)  # 0.62%
    assert (small.person_fmr, small.holds_up_to, small.calibrated_for, small.warning) == (1.25e-4, 80, None, None)
    large = gallery_fit(store, MODEL, 0.01, "top2", 1000)
    assert large.expected_fpir == pytest.approx(0.1175, abs=1e-4)
    need = math.ceil(10 / person_fmr_for(0.01, 1000))  # 995,003 pairs for 10 over a rate of 1.0e-5
    assert large.warning is not None and "1,000 persons enrolled, about 11.8% of searches" in large.warning
    assert "--gallery-size 1000" in large.warning and f"{need:,} impostor pairs" in large.warning
    assert "up to ~80 persons" in large.warning
    # 1.5x the target is the line: 120 persons answer 1.49%, 121 persons 1.50%
    assert gallery_fit(store, MODEL, 0.01, "top2", 120).warning is None
    assert gallery_fit(store, MODEL, 0.01, "top2", 121).warning is not None


def test_a_calibration_for_the_gallery_replaces_the_shipped_rate(tmp_path: Path):
    store = GalleryStore(tmp_path)
    store.set_threshold(StoredThreshold("m1", "fpir", "top2", 0.01, 0.95, 5000, "big", "t", 1.0e-5, 1000))
    fit = gallery_fit(store, MODEL, 0.01, "top2", 1000)
    assert (fit.person_fmr, fit.calibrated_for, fit.holds_up_to, fit.warning) == (1.0e-5, 1000, 1005, None)
    assert fit.expected_fpir == pytest.approx(1 - (1 - 1e-5) ** 1000)


def test_nothing_is_promised_without_a_measured_rate(tmp_path: Path):
    store = GalleryStore(tmp_path)
    unmeasured = gallery_fit(store, MODEL, 0.001, "top2", 1000)  # a target nothing was calibrated at
    assert (unmeasured.person_fmr, unmeasured.expected_fpir, unmeasured.warning) == (None, None, None)
    store.set_threshold(StoredThreshold("m1", "fpir", "top2", 0.01, 0.95, 500, "old", "t"))  # before rates
    older = gallery_fit(store, MODEL, 0.01, "top2", 1000)
    assert (older.person_fmr, older.holds_up_to, older.warning) == (None, None, None) and older.persons == 1000


def test_the_enrollment_that_outgrows_the_threshold_logs_it_once(service, caplog: pytest.LogCaptureFixture):
    """A calibration at 1% per person (the shipped threshold's value): one person answers FPIR
    1%, two 1.99% (past 1.5x the target: logged), three 2.97% (still past: not logged again)."""
    model = service.model
    threshold = service.threshold()
    row = StoredThreshold(model.name, "fpir", service.rule(), 0.01, threshold, 50, "t", "t", 0.01, 10)
    service.store.set_threshold(row)
    logged = []
    for who in ("Angelina_Jolie", "Matt_Damon", "Katy_Perry"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="core.service"):
            service.enroll(who.replace("_", " "), photo_bytes(who))
        logged.append([r.getMessage() for r in caplog.records if "persons enrolled" in r.getMessage()])
    assert logged[0] == [] and logged[2] == []
    assert len(logged[1]) == 1 and "with 2 persons enrolled, about 2.0% of searches" in logged[1][0]
    assert "holds it up to ~1 person)" in logged[1][0]
    assert service.gallery_fit().warning is not None  # /v1/thresholds keeps saying so

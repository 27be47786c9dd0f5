"""The views offset: persons with generated views and persons without on one scale.

Hand-computed examples for the rule, its calibration and the mixed-gallery report, then the
service end to end: a setting, a stored calibration and the model's shipped value, in that order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.evaluation.calibration import calibrate_rules, calibrate_views_offsets
from core.evaluation.crossval import _mixed
from core.evaluation.eval_data import EvalData
from core.search.matching import Matcher
from core.search.rules import RULES, VIEWS_OFFSET_TAIL, GalleryIndex, person_scores
from core.search.thresholds import resolve_views_offset
from core.settings import Settings
from core.store.records import GalleryMatrix, StoredThreshold
from tests.conftest import local_service, photo_bytes

E = np.eye(3, dtype=np.float32)
# person 0: original e1 and one view e2; person 1: original e3 only
INDEX = GalleryIndex.build(np.stack([E[0], E[1], E[2]]), np.array([0, 0, 1]), np.array([True, False, True]))
PROBE = np.array([[0.6, 0.8, 0.6]], dtype=np.float32) / np.float32(np.sqrt(1.36))


@pytest.mark.parametrize("rule", RULES)
def test_the_offset_lowers_only_persons_with_views(rule: str):
    plain = person_scores(rule, INDEX, PROBE)
    shifted = person_scores(rule, INDEX, PROBE, views_offset=0.05)
    np.testing.assert_allclose(shifted[0], [plain[0, 0] - 0.05, plain[0, 1]], atol=1e-6)
    assert INDEX.has_views.tolist() == [True, False]


def test_the_matcher_ranks_with_the_offset():
    gallery = GalleryMatrix(
        "m", np.stack([E[0], E[1], E[2]]), np.array([7, 7, 9]), ["original", "left", "original"], {}
    )
    # max: A scores 0.8 / 1.166 = 0.686 (its view), B 0.6 / 1.166 = 0.514; an offset of 0.2 reverses them
    assert [c.person_id for c in Matcher(gallery, "max").match(PROBE, 2, 0.5)[0].candidates] == [7, 9]
    result = Matcher(gallery, "max", views_offset=0.2).match(PROBE, 2, 0.5)[0]
    assert [c.person_id for c in result.candidates] == [9, 7]
    assert result.candidates[1].score == pytest.approx(0.8 / np.sqrt(1.36) - 0.2, abs=1e-6)


def _data() -> EvalData:
    """4 identities on axes e0..e3, probes 0.8 e_i + 0.6 e4; each view 0.8 e_i + 0.6 e4 too.

    Impostor probe j against person i (i != j): 0 against the original, 0.36 against the view.
    """
    n, dim = 4, 5
    axes = np.eye(dim, dtype=np.float32)
    identity = np.repeat(np.arange(n), 2)
    probes = 0.8 * axes[identity] + 0.6 * axes[4]
    views = [{"classic:left": (0.8 * axes[i] + 0.6 * axes[4]).astype(np.float32)} for i in range(n)]
    return EvalData([f"p{i}" for i in range(n)], axes[:n], views, identity, probes, np.ones(len(identity), bool))


def test_views_offsets_by_hand():
    out = calibrate_views_offsets(_data(), ("classic:left",))
    # impostor pairs: enrolled (p0, p2) x the 4 probes of p1, p3, then the other way: 16
    template = 0.6 / np.sqrt(1.8**2 + 0.6**2)  # mean: normalise(e_i + view) . e4
    expected = {"max": 0.36, "top2": 0.18, "blend": 0.18, "mean": round(0.6 * template, 4)}
    for rule in RULES:
        offset, pairs = out[rule]
        assert pairs == 16 and offset == pytest.approx(expected[rule], abs=1e-4)
    assert calibrate_views_offsets(_data(), None)["max"] == (0.0, 0)  # no views: nothing to correct


def test_thresholds_are_calibrated_with_the_offset():
    data = _data()
    # mixed gallery: every other enrolled person has the view; impostors score 0.36 (max) on those
    plain = calibrate_rules(data, ("classic:left",), target=0.1)
    corrected = calibrate_rules(data, ("classic:left",), target=0.1, offsets={"max": 0.36})
    assert plain["max"].threshold == pytest.approx(np.nextafter(np.float32(0.36), 1.0), abs=1e-6)
    assert corrected["max"].threshold == pytest.approx(0.0, abs=1e-6)  # all impostors back on the originals' 0


def test_mixed_gallery_share_by_hand():
    axes = np.eye(5, dtype=np.float32)
    # p0 (with the view 0.8 e0 + 0.6 e4) and p1 (no view) enrolled; 11 impostor probes of p2, p3:
    # ten with a share b of e4 (0.6 b on p0's view, 0 elsewhere), and one with 0.2 e1 (0.2 on p1)
    bs = [0.1, 0.2, 0.3, 0.4, 0.5, 0.15, 0.25, 0.35, 0.45, 0.55]
    impostors = [np.sqrt(1 - b * b) * axes[2 + i // 5] + b * axes[4] for i, b in enumerate(bs)]
    impostors.append(0.2 * axes[1] + np.sqrt(0.96) * axes[3])
    probes = np.stack([axes[0], axes[1], *impostors]).astype(np.float32)
    identity = np.array([0, 1] + [2] * 5 + [3] * 6)
    views = [{"classic:left": 0.8 * axes[0] + 0.6 * axes[4]}, {}, {}, {}]
    data = EvalData(["p0", "p1", "p2", "p3"], axes[:4], views, identity, probes, np.ones(len(identity), bool))
    enrolled, half = np.array([0, 1]), np.array([True, False])
    # FPIR 10% of 11: one false accept, the top impostor score: 0.6 x 0.55 = 0.33, on p0's view
    out = _mixed(data, enrolled, ("classic:left",), half, "max", 0.0)
    assert out["with_views_share"] == 1.0 and out["fnir"] == 0.0 and out["views_offset"] == 0.0
    # less 0.36 for p0: every view score is below p1's 0, the top impostor is the 0.2 on p1
    shifted = _mixed(data, enrolled, ("classic:left",), half, "max", 0.36)
    assert shifted["with_views_share"] == 0.0 and shifted["fnir"] == 0.0  # p0's own probe: 1 - 0.36


def test_the_service_resolves_the_offset_setting_then_the_store_then_the_model(tmp_path: Path, default_models):
    service = local_service(Settings(data_dir=tmp_path / "data"), default_models)
    model = service.model
    rule = service.rule()  # the default model's: blend
    assert service.views_offset() == model.shipped.views_offsets[rule] == -0.0005  # shipped with the model
    service.store.set_threshold(
        StoredThreshold(model.name, "views_offset", rule, VIEWS_OFFSET_TAIL, 0.0321, 100, "faces", "now")
    )
    assert service.views_offset() == 0.0321
    assert resolve_views_offset(service.store, model, "top2") == model.shipped.views_offsets["top2"]
    explicit = local_service(Settings(data_dir=tmp_path / "data", views_offset=0.0), default_models)
    assert explicit.views_offset() == 0.0


def test_identify_scores_persons_with_views_lower_by_the_offset(tmp_path: Path, default_models):
    settings = Settings(data_dir=tmp_path / "data", views_offset=0.0)
    plain = local_service(settings, default_models)
    plain.enroll("Barack Obama", photo_bytes("Barack_Obama"), augment=True, views=["left", "smiling"])
    plain.enroll("George Clooney", photo_bytes("George_Clooney"))
    probe = photo_bytes("Barack_Obama", 3)
    before = {c.name: c.score for c in plain.identify(probe).faces[0].match.candidates}
    shifted = local_service(settings.model_copy(update={"views_offset": 0.05}), default_models)
    after = {c.name: c.score for c in shifted.identify(probe).faces[0].match.candidates}
    assert after["Barack Obama"] == pytest.approx(before["Barack Obama"] - 0.05, abs=1e-5)
    assert after["George Clooney"] == pytest.approx(before["George Clooney"], abs=1e-6)  # no views

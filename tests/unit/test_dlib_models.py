"""The embedded default: dlib HOG detection, landmarks, chips and the ResNet embedder."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.errors import MultipleFaces, NoFaceFound
from core.faces.decode import decode_image
from core.faces.recognition import FaceEngine, select_face

from conftest import no_face_jpeg, photo, photo_bytes, side_by_side

LIMITS = {"max_bytes": 20 * 1024 * 1024, "max_pixels": 50_000_000}


def rgb_of(data: bytes) -> np.ndarray:
    return decode_image(data, **LIMITS).rgb


def test_one_face_with_landmarks_inside_the_box(dlib_models):
    rgb = rgb_of(photo_bytes("Barack_Obama"))
    faces = dlib_models.detector.detect(rgb)
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.bbox
    assert face.landmarks5.shape == (5, 2) and face.landmarks68.shape == (68, 2)
    assert (face.landmarks5[:, 0] > x1).all() and (face.landmarks5[:, 0] < x2).all()
    assert (face.landmarks5[:, 1] > y1).all() and (face.landmarks5[:, 1] < y2 + 0.1 * (y2 - y1)).all()
    left_eye, right_eye, nose, mouth_l, mouth_r = face.landmarks5
    assert left_eye[0] < right_eye[0] and mouth_l[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])


def test_small_faces_are_found_by_upsampling(dlib_models):
    img = Image.open(photo("Barack_Obama")).convert("RGB")
    small = img.resize((img.width // 6, img.height // 6))
    buf = io.BytesIO()
    small.save(buf, format="JPEG")
    faces = dlib_models.detector.detect(rgb_of(buf.getvalue()))
    assert len(faces) == 1 and faces[0].width < 70


def test_several_faces_are_ordered_largest_first(dlib_models):
    data = side_by_side(photo("Barack_Obama"), photo("Angelina_Jolie"))
    faces = dlib_models.detector.detect(rgb_of(data))
    assert len(faces) == 2
    assert faces[0].area >= faces[1].area
    with pytest.raises(MultipleFaces, match="2 faces"):
        select_face(faces, "single")
    assert select_face(faces, "largest") is faces[0]
    assert select_face(faces, 1) is faces[1]


def test_no_face(dlib_models):
    faces = dlib_models.detector.detect(rgb_of(no_face_jpeg()))
    assert faces == []
    with pytest.raises(NoFaceFound):
        select_face(faces, "largest")


def test_embeddings_are_unit_norm_batched_and_discriminative(dlib_models):
    engine = FaceEngine(dlib_models)
    assert engine.embedder.dim == 128 and engine.model_name == "dlib-resnet-v1-flip"
    obama1 = rgb_of(photo_bytes("Barack_Obama", 1))
    obama2 = rgb_of(photo_bytes("Barack_Obama", 2))
    jolie = rgb_of(photo_bytes("Angelina_Jolie", 1))
    crops = []
    for rgb in (obama1, obama2, jolie):
        face = engine.detect(rgb)[0]
        crop = engine.embedder.align(rgb, face)
        assert crop.shape == (150, 150, 3) and crop.dtype == np.uint8
        crops.append(crop)
    batch = engine.embedder.embed(crops)
    assert batch.shape == (3, 128) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)
    singles = np.concatenate([engine.embedder.embed([c]) for c in crops])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    same, different = float(batch[0] @ batch[1]), float(batch[0] @ batch[2])
    threshold = engine.embedder.shipped.identify_at(0.01)["max"]
    assert same >= threshold > different


def test_enrollment_reports_progress_in_order(service):
    events = []
    result = service.enroll("Barack Obama", photo_bytes("Barack_Obama"), progress=events.append)
    assert [e.stage for e in events] == ["decoded", "detected", "embedded", "stored"]
    assert events[-1].data["person_id"] == result.person_id
    matches = service.identify(photo_bytes("Barack_Obama", 4)).faces
    assert matches[0].match.identity is not None and matches[0].match.identity.name == "Barack Obama"

"""The insightface path (SCRFD -> norm_crop -> ArcFace) on self-built ONNX graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelUnavailable
from core.faces.loading import load_face_models
from core.faces.recognition import FaceEngine
from core.settings import Settings

from conftest import local_service, photo_bytes
from onnx_builders import FACE_BOX_128, FACE_KPS_128, SCRFD_SIZE, write_pack


def settings_for(root: Path, pack: str = "tinypack", **kw) -> Settings:
    return Settings(
        data_dir=root / "data",
        detector="insightface",
        embedder="insightface",
        insightface_root=root,
        insightface_pack=pack,
        **kw,
    )


@pytest.fixture()
def pack_root(tmp_path: Path) -> Path:
    write_pack(tmp_path)
    return tmp_path


def test_pack_loads_through_model_zoo_and_reports_provider(pack_root: Path):
    models = load_face_models(settings_for(pack_root))
    assert models.embedder.name == "insightface-tinypack-w_tiny"
    assert models.embedder.dim == 512
    assert models.embedder.provider == "CPUExecutionProvider"
    assert models.detector.name == "insightface-tinypack-det_tiny"
    scrfd = models.detector._model  # insightface's SCRFD: every input size on its one session
    assert scrfd.static_shape_sessions is False


def test_detection_alignment_and_batched_embedding(pack_root: Path):
    engine = FaceEngine(load_face_models(settings_for(pack_root)))
    from core.faces.decode import decode_image

    rgb = decode_image(photo_bytes("Barack_Obama"), max_bytes=1 << 25, max_pixels=1 << 26).rgb
    faces = engine.detect(rgb)
    assert len(faces) == 1
    # The tiny SCRFD reports a fixed face in its 128x128 letterboxed input: scale back.
    scale = SCRFD_SIZE / max(rgb.shape[:2])
    np.testing.assert_allclose(faces[0].bbox, np.array(FACE_BOX_128) / scale, rtol=0.02)
    np.testing.assert_allclose(faces[0].landmarks5, FACE_KPS_128 / scale, rtol=0.02)
    crop = engine.embedder.align(rgb, faces[0])
    assert crop.shape == (112, 112, 3)
    other = crop[:, ::-1].copy()
    batch = engine.embedder.embed([crop, other])
    assert batch.shape == (2, 512) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(batch[0], engine.embedder.embed([crop])[0], atol=1e-5)
    assert float(batch[0] @ batch[1]) < 0.999


def test_enroll_and_identify_on_the_insightface_path(pack_root: Path):
    settings = settings_for(pack_root)
    service = local_service(settings, load_face_models(settings))
    result = service.enroll("Obama", photo_bytes("Barack_Obama"))
    assert result.model == "insightface-tinypack-w_tiny"
    # No calibration ships for an insightface pack: identification says so clearly.
    from core.errors import NotCalibrated

    with pytest.raises(NotCalibrated, match="calibrate"):
        service.identify(photo_bytes("Barack_Obama", 2))
    gallery = service.store.load_gallery(result.model)
    assert gallery.vectors.shape == (1, 512)


def test_missing_pack_names_folder_and_buffalo_l(tmp_path: Path):
    with pytest.raises(ModelUnavailable) as err:
        load_face_models(settings_for(tmp_path, pack="buffalo_l"))
    assert str(tmp_path / "models" / "buffalo_l") in err.value.message
    assert "buffalo_l.zip" in err.value.message


def test_empty_pack(tmp_path: Path):
    (tmp_path / "models" / "empty").mkdir(parents=True)
    with pytest.raises(ModelUnavailable, match="no .onnx file"):
        load_face_models(settings_for(tmp_path, pack="empty"))


def test_pack_without_detector(tmp_path: Path):
    write_pack(tmp_path, pack="recog_only", detector=False)
    with pytest.raises(ModelUnavailable, match="no detection"):
        load_face_models(settings_for(tmp_path, pack="recog_only"))


def test_broken_onnx_file(tmp_path: Path):
    folder = write_pack(tmp_path, pack="broken")
    (folder / "w_tiny.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelUnavailable, match="could not be loaded"):
        load_face_models(settings_for(tmp_path, pack="broken"))


def test_unknown_provider_is_refused(pack_root: Path):
    with pytest.raises(ModelUnavailable, match="not available"):
        load_face_models(settings_for(pack_root, onnx_providers="TensorrtExecutionProvider"))

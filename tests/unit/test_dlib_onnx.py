"""dlib's ResNet read from its own file and run by ONNX Runtime: dlib's descriptors, and a clear
error for any other file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelUnavailable
from core.faces.decode import decode_image
from core.faces.dlib_models import RESNET, dlib_model_path
from core.faces.embedders.dlib_onnx import DlibResnetSession
from core.faces.embedders.dlib_weights import read_dlib_resnet

from conftest import photo_bytes

PEOPLE = ("Barack_Obama", "Angelina_Jolie", "Abel_Pacheco", "Allyson_Felix", "Andre_Agassi", "Amelia_Vega")


@pytest.fixture(scope="module")
def chips(dlib_models) -> np.ndarray:
    """Real face chips (dlib's alignment) and their mirror images."""
    out = []
    for name in PEOPLE:
        rgb = decode_image(photo_bytes(name), max_bytes=1 << 25, max_pixels=50_000_000).rgb
        face = dlib_models.detector.detect(rgb)[0]
        out += dlib_models.embedder.chips([dlib_models.embedder.align(rgb, face)])
    return np.stack(out)


def test_the_network_is_read_layer_by_layer_to_the_last_byte():
    layers = read_dlib_resnet(dlib_model_path(RESNET))
    kinds = [layer.kind for layer in layers]
    assert kinds[0] == "input" and kinds[-1] == "fc"
    assert kinds.count("con") == kinds.count("affine") == 29  # every convolution has its folded batch norm
    assert kinds.count("add_prev") == 14 and kinds.count("skip") == 4  # 14 residual blocks, 4 downsampling
    assert layers[0].arrays["mean"].tolist() == pytest.approx([122.782, 117.001, 104.298], abs=1e-3)
    first = layers[1]
    assert first.arrays["weight"].shape == (32, 3, 7, 7) and first.stride == (2, 2) and first.padding == (0, 0)
    assert layers[-1].arrays["weight"].shape == (256, 128) and "bias" not in layers[-1].arrays
    params = sum(a.size for layer in layers for a in layer.arrays.values())
    assert 5_500_000 < params < 5_700_000


def test_onnx_runtime_computes_dlibs_own_descriptors(chips):
    import dlib

    reference = np.asarray(
        dlib.face_recognition_model_v1(str(dlib_model_path(RESNET))).compute_face_descriptor(list(chips)),
        dtype=np.float32,
    )
    session = DlibResnetSession(dlib_model_path(RESNET), ["CPUExecutionProvider"])
    ours = session(chips)
    assert ours.shape == reference.shape == (2 * len(PEOPLE), 128)
    assert np.abs(ours - reference).max() < 1e-4  # descriptors have norms ~1.4
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.99999
    # one chip at a time gives the same rows as the batch
    assert np.abs(session(chips[3:4]) - ours[3:4]).max() < 1e-5
    # and different faces differ: the graph is not constant
    assert np.abs(ours[0] - ours[2]).max() > 0.05


def test_the_embedder_reports_onnx_runtime(dlib_models, chips):
    assert dlib_models.embedder.provider == "CPUExecutionProvider"
    vectors = dlib_models.embedder.embed([chips[0], chips[2]])
    assert vectors.shape == (2, 128) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "unexpected end of file|past the end"),
        (lambda data: data + b"\x00\x00", "2 bytes left after the last layer"),
        (lambda data: data.replace(b"con_4", b"con_9", 1), "expected con_4 or con_5 or con_6, found 'con_9'"),
        (lambda data: b"\x01\x01\x01\x0cnot_a_metric" + data[17:], "found 'not_a_metric'"),
    ],
    ids=["truncated", "trailing bytes", "unknown layer version", "another network"],
)
def test_another_file_fails_naming_what_and_where(tmp_path: Path, damage, message):
    broken = tmp_path / "broken.dat"
    broken.write_bytes(damage(dlib_model_path(RESNET).read_bytes()))
    with pytest.raises(ModelUnavailable, match=message) as caught:
        read_dlib_resnet(broken)
    assert str(broken) in str(caught.value) and "at byte" in str(caught.value)


def test_the_onnx_providers_setting_now_applies_to_the_default_model():
    from core.faces.loading import load_face_models
    from core.settings import Settings

    with pytest.raises(ModelUnavailable, match="TensorrtExecutionProvider"):
        load_face_models(Settings(onnx_providers="TensorrtExecutionProvider"))

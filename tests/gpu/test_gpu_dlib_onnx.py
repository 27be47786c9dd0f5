"""dlib's ResNet on ONNX Runtime's CUDA provider gives the CPU provider's descriptors. Skipped (with
the reason) where onnxruntime has no CUDA provider (the CPU build: install requirements-gpu.txt)."""

from __future__ import annotations

import numpy as np
import pytest

onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.skipif(
    "CUDAExecutionProvider" not in onnxruntime.get_available_providers(),
    reason="needs onnxruntime-gpu with a CUDA device",
)

from core.errors import ModelUnavailable  # noqa: E402
from core.faces.dlib_models import RESNET, dlib_model_path  # noqa: E402
from core.faces.embedders.dlib_onnx import DlibResnetSession  # noqa: E402


def test_cuda_descriptors_match_the_cpu_ones():
    try:
        dlib_model_path(RESNET)
    except ModelUnavailable as exc:  # a bare GPU image without face_recognition_models
        pytest.skip(str(exc))
    chips = np.random.default_rng(0).integers(0, 255, (8, 150, 150, 3), dtype=np.uint8)
    cpu = DlibResnetSession(dlib_model_path(RESNET), ["CPUExecutionProvider"])(chips)
    session = DlibResnetSession(dlib_model_path(RESNET), ["CUDAExecutionProvider", "CPUExecutionProvider"])
    if session.provider != "CUDAExecutionProvider":
        pytest.skip(f"the CUDA provider did not load (ONNX Runtime fell back to {session.provider})")
    cuda = session(chips)
    assert cuda.shape == cpu.shape == (8, 128)
    assert np.abs(cuda - cpu).max() < 1e-3  # TF32/cuDNN kernels round differently from the CPU's
    assert np.abs(session(chips[2:3]) - cuda[2:3]).max() < 1e-3

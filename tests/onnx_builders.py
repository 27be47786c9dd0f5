"""Small ONNX graphs with the contracts of insightface's SCRFD and ArcFace models.

They load through insightface's own model_zoo routing (shape-based) and run on ONNX Runtime, so
tests exercise the real insightface path of ManyAngles without downloading buffalo_l.

- ``scrfd_graph``: input 1x3x128x128, 9 outputs (scores, boxes, keypoints for strides 8/16/32,
  2 anchors each). The outputs are constants plus 0 x mean(input): one face at a known place.
- ``arcface_graph``: input Nx3x112x112 (dynamic batch) -> Conv -> Relu -> Flatten -> Gemm -> 512,
  seeded random weights: deterministic, image-dependent embeddings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
SCRFD_SIZE = 128
# The face the tiny SCRFD always reports, in the 128x128 input space: anchor at (64, 64) of the
# stride-16 level, box distances 2 strides, keypoints as offsets in stride units.
FACE_BOX_128 = (32.0, 32.0, 96.0, 96.0)
_KPS_OFFSETS = np.array([[-0.6, -0.5], [0.6, -0.5], [0.0, 0.1], [-0.5, 0.8], [0.5, 0.8]], np.float32)
FACE_KPS_128 = (np.array([64.0, 64.0], np.float32) + 16.0 * _KPS_OFFSETS).astype(np.float32)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def scrfd_graph() -> onnx.ModelProto:
    nodes = [
        helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0, name="reduce"),
        helper.make_node("Mul", ["mean", "zero"], ["z"], name="zero_out"),
    ]
    initializers = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    outputs = []
    consts: dict[str, np.ndarray] = {}
    for stride in (8, 16, 32):
        cells = (SCRFD_SIZE // stride) ** 2 * 2
        scores = np.full((cells, 1), 0.01, np.float32)
        boxes = np.ones((cells, 4), np.float32)
        kps = np.zeros((cells, 10), np.float32)
        if stride == 16:
            grid = SCRFD_SIZE // stride
            index = (4 * grid + 4) * 2  # row 4, col 4, first anchor -> centre (64, 64)
            scores[index, 0] = 0.99
            boxes[index] = 2.0
            kps[index] = _KPS_OFFSETS.reshape(-1)
        consts[f"score_{stride}"] = scores
        consts[f"bbox_{stride}"] = boxes
        consts[f"kps_{stride}"] = kps
    order = [f"{kind}_{s}" for kind in ("score", "bbox", "kps") for s in (8, 16, 32)]
    for name in order:
        value = consts[name]
        initializers.append(numpy_helper.from_array(value, f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "z"], [name], name=f"out_{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "tiny_scrfd",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, SCRFD_SIZE, SCRFD_SIZE])],
        outputs,
        initializers,
    )
    return _model(graph)


def arcface_graph(seed: int = 0, dim: int = 512) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.1, (8, 3, 8, 8)).astype(np.float32)
    conv_b = np.zeros(8, np.float32)
    gemm_w = rng.normal(0, 0.05, (8 * 14 * 14, dim)).astype(np.float32)
    gemm_b = rng.normal(0, 0.01, dim).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["data", "conv_w", "conv_b"], ["c"], strides=[8, 8], name="conv0"),
        helper.make_node("Relu", ["c"], ["r"], name="relu0"),
        helper.make_node("Flatten", ["r"], ["f"], axis=1, name="flatten0"),
        helper.make_node("Gemm", ["f", "gemm_w", "gemm_b"], ["fc1"], name="fc1"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, ["N", dim])],
        [
            numpy_helper.from_array(conv_w, "conv_w"),
            numpy_helper.from_array(conv_b, "conv_b"),
            numpy_helper.from_array(gemm_w, "gemm_w"),
            numpy_helper.from_array(gemm_b, "gemm_b"),
        ],
    )
    return _model(graph)


def write_pack(root: Path, pack: str = "tinypack", detector: bool = True, recognizer: bool = True) -> Path:
    """Writes <root>/models/<pack>/{det_tiny,w_tiny}.onnx and returns the pack folder."""
    folder = root / "models" / pack
    folder.mkdir(parents=True, exist_ok=True)
    if detector:
        onnx.save(scrfd_graph(), str(folder / "det_tiny.onnx"))
    if recognizer:
        onnx.save(arcface_graph(), str(folder / "w_tiny.onnx"))
    return folder

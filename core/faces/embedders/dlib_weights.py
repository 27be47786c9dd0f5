"""Read dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as layers.

dlib serialises a network as nested objects: the loss layer, then each layer's wrapper version
from the output inwards, the input layer, then each layer's details and bookkeeping from the
input outwards (dlib/dnn/core.h). The format of every field is dlib's (dlib/serialize.h):
integers as a control byte (high bit: negative; low 4 bits: how many little-endian bytes
follow), strings as a length then bytes, bools as ASCII '0'/'1', scalars as an integer mantissa
then exponent, tensors as version 2, four dimensions and raw little-endian float32.

The layer sequence of the network is fixed (``anet_type`` of dlib's dnn_face_recognition_ex.cpp:
a 29-layer ResNet); every layer's details are checked against it as they are read, so another
file fails here, naming the byte offset, rather than computing something else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import ModelUnavailable


@dataclass(frozen=True, eq=False)
class Layer:
    """One step of the forward pass, in input-to-output order.

    kind: ``input`` (per-channel means), ``con``, ``affine``, ``relu``, ``max_pool``,
    ``avg_pool`` (``size == (0, 0)``: the whole image), ``fc``, ``tag`` (remember the current
    output as ``tag``), ``skip`` (continue from tag ``tag``), ``add_prev`` (add tag ``tag``'s
    output, dlib-style: the smaller tensor zero-padded to the larger), ``identity`` (a layer
    saved disabled).
    """

    kind: str
    tag: int = 0
    size: tuple[int, int] = (0, 0)  # kernel rows, cols
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _residual(down: bool) -> list[tuple[str, int]]:
    """One ``ares``/``ares_down`` block from its output inwards, as (wrapper, tag) pairs."""
    block = [("affine", 0), ("con", 0), ("relu", 0), ("affine", 0), ("con", 0), ("tag", 1)]
    if down:  # relu<add_prev2<avg_pool<skip1<tag2<block<tag1<SUB>>>>>>>
        return [("relu", 0), ("add_prev", 2), ("avg_pool", 0), ("skip", 1), ("tag", 2), *block]
    return [("relu", 0), ("add_prev", 1), *block]  # relu<add_prev1<block<tag1<SUB>>>>


def _architecture() -> list[tuple[str, int]]:
    """anet_type's wrappers from the output inwards (after the loss layer)."""
    # (blocks, downsampling) of 256, 256, 256, 128, 128, 64, 64 and 32 filters
    levels = [(1, True), (2, False), (1, True), (2, False), (1, True), (3, False), (1, True), (3, False)]
    chain: list[tuple[str, int]] = [("fc", 0), ("avg_pool", 0)]
    for count, down in levels:  # alevel0 (ares_down 256) ... alevel4 (3 x ares 32)
        for _ in range(count):
            chain += _residual(down)
    return chain + [("max_pool", 0), ("relu", 0), ("affine", 0), ("con", 0)]  # con<32,7,7,2,2,input>


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = data, 0, path

    def fail(self, what: str) -> ModelUnavailable:
        return ModelUnavailable(f"{self.path} is not dlib's face recognition ResNet: {what} at byte {self.pos}")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end of file")
        self.pos += 1
        return self.data[self.pos - 1]

    def integer(self) -> int:
        control = self.byte()
        size = control & 0x0F
        if size == 0 or size > 8 or self.pos + size > len(self.data):
            raise self.fail(f"bad integer control byte {control:#x}")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "little")
        self.pos += size
        return -value if control & 0x80 else value

    def boolean(self) -> bool:
        value = self.byte()
        if value not in (ord("0"), ord("1")):
            raise self.fail(f"bad bool byte {value:#x}")
        return value == ord("1")

    def string(self) -> str:
        length = self.integer()
        if not 0 <= length <= 64:
            raise self.fail(f"bad string length {length}")
        self.pos += length
        return self.data[self.pos - length : self.pos].decode("latin-1")

    def scalar(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(mantissa) * 2.0**exponent

    def expect(self, *versions: str) -> str:
        version = self.string()
        if version not in versions:
            raise self.fail(f"expected {' or '.join(versions)}, found {version!r}")
        return version

    def version(self, *allowed: int) -> int:
        value = self.integer()
        if value not in allowed:
            raise self.fail(f"unexpected version {value}")
        return value

    def tensor(self) -> np.ndarray:
        self.version(2)
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if count < 0 or end > len(self.data):
            raise self.fail(f"tensor of shape {shape} past the end")
        array = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(shape)
        self.pos = end
        return array.astype(np.float32)

    def alias(self) -> tuple[int, ...]:
        self.version(1)
        return tuple(self.integer() for _ in range(4))


def _con(r: _Reader) -> Layer:
    version = r.expect("con_4", "con_5", "con_6")
    params = r.tensor().reshape(-1)
    filters = r.integer()
    size = (r.integer(), r.integer())
    stride = (r.integer(), r.integer())
    padding = (r.integer(), r.integer())
    shape = r.alias()  # filters: (num_filters, k, nr, nc)
    bias_shape = r.alias()
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.scalar()
    use_bias = r.boolean() if version in ("con_5", "con_6") else True
    if version == "con_6":
        r.boolean()  # use_relu (a fused relu; never set in this network)
    n = int(np.prod(shape))
    if shape[0] != filters or shape[2:] != size or params.size < n:
        raise r.fail(f"inconsistent convolution {shape} with {filters} filters")
    arrays = {"weight": params[:n].reshape(shape)}
    if use_bias and int(np.prod(bias_shape)):
        arrays["bias"] = params[n : n + int(np.prod(bias_shape))]
    return Layer("con", size=size, stride=stride, padding=padding, arrays=arrays)


def _affine(r: _Reader) -> Layer:
    version = r.expect("affine_", "affine_2")  # a batch norm folded for inference
    params = r.tensor().reshape(-1)
    gamma_shape, _ = r.alias(), r.alias()
    mode = r.integer()
    if version == "affine_2" and r.boolean():
        return Layer("identity")
    if mode != 0:  # CONV_MODE: one gamma and beta per channel
        raise r.fail(f"affine layer in mode {mode}, expected per-channel")
    k = int(np.prod(gamma_shape))
    return Layer("affine", arrays={"gamma": params[:k], "beta": params[k : 2 * k]})


def _pool(r: _Reader, kind: str) -> Layer:
    r.expect(f"{kind}_2")
    size = (r.integer(), r.integer())
    stride = (r.integer(), r.integer())
    padding = (r.integer(), r.integer())
    return Layer(kind, size=size, stride=stride, padding=padding)


def _relu(r: _Reader) -> Layer:
    if r.expect("relu_", "relu_2") == "relu_2" and r.boolean():
        return Layer("identity")
    return Layer("relu")


def _fc(r: _Reader) -> Layer:
    version = r.expect("fc_2", "fc_3")
    outputs, inputs = r.integer(), r.integer()
    params = r.tensor().reshape(-1)
    weight_shape, _ = r.alias(), r.alias()
    bias_mode = r.integer()
    for _ in range(4):
        r.scalar()
    use_bias = r.boolean() if version == "fc_3" else True
    n = inputs * outputs
    if int(np.prod(weight_shape)) != n or params.size < n:
        raise r.fail(f"inconsistent fully connected layer {inputs} -> {outputs}")
    arrays = {"weight": params[:n].reshape(inputs, outputs)}
    if bias_mode == 0 and use_bias:  # FC_HAS_BIAS
        arrays["bias"] = params[n : n + outputs]
    return Layer("fc", arrays=arrays)


_DETAILS = {
    "con": _con,
    "affine": _affine,
    "relu": _relu,
    "max_pool": lambda r: _pool(r, "max_pool"),
    "avg_pool": lambda r: _pool(r, "avg_pool"),
    "fc": _fc,
}


def read_dlib_resnet(path: Path) -> list[Layer]:
    """The network's layers in forward order, the input's channel means first."""
    r = _Reader(path.read_bytes(), path)
    r.version(1)  # add_loss_layer
    if r.expect("loss_metric_", "loss_metric_2") == "loss_metric_2":
        r.scalar(), r.scalar()  # margin, distance threshold: training only
    chain = _architecture()
    # the wrappers' versions from the output inwards; the innermost wraps the input layer
    versions = [r.version(1) if w in ("tag", "skip") else r.version(1, 2) for w, _ in chain[:-1]]
    versions.append(r.version(2, 3))
    r.expect("input_rgb_image_sized")
    means = np.array([r.scalar() for _ in range(3)], dtype=np.float32)
    r.integer(), r.integer()  # the input's rows and columns (150 x 150)
    layers = [Layer("input", arrays={"mean": means})]
    for index, ((wrapper, tag), version) in enumerate(zip(reversed(chain), reversed(versions))):
        if wrapper in ("tag", "skip"):
            layers.append(Layer(wrapper, tag=tag))
            continue
        if wrapper == "add_prev":
            r.expect("add_prev_")
            layers.append(Layer("add_prev", tag=tag))
        else:
            layers.append(_DETAILS[wrapper](r))
        for _ in range(3):  # setup called, gradient stale, output and gradient disabled
            r.boolean()
        r.tensor(), r.tensor()  # x_grad, cached_output (empty in a saved model)
        if index == 0:  # the innermost layer wraps the input: grad_final, sample expansion
            r.tensor()
            if version == 3:
                r.integer()
        elif version == 2:
            r.tensor()  # params_grad
    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} bytes left after the last layer")
    return layers

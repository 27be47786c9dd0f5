"""ONNX Runtime execution providers, chosen once for every ONNX model of the service."""

from __future__ import annotations

from typing import Any

from core.errors import ModelUnavailable


def choose_providers(setting: str) -> list[str]:
    """ONNX Runtime providers for a setting: "auto" prefers CUDA when the build offers it."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if setting.strip().lower() != "auto":
        wanted = [p.strip() for p in setting.split(",") if p.strip()]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise ModelUnavailable(f"ONNX Runtime providers {missing} are not available (available: {available})")
        return wanted
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def onnx_session(path: object, providers: list[str], threads: int = 0) -> Any:
    """An ONNX Runtime session over a model file (``threads`` 0: one per core). Its log is kept to
    errors: ArcFace graphs declare a batch of 1 and ONNX Runtime warns at every larger batch."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=providers)

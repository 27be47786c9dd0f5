"""ONNX Runtime execution providers, chosen once for every ONNX model of the service."""

from __future__ import annotations

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

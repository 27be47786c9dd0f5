"""The service's face analyzer and view maker over Ray Serve handles: one call per photo."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from core.augment.gate import ViewsOutcome
from core.augment.viewmaker import GeneratorInfo
from core.augment.views import ViewRequest
from core.errors import ManyAnglesError, ReplicaLost, ServiceBusy
from core.faces.pipeline import AnalyzedPhoto, ModelInfo
from core.faces.recognition import FacePolicy
from core.faces.types import Face
from core.store.search_reads import ReadsAhead
from serve.refusals import Refused

CALL_TIMEOUT_S = 600.0
log = logging.getLogger("ray.serve")


def wait(response: Any, what: str) -> Any:
    """``response.result()`` with our typed errors restored (a deployment's ``Refused`` raised
    again: serve/refusals.py), back-pressure made a 503, and a replica lost mid-request (killed,
    crashed, restarted) made a retryable 503 too: a client must be able to tell "try again" from
    a bug."""
    from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
    from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, RayServeException

    lost = (RayActorError, ActorUnavailableError, DeploymentUnavailableError)
    try:
        result = response.result(timeout_s=CALL_TIMEOUT_S)
    except BackPressureError:
        raise ServiceBusy(f"the {what} is busy; retry in a few seconds") from None
    except lost as exc:
        log.warning("the %s replica was lost during a request: %s", what, type(exc).__name__)
        raise ReplicaLost(f"the {what} replica stopped during this request; nothing was stored; retry") from None
    except RayServeException as exc:  # Serve's "an upstream actor died" (a chained call's input)
        if isinstance(exc.__cause__, lost):
            log.warning("a replica feeding the %s was lost: %s", what, type(exc.__cause__).__name__)
            raise ReplicaLost("a replica stopped during this request; nothing was stored; retry") from None
        raise
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, ManyAnglesError):
            raise cause from None
        if isinstance(cause, lost):  # a chained call whose input came from a lost replica
            log.warning("a replica feeding the %s was lost: %s", what, type(cause).__name__)
            raise ReplicaLost("a replica stopped during this request; nothing was stored; retry") from None
        raise
    if isinstance(result, Refused):
        raise result.error
    return result


class RemoteFaces:
    """The Embedder deployment: each photo crosses to it once, as its uploaded bytes.

    Model facts are fetched when asked (the active model may change): a replica's constructor runs
    on its event loop, where blocking on a handle is not allowed; routes run on threads, where it is.
    """

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder

    @property
    def info(self) -> ModelInfo:
        return wait(self._embedder.info.remote(), "embedder")

    def analyze(self, photo: bytes, policy: FacePolicy | None = None) -> AnalyzedPhoto:
        return self.submit(photo, policy)()

    def submit(
        self, photo: bytes, policy: FacePolicy | None = None, ahead: ReadsAhead | None = None
    ) -> Callable[[], AnalyzedPhoto]:
        """(``ahead`` is not used: the Embedder follows the pointer itself.)"""
        response = self._embedder.analyze.remote(photo, policy)  # routed now; the caller goes on
        return functools.partial(wait, response, "embedder")

    def analyze_many(self, items: list[tuple[bytes, FacePolicy | None]]) -> list[AnalyzedPhoto | ManyAnglesError]:
        responses = [self._embedder.analyze.remote(photo, policy) for photo, policy in items]  # concurrent
        out: list[AnalyzedPhoto | ManyAnglesError] = []
        for response in responses:
            try:
                out.append(wait(response, "embedder"))
            except ServiceBusy:  # busy or lost: the whole call is retried, not one photo
                raise
            except ManyAnglesError as exc:
                out.append(exc)
        return out


class RemoteViews:
    """Generator -> Embedder, chained: the Generator's response goes to the Embedder's gate
    unresolved, so the views travel from one replica to the other and only the gated result
    (PNG bytes, embeddings) comes back here."""

    def __init__(self, generator: Any, embedder: Any) -> None:
        self._generator = generator
        self._embedder = embedder

    @functools.cached_property
    def _info(self) -> GeneratorInfo:
        return wait(self._generator.info.remote(), "generator")

    def generator_info(self) -> GeneratorInfo:
        return self._info

    def make_views(
        self, photo: bytes, face: Face, reference: np.ndarray, requests: list[ViewRequest], threshold: float
    ) -> ViewsOutcome:
        generated = self._generator.generate.remote(photo, face, requests)
        try:
            return wait(self._embedder.gate.remote(generated, reference, threshold), "embedder")
        except Exception:
            wait(generated, "generator")  # when generation failed, its error is the one to report
            raise

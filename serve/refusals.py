"""By-design refusals: a ManyAnglesError with a 4xx status (no face, not an image, several faces,
a duplicate, a name taken...) is logged as one line with its code, never with a traceback.

Serve logs every exception a replica's method raises as a failed request, traceback and all
(``logger.exception("Request failed.")`` in ``_handle_errors_and_metrics``,
ray/serve/_private/replica.py), in the replica's log and on the terminal of ``serve run``. So a
deployment *returns* a refusal, as ``Refused``, instead of raising it through its handle;
``serve.remote.wait`` raises it again in the ingress, whose error handler answers it and writes
the one line (``log_refusal``). Real failures (5xx, unexpected exceptions) are still raised, and
keep their tracebacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.errors import ManyAnglesError

log = logging.getLogger("ray.serve")


@dataclass(frozen=True)
class Refused:
    """A deployment's answer that is a by-design refusal; the ingress raises ``error``."""

    error: ManyAnglesError


def is_refusal(error: BaseException) -> bool:
    """A client's request refused on purpose (4xx), not a failure of the service."""
    return isinstance(error, ManyAnglesError) and error.http_status < 500


def log_refusal(what: str, code: str, status: int) -> None:
    """The one line of a refusal: ``refused POST /v1/persons: multiple_faces (422)``."""
    log.info("refused %s: %s (%d)", what, code, status)

"""A streamed enrollment: progress lines as the work goes, then the result or the error.

Shared by ``POST /v1/persons`` and ``POST /v1/persons/{id}/photos`` with
``Accept: application/x-ndjson``. The enrollment runs on its own thread; a client that hangs up
before the result (Serve cancels the generator) stops it at its next step before the store, as a
hang-up stops a plain request: nothing is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from core.enroll.building import ProgressCallback, ProgressEvent
from core.errors import ManyAnglesError
from core.results import EnrollResult
from core.schemas.results import EnrollResponse, ErrorResponse
from serve.refusals import is_refusal, log_refusal

log = logging.getLogger("ray.serve")

NDJSON = "application/x-ndjson"


class _ClientGone(Exception):
    """Raised in a streamed enrollment's thread when its client has hung up."""


async def stream_enrollment(
    enroll: Callable[[ProgressCallback | None], EnrollResult], what: str = "a streamed enrollment"
) -> AsyncIterator[bytes]:
    """NDJSON lines of ``enroll(progress)``: its progress events, then its result or error (a
    refusal logged as one line with its code, ``what`` naming the call)."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    hung_up = threading.Event()

    def put(kind: str, item: Any) -> None:  # from the enrollment's thread into this loop
        loop.call_soon_threadsafe(events.put_nowait, (kind, item))

    def progress(event: ProgressEvent) -> None:
        if hung_up.is_set() and event.stage != "stored":  # "stored" comes after the commit
            raise _ClientGone
        put("event", event)

    def run() -> None:
        try:
            put("result", enroll(progress))
        except _ClientGone:
            log.info("streamed enrollment stopped before storing: the client hung up; nothing was stored")
        except ManyAnglesError as exc:
            if is_refusal(exc):
                log_refusal(what, exc.code, exc.http_status)
            put("error", ErrorResponse.of_error(exc).body())
        except Exception:
            log.exception("enrollment failed")
            put("error", ErrorResponse.of("internal_error", "enrollment failed; nothing was stored").body())

    threading.Thread(target=run, daemon=True).start()
    try:
        while True:
            kind, item = await events.get()
            if kind == "event":
                event: ProgressEvent = item
                line = {"type": "progress", "stage": event.stage, "message": event.message, **event.data}
            elif kind == "result":
                line = {"type": "result", **EnrollResponse.of(item).model_dump()}
            else:
                line = {"type": "error", **item}
            yield (json.dumps(line) + "\n").encode()
            if kind != "event":
                return
    finally:
        hung_up.set()  # after the last line too: harmless, the enrollment has ended

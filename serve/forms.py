"""The multipart forms of the photo routes: reading an upload under its cap, the options of an
enrollment (``POST /v1/persons`` and ``POST /v1/persons/{id}/photos`` take the same ones), and
the answer as JSON or as an NDJSON progress stream.

No ``from __future__ import annotations``: FastAPI resolves these annotations at runtime.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Form, Request, UploadFile
from fastapi.responses import StreamingResponse

from core.enroll.building import ProgressCallback
from core.errors import ImageTooLarge, InvalidInput
from core.results import EnrollResult
from core.schemas.results import EnrollResponse
from serve.enroll_stream import NDJSON, stream_enrollment

ENROLL_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "with `Accept: application/x-ndjson`: one JSON object per line, "
        '`{"type": "progress", "stage": ..., "message": ...}` as the work goes, then '
        '`{"type": "result", ...EnrollResponse}` or `{"type": "error", "error": {...}}`',
        "content": {NDJSON: {"schema": {"type": "string"}}},
    }
}


def read_upload(upload: UploadFile, cap: int) -> bytes:
    data = upload.file.read(cap + 1)
    if len(data) > cap:
        raise ImageTooLarge(f"{upload.filename or 'the upload'} is over the limit of {cap} bytes")
    return data


def view_names(views: str | None) -> list[str] | None:
    """A ``views`` form field: comma-separated names or a JSON array; empty means the default."""
    if views is None or not views.strip():
        return None
    if views.strip().startswith("["):
        try:
            parsed = json.loads(views)
        except json.JSONDecodeError:
            raise InvalidInput("views must be a comma-separated list or a JSON array of names") from None
        return [str(v) for v in parsed]
    return [v.strip() for v in views.split(",") if v.strip()]


@dataclass(frozen=True)
class PhotoOptions:
    """The form fields an enrollment and an added photo share, as a FastAPI dependency."""

    use_augmentation: Annotated[bool, Form()] = False
    num_variations: Annotated[int | None, Form()] = None
    views: Annotated[str | None, Form(description="comma-separated or JSON list")] = None
    seed: Annotated[int, Form()] = 0
    face: Annotated[str, Form(description="single, largest or an index")] = "single"

    def service_kwargs(self) -> dict[str, Any]:
        """The service's keywords (views asked for: augmentation on)."""
        face = self.face.strip()
        return {
            "face": int(face) if face.lstrip("-").isdigit() else face,
            "augment": self.use_augmentation or self.views is not None or self.num_variations is not None,
            "views": view_names(self.views),
            "num_variations": self.num_variations,
            "seed": self.seed,
        }


def answer(request: Request, enroll: Callable[[ProgressCallback | None], EnrollResult]) -> Any:
    """The enrollment's result, or its NDJSON progress stream when the client accepts one."""
    if NDJSON in request.headers.get("accept", ""):
        what = f"{request.method} {request.url.path}"
        return StreamingResponse(stream_enrollment(enroll, what), media_type=NDJSON)
    return EnrollResponse.of(enroll(None))

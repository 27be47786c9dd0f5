"""Request bodies a client may send either as JSON or as a form (``PATCH /v1/persons/{id}``,
``POST /v1/keys``): a REST client sends JSON, a browser form or ``curl -F`` sends a form, and both
get the same validation and the same 422 ``invalid_request`` naming the field.

No ``from __future__ import annotations``: FastAPI resolves these annotations at runtime.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

JSON = "application/json"
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")

M = TypeVar("M", bound=BaseModel)


def _invalid(message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body",), "msg": message, "type": "value_error"}])


async def _fields(request: Request) -> Any:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in FORMS:
        form = await request.form()
        if any(isinstance(v, UploadFile) for v in form.values()):
            raise _invalid("this call takes text fields, not files")
        return dict(form.items())
    if kind not in (JSON, ""):  # no Content-Type: read as JSON, what such a client almost always sends
        raise _invalid(f"send the fields as JSON ({JSON}) or as a form ({FORMS[0]}), not {kind}")
    raw = await request.body()
    if not raw.strip():
        raise _invalid(f"the body is empty: send the fields as JSON ({JSON}) or as a form ({FORMS[0]})")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _invalid("the body is not valid JSON") from None


def json_or_form(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """A dependency that reads ``model`` from a JSON object or from form fields."""

    async def parse(request: Request) -> M:
        fields = await _fields(request)
        if not isinstance(fields, dict):
            raise _invalid("the JSON body must be an object")
        try:
            return model.model_validate(fields)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False, include_context=False)]
            ) from None

    parse.form_fields = frozenset(model.model_fields)  # type: ignore[attr-defined]  # for serve/deps.py's check
    return parse


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route whose body ``json_or_form(model)`` reads: both media types."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {JSON: {"schema": schema}, FORMS[0]: {"schema": schema}}}}

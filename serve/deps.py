"""The key check every keyed route depends on, by what the route needs.

No ``from __future__ import annotations``: FastAPI resolves these annotations where the routes live.
"""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from core.errors import InvalidRequest
from core.schemas.results import ErrorResponse
from core.store.access_log import Caller
from core.store.keys import GRANTS
from core.store.keys import PREFIX as KEY_PREFIX
from core.store.sqlutil import MAX_ROW_ID
from serve.auth import offered_key, require, service_caller, stored_caller

_STATUS_TEXT = {
    401: "no, wrong or revoked API key",
    403: "the key's scope does not allow this call",
    404: "unknown person, image, model, job or API key",
    409: "name already enrolled, the model is not calibrated, a model switch is under way, a key revoked already, "
    "a change token from another copy of the gallery, or a gallery too large for the request",
    413: "upload over the byte or pixel cap",
    422: "bad image, no face, several faces, bad parameters, or a body that cannot be read as its content type "
    "(malformed_body)",
    503: "a deployment is busy (Retry-After) or a model is unavailable",
}


def _needs(permission: str) -> Any:
    async def check(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> Caller:
        # async: a sync dependency costs a trip to the thread pool on every call; only a stored
        # key's lookup (the store: a network round trip on PostgreSQL) goes to a thread
        state, offered = request.app.state, offered_key(authorization, x_api_key)
        caller = service_caller(offered, state.api_key)
        if caller is None and offered.startswith(KEY_PREFIX):  # no other can be a stored key
            caller = await run_in_threadpool(stored_caller, offered, state.keys)
        return require(permission, caller)

    return Depends(check)


# What each route needs (core/store/keys.py: admin > enroll (+ read) | identify); the route gets
# the caller, for the access log (core/store/access_log.py)
def may_read(caller: Caller) -> bool:
    """The caller's key may read the gallery (persons, names, images): admin and enroll keys."""
    return "read" in GRANTS[caller.scope]


Admin = Annotated[Caller, _needs("admin")]
CanEnroll = Annotated[Caller, _needs("enroll")]
CanRead = Annotated[Caller, _needs("read")]
CanIdentify = Annotated[Caller, _needs("identify")]


def log_access(request: Request, caller: Caller, action: str, person_ids: Sequence[int] = (), detail: str = "") -> None:
    """Write the access log's entry of an action that succeeded."""
    request.app.state.access_log.record(caller, action, person_ids, detail)


def log_view(request: Request, caller: Caller, person_id: int, detail: str) -> None:
    """The access log's ``view`` entry of a person's record or image served (one per key and
    person per 15 minutes)."""
    request.app.state.access_log.viewed(caller, person_id, detail)


def log_browse(request: Request, caller: Caller) -> None:
    """Count a cover thumbnail served in the access log's ``browse`` entry (one per key per 15
    minutes, naming no person)."""
    request.app.state.access_log.browsed(caller)


def _declared(dependant: Dependant) -> tuple[set[str], set[str]]:
    """The query parameters and body (form) fields a route and its dependencies declare."""
    query: set[str] = set()
    body: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        query.update(f.alias for f in current.query_params)
        body.update(f.alias for f in current.body_params)
        body.update(getattr(current.call, "form_fields", ()))  # serve/bodies.py's JSON-or-form bodies
        pending.extend(current.dependencies)
    return query, body


FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


async def known_parameters(request: Request) -> None:
    """Every route's first check: a query parameter or form field that the route does not take is
    a 422 naming it. Left alone, a misspelt ``top_k`` or ``use_augmentation`` would be dropped in
    silence and the call answered with the defaults. (The form is parsed once: FastAPI has
    read it already, and Starlette keeps it.)"""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    query, body = _declared(route.dependant)
    where = f"{request.method} {route.path}"
    unknown = sorted(set(request.query_params) - query)
    if unknown:
        takes = ", ".join(sorted(query)) or "none"
        raise InvalidRequest(f"unknown query parameter(s) {', '.join(unknown)}; {where} takes: {takes}")
    if request.headers.get("content-type", "").split(";")[0].strip() in FORM_TYPES:
        unknown = sorted(set((await request.form()).keys()) - body)
        if unknown:
            takes = ", ".join(sorted(body)) or "none"
            raise InvalidRequest(f"unknown form field(s) {', '.join(unknown)}; {where} takes: {takes}")


# A row id in a path: a number SQLite cannot hold is a 422 naming the parameter, never a 500
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route: every keyed route can answer 401 and 403, and 422
    for malformed parameters; each with the ErrorResponse body."""
    return {s: {"model": ErrorResponse, "description": _STATUS_TEXT[s]} for s in sorted({401, 403, 422, *statuses})}

"""API keys over HTTP (admin only): list them, make one (its secret answered once), revoke one.
The command line's ``manyangles keys`` does the same; both write the access log.

No ``from __future__ import annotations``: FastAPI resolves the annotations of these routes.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from core.schemas.admin import ApiKeyOut, CreatedKey, CreateKeyRequest, KeysResponse
from core.store.keys import KeyStore
from serve.bodies import documented, json_or_form
from serve.deps import Admin, RowId, errors, log_access

router = APIRouter()


def _keys(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.keys
    return keys


@router.get("/v1/keys", response_model=KeysResponse, responses=errors())
def list_keys(request: Request, _: Admin) -> KeysResponse:
    """Every key made (revoked ones too): id, name, scope, first characters, when made and revoked;
    never the key."""
    return KeysResponse(keys=[ApiKeyOut.of(r) for r in _keys(request).records()])


@router.post(
    "/v1/keys",
    status_code=201,
    response_model=CreatedKey,
    responses=errors(),
    openapi_extra=documented(CreateKeyRequest),
)
def create_key(
    request: Request,
    caller: Admin,
    body: Annotated[CreateKeyRequest, Depends(json_or_form(CreateKeyRequest))],
) -> CreatedKey:
    """A new key: ``admin`` (everything), ``enroll`` (enroll and read the gallery) or ``identify``
    (identify, verify, embed); ``name`` and ``scope`` as JSON or as a form. The answer holds the key;
    it is stored as a hash and never shown again."""
    record, secret = _keys(request).create(body.name, body.scope)
    log_access(request, caller, "key_create", detail=f"key {record.id}, scope {record.scope}")
    return CreatedKey(key=ApiKeyOut.of(record), secret=secret)


@router.delete("/v1/keys/{key_id}", response_model=ApiKeyOut, responses=errors(404, 409))
def revoke_key(request: Request, caller: Admin, key_id: RowId) -> ApiKeyOut:
    """Stop a key from working, for good (409 ``key_revoked`` when it was revoked already)."""
    record = _keys(request).revoke(key_id)
    log_access(request, caller, "key_revoke", detail=f"key {record.id}, scope {record.scope}")
    return ApiKeyOut.of(record)

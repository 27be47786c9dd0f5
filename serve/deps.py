"""The key check every keyed route depends on, by what the route needs.

No ``from __future__ import annotations``: FastAPI resolves these annotations where the routes live.
"""

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from serve.auth import offered_key, require, scope_of


def _needs(permission: str) -> Any:
    def check(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> None:
        state = request.app.state
        require(permission, scope_of(offered_key(authorization, x_api_key), state.api_key, state.keys))

    return Depends(check)


# What each route needs (core/store/keys.py: admin > enroll (+ read) | identify)
Admin = Annotated[None, _needs("admin")]
CanEnroll = Annotated[None, _needs("enroll")]
CanRead = Annotated[None, _needs("read")]
CanIdentify = Annotated[None, _needs("identify")]

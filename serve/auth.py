"""API keys: the service's admin key (MANYANGLES_API_KEY, else generated once into the data dir)
and the scoped keys of the store (``manyangles keys create``)."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

from core.errors import Forbidden, InvalidSetting, Unauthorized
from core.settings import Settings
from core.store.access_log import SERVICE_KEY, Caller
from core.store.keys import GRANTS, KeyStore

log = logging.getLogger(__name__)
KEY_FILE = "api_key"


def ensure_api_key(settings: Settings) -> tuple[str, bool]:
    """(key, created): the configured key, the stored one, or a new one written with mode 0600."""
    if settings.api_key:
        return settings.api_key, False
    if settings.store_url:
        raise InvalidSetting(
            "api_key: with store_url (PostgreSQL) set MANYANGLES_API_KEY: every host's replicas must take the "
            "same admin key, and a key generated into one host's data dir would be that host's alone"
        )
    path = Path(settings.data_dir) / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip(), False
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, True


def offered_key(authorization: str | None, x_api_key: str | None) -> str:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return x_api_key or ""


def caller_of(offered: str, admin_key: str, keys: KeyStore) -> Caller | None:
    """The service's own key (settings or data-dir file: scope ``admin``), a stored key, or
    None. Both comparisons are constant-time."""
    return service_caller(offered, admin_key) or (stored_caller(offered, keys) if offered else None)


def service_caller(offered: str, admin_key: str) -> Caller | None:
    """The service's own key's caller, when ``offered`` is that key."""
    if offered and hmac.compare_digest(offered.encode(), admin_key.encode()):
        return Caller(None, SERVICE_KEY, "admin")
    return None


def stored_caller(offered: str, keys: KeyStore) -> Caller | None:
    """The caller of a key of the store (``manyangles keys create``), None for no such key."""
    record = keys.find(offered)
    return Caller(record.id, record.name, record.scope) if record else None


def require(permission: str, caller: Caller | None) -> Caller:
    """The caller, when their key allows ``permission``."""
    if caller is None:
        raise Unauthorized("a valid API key is required (Authorization: Bearer <key> or X-API-Key)")
    if permission not in GRANTS[caller.scope]:
        allowed = ", ".join(s for s, grants in GRANTS.items() if permission in grants)
        raise Forbidden(
            f"this key's scope '{caller.scope}' does not allow this call; it needs a key of scope: {allowed}"
        )
    return caller

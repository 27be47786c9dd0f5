"""The API key: from the settings (MANYANGLES_API_KEY), else generated once into the data dir."""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path

from core.settings import Settings

log = logging.getLogger(__name__)
KEY_FILE = "api_key"


def ensure_api_key(settings: Settings) -> tuple[str, bool]:
    """(key, created): the configured key, the stored one, or a new one written with mode 0600."""
    if settings.api_key:
        return settings.api_key, False
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


def key_matches(expected: str, authorization: str | None, x_api_key: str | None) -> bool:
    offered = x_api_key or ""
    if authorization and authorization.lower().startswith("bearer "):
        offered = authorization[7:].strip()
    return bool(offered) and hmac.compare_digest(offered.encode(), expected.encode())

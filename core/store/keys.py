"""API keys with scopes, stored hashed in the gallery database.

A key is shown once, when it is created; the store keeps its SHA-256 (keys are 256-bit random
tokens, so a plain hash is enough: there is nothing to brute-force) and its first characters,
for a person to recognise it in ``keys list``. Scopes:

- ``admin``: everything;
- ``enroll``: enroll (and make views), and read the gallery;
- ``identify``: identify, verify and embed only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal, get_args

from core.errors import InvalidInput, KeyNotFound, KeyRevoked
from core.store.gallery import GalleryStore
from core.store.sqlutil import rowid, utc_now

Scope = Literal["admin", "enroll", "identify"]
SCOPES: tuple[str, ...] = get_args(Scope)
Permission = Literal["admin", "enroll", "read", "identify"]
GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin", "enroll", "read", "identify"}),
    "enroll": frozenset({"enroll", "read"}),
    "identify": frozenset({"identify"}),
}
PREFIX = "ma_"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    name: str
    scope: str
    prefix: str  # the key's first characters
    created_at: str
    revoked_at: str | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class KeyStore:
    def __init__(self, store: GalleryStore) -> None:
        self.store = store

    def create(self, name: str, scope: str) -> tuple[ApiKeyRecord, str]:
        """A new key: (its record, the secret, which is never stored nor shown again)."""
        if scope not in SCOPES:
            raise InvalidInput(f"unknown scope {scope!r}; scopes: {', '.join(SCOPES)}")
        if not name.strip() or len(name) > 200:
            raise InvalidInput("a key needs a name of 1 to 200 characters (who or what uses it)")
        secret = PREFIX + secrets.token_urlsafe(32)
        now = utc_now()
        with self.store.write_lock() as conn:
            cursor = conn.execute(
                "INSERT INTO api_keys(name, scope, key_hash, prefix, created_at) VALUES (?,?,?,?,?) RETURNING id",
                (name.strip(), scope, _digest(secret), secret[:7], now),
            )
            key_id = rowid(cursor)
        return ApiKeyRecord(key_id, name.strip(), scope, secret[:7], now, None), secret

    def records(self) -> list[ApiKeyRecord]:
        rows = self._read("SELECT id, name, scope, prefix, created_at, revoked_at FROM api_keys ORDER BY id", ())
        return [ApiKeyRecord(*row) for row in rows]

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple[Any, ...]]:
        with self.store.reader() as conn:
            return conn.execute(sql, params).fetchall()

    def revoke(self, key_id: int) -> ApiKeyRecord:
        with self.store.write_lock() as conn:
            changed = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (utc_now(), key_id)
            ).rowcount
            row = conn.execute(
                "SELECT id, name, scope, prefix, created_at, revoked_at FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        if row is None:
            raise KeyNotFound(f"no API key with id {key_id}")
        if not changed:
            raise KeyRevoked(f"API key {key_id} was already revoked at {row[5]}")
        return ApiKeyRecord(*row)

    def scope_of(self, secret: str) -> str | None:
        """The scope of a live key, or None."""
        record = self.find(secret)
        return record.scope if record else None

    def find(self, secret: str) -> ApiKeyRecord | None:
        """The record of a live key, or None. The lookup is by hash; the final comparison is
        constant-time, so timing tells nothing about the key."""
        if not secret.startswith(PREFIX):
            return None
        digest = _digest(secret)
        rows = self._read(
            "SELECT key_hash, id, name, scope, prefix, created_at, revoked_at FROM api_keys "
            "WHERE key_hash = ? AND revoked_at IS NULL",
            (digest,),
        )
        if not rows or not hmac.compare_digest(str(rows[0][0]), digest):
            return None
        return ApiKeyRecord(*rows[0][1:])

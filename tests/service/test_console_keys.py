"""The System page's API keys against the session's real Serve application: a key made on the
page is shown once and works within its scope; revoked on the page, it stops working."""

from __future__ import annotations

from typing import Any

import httpx

from console.keys_view import CREATE, REVOKE, key_rows

from conftest import AUTH
from console_pages import page


def _keys_table(at: Any) -> Any:
    return next(d.value for d in at.dataframe if "starts with" in d.value.columns)


def test_make_use_and_revoke_a_key_on_the_page(console_env: httpx.Client):
    at = page("system")
    assert not at.exception, at.exception
    name_box = next(t for t in at.text_input if t.label == "Who or what uses it")
    name_box.input("console keys test camera")
    next(s for s in at.selectbox if s.label == "What it may do").set_value("identify")
    next(b for b in at.button if b.label == CREATE).click().run()
    assert not at.exception, at.exception
    secret = at.code[0].value
    made = next(
        k for k in console_env.get("/v1/keys", headers=AUTH).json()["keys"] if k["name"] == "console keys test camera"
    )
    assert secret.startswith(made["prefix"]) and made["scope"] == "identify"
    assert any("never shown again" in s.value for s in at.success)
    assert console_env.get("/v1/persons", headers={"X-API-Key": secret}).status_code == 403  # a live key, in scope
    table = _keys_table(at)
    assert "console keys test camera" in set(table["name"]) and secret not in table.to_string()

    next(b for b in at.button if b.label == "I have copied it").click().run()
    assert not at.code  # shown once: gone once copied
    next(s for s in at.selectbox if s.label == "Revoke a key").set_value(made["id"]).run()
    revoke = next(b for b in at.button if b.label == REVOKE)
    assert revoke.disabled  # not before the confirmation
    at.checkbox(key="key-revoke-sure").check().run()
    next(b for b in at.button if b.label == REVOKE).click().run()
    assert not at.exception, at.exception
    assert any(f"Revoked key {made['id']}" in s.value for s in at.success)
    assert console_env.get("/v1/persons", headers={"X-API-Key": secret}).status_code == 401
    row = next(
        r for r in key_rows(console_env.get("/v1/keys", headers=AUTH).json()["keys"]) if r["id"] == str(made["id"])
    )
    assert row["state"].startswith("revoked ")


def test_key_rows_by_hand():
    keys = [
        {"id": 1, "name": "old", "scope": "admin", "prefix": "ma_abcd", "created_at": "2026-11-01T08:00:00.000+00:00",
         "revoked_at": "2026-11-02T09:30:00.000+00:00"},
        {"id": 2, "name": "door", "scope": "identify", "prefix": "ma_efgh", "created_at": "2026-11-03T10:00:00.000+00:00",
         "revoked_at": None},
        {"id": 3, "name": "desk", "scope": "enroll", "prefix": "ma_ijkl", "created_at": "2026-11-04T11:00:00.000+00:00",
         "revoked_at": None},
    ]  # fmt: skip
    rows = key_rows(keys)
    assert [r["id"] for r in rows] == ["3", "2", "1"]  # live keys first, newest first
    assert rows[0] == {"id": "3", "name": "desk", "scope": "enroll", "starts with": "ma_ijkl...",
                       "made (UTC)": "2026-11-04 11:00:00", "state": "works"}  # fmt: skip
    assert rows[2]["state"] == "revoked 2026-11-02 09:30:00"

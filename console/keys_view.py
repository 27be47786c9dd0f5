"""The System page's API keys: who and what can reach the service (GET /v1/keys), a new key for
a camera or an app (its secret shown once), and revoking one (a lost tablet, a leaked key)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from console.client import ApiError
from console.config import api
from console.text import plain

SCOPES = {
    "identify": "identify: identify, verify and embed photos (a camera, a door)",
    "enroll": "enroll: enroll persons and read the gallery (a front desk)",
    "admin": "admin: everything, deletions and keys included",
}
CREATE = "Make the key"
REVOKE = "Revoke it"


def key_rows(keys: list[dict[str, Any]]) -> list[dict[str, str]]:
    """GET /v1/keys as table rows, live keys first (the newest first within each)."""
    ordered = sorted(keys, key=lambda k: (k["revoked_at"] is not None, -k["id"]))
    return [
        {
            "id": str(k["id"]),
            "name": k["name"],
            "scope": k["scope"],
            "starts with": f"{k['prefix']}...",
            "made (UTC)": k["created_at"][:19].replace("T", " "),
            "state": "works" if k["revoked_at"] is None else f"revoked {k['revoked_at'][:19].replace('T', ' ')}",
        }
        for k in ordered
    ]


def _made_key() -> None:
    """The key just made: shown until the admin says it is copied (it cannot be shown again)."""
    made = st.session_state.get("made_key")
    if made is None:
        return
    st.success(
        f"Key {made['key']['id']} for {plain(made['key']['name'])} ({made['key']['scope']}). Copy it now: it is never shown again."
    )
    st.code(made["secret"], language=None)
    if st.button("I have copied it", key="key-copied"):
        del st.session_state["made_key"]
        st.rerun()


def keys_section() -> None:
    st.subheader("API keys")
    st.caption(
        "who and what can call the service; each key is stored as a hash, and its actions are in the access log "
        "by its name. The console's own key is the service key (not listed)."
    )
    if notice := st.session_state.pop("keys_notice", None):
        st.success(notice)
    _made_key()
    try:
        keys = api().keys()
    except ApiError as exc:
        st.caption(plain(exc.friendly()))
        return
    if keys:
        st.dataframe(key_rows(keys), hide_index=True, width="stretch")
    else:
        st.caption("No key made yet: only the service key works.")
    with st.form("new-key", clear_on_submit=True):
        name = st.text_input("Who or what uses it", max_chars=200, placeholder="front door camera")
        scope = st.selectbox("What it may do", list(SCOPES), format_func=SCOPES.__getitem__)
        if st.form_submit_button(CREATE):
            try:
                st.session_state["made_key"] = api().create_key(name, scope)
                st.rerun()
            except ApiError as exc:
                st.error(plain(exc.friendly()))
    live = {k["id"]: k for k in keys if k["revoked_at"] is None}
    if live:
        chosen = st.selectbox(
            "Revoke a key",
            list(live),
            format_func=lambda i: f"{i}: {live[i]['name']} ({live[i]['scope']}, {live[i]['prefix']}...)",
            key="key-to-revoke",
        )
        sure = st.checkbox("I want this key to stop working, for good", key="key-revoke-sure")
        if st.button(REVOKE, disabled=not sure):
            try:
                api().revoke_key(int(chosen))
                st.session_state["keys_notice"] = f"Revoked key {chosen} ({plain(live[chosen]['name'])})."
                st.rerun()
            except ApiError as exc:
                st.error(plain(exc.friendly()))

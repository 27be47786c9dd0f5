"""The System page's access log: who did what (over HTTP and on the command line), newest first
(GET /v1/access-log)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from console.client import ApiError
from console.config import api
from console.text import plain

EVERY_ACTION = "every action"
SHOWN = 200  # entries on the page


def access_rows(entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    """GET /v1/access-log's entries as table rows."""
    return [
        {
            "when (UTC)": e["at"][:19].replace("T", " "),
            "by": e["key_name"] if e["key_id"] is None else f"{e['key_name']} (key {e['key_id']})",
            "action": e["action"],
            "person": "" if e["person_id"] is None else f"{e['name']} ({e['person_id']})",
            "detail": e["detail"],
        }
        for e in entries
    ]


def access_section() -> None:
    st.subheader("Access log")
    st.caption(
        "who did what, over HTTP (by key) and with manyangles commands (by the account that ran them): "
        "enrollments, identifications (one entry per person identified), changes, deletions, exports, backups, "
        "key and model changes; an erased person's id goes from every entry"
    )
    actions = st.session_state.get("access_actions", [])  # from the API's first answer
    action = st.selectbox("Action", [EVERY_ACTION, *actions], key="access-action")
    try:
        page = api().access_log(limit=SHOWN, action=None if action == EVERY_ACTION else action)
    except ApiError as exc:
        st.caption(plain(exc.friendly()))
        return
    if page["actions"] != actions:
        st.session_state["access_actions"] = page["actions"]
        st.rerun()
    if not page["entries"]:
        st.caption("Nothing logged yet." if action == EVERY_ACTION else f"No {action} logged.")
        return
    if page["total"] > len(page["entries"]):
        st.caption(
            f"the newest {len(page['entries']):,} of {page['total']:,} (all: GET /v1/access-log, `manyangles access-log`)"
        )
    st.dataframe(access_rows(page["entries"]), hide_index=True, use_container_width=True)

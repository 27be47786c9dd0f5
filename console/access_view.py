"""The System page's access log: who did what (over HTTP and on the command line), newest first
(GET /v1/access-log)."""

from __future__ import annotations

from datetime import date, timedelta
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


def _day(chosen: object) -> date | None:
    """A single-date input's value (None until a day is picked)."""
    return chosen if isinstance(chosen, date) else None


def access_section() -> None:
    st.subheader("Access log")
    st.caption(
        "who did what, over HTTP (by key) and with manyangles commands (by the account that ran them): "
        "enrollments, identifications (one entry per person identified), changes, deletions, exports, backups, "
        "key and model changes, and who opened a person's record or saw their images (one entry per key and person per 15 minutes); "
        "an erased person's id goes from every entry"
    )
    actions = st.session_state.get("access_actions", [])  # from the API's first answer
    chosen, first, last = st.columns([2, 1, 1])
    action = chosen.selectbox("Action", [EVERY_ACTION, *actions], key="access-action")
    since = _day(first.date_input("From (UTC)", value=None, key="access-since"))
    until = _day(last.date_input("To (UTC, that day included)", value=None, key="access-until"))
    try:
        page = api().access_log(
            limit=SHOWN,
            action=None if action == EVERY_ACTION else action,
            since=since,
            until=None if until is None else until + timedelta(days=1),
        )
    except ApiError as exc:
        st.caption(plain(exc.friendly()))
        return
    if page["actions"] != actions:
        st.session_state["access_actions"] = page["actions"]
        st.rerun()
    if not page["entries"]:
        dated = " in those dates" if since is not None or until is not None else ""
        what = "entry" if action == EVERY_ACTION else action
        st.caption(f"No {what} logged{dated}." if dated or action != EVERY_ACTION else "Nothing logged yet.")
        return
    if page["total"] > len(page["entries"]):
        st.caption(
            f"the newest {len(page['entries']):,} of {page['total']:,} (all: GET /v1/access-log, `manyangles access-log`)"
        )
    st.dataframe(access_rows(page["entries"]), hide_index=True, width="stretch")

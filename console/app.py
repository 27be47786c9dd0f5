"""ManyAngles admin console: `streamlit run console/app.py` (make run starts it).

Nothing shows before sign-in (console/config.py); then the pages the signed-in key may use: an
identify key sees Identify, an enroll key Enroll and the Gallery, an admin everything."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `console` importable when run as a script

from console import gallery_source
from console.client import ApiError
from console.config import SignedIn, api, load_config, on_loopback, sign_in, sign_out, signed_in
from console.text import plain

PAGES = Path(__file__).parent / "app_pages"
# each page and the grant it needs (the API's scopes: admin > enroll (+ read) | identify)
NEEDS: tuple[tuple[str, str, str], ...] = (
    ("enroll.py", "Enroll", "enroll"),
    ("gallery.py", "Gallery", "read"),
    ("identify.py", "Identify and verify", "identify"),
    ("latency.py", "Latency", "read"),
    ("system.py", "System", "read"),
)


def sign_in_page() -> None:
    st.title("Sign in")
    st.write("Sign in with your ManyAngles API key. It is kept in this browser tab only, until you sign out.")
    local = load_config()
    if not on_loopback():
        st.caption("This console is reachable from other machines: every visit signs in.")
    elif local.api_key:
        st.caption(
            "This console listens on this machine only: a tab opened anew signs the local admin in by itself "
            "(sign-out lasts for this tab)."
        )
        if st.button("Sign in as the local admin", help="this machine's service key (make run's)"):
            try:
                sign_in(local.api_key)
            except ApiError as exc:
                st.session_state["sign_in_error"] = exc.friendly()
            st.rerun()
    with st.form("sign-in"):
        key = st.text_input("API key", type="password", help="an admin, enroll or identify key (manyangles keys)")
        if st.form_submit_button("Sign in", type="primary"):
            try:
                sign_in(key)
            except ApiError as exc:
                st.session_state["sign_in_error"] = exc.message if exc.status == 401 else exc.friendly()
            else:
                st.session_state.pop("sign_in_error", None)
            st.rerun()
    if error := st.session_state.get("sign_in_error"):
        st.error(f"Not signed in: {plain(error)}")


@st.cache_data(ttl=5, show_spinner=False)
def _reachable(api_url: str, key: str) -> bool:
    """Whether the API answered lately (a failure is not cached: the next page asks again)."""
    api().health()
    return True


def api_banner(key: str) -> None:
    """The service's state as each page opens (the sign-in page too): a banner when it cannot be reached."""
    try:
        _reachable(load_config().api_url, key)
    except ApiError as exc:
        st.error(f"{plain(exc.friendly())}. The pages below show what they can; try again once it is back.")


def account(who: SignedIn) -> None:
    with st.sidebar:
        st.caption(f"Signed in as **{plain(who.name)}** ({who.scope} key {who.masked_key})")
        if st.button("Sign out"):
            sign_out()
            st.rerun()


st.set_page_config(page_title="ManyAngles", layout="wide")
who = signed_in()
if who is None:
    api_banner("")  # GET /v1/health takes no key
    st.navigation([st.Page(sign_in_page, title="Sign in", url_path="sign-in")]).run()
    st.stop()
assert who is not None
if "read" in who.grants:
    gallery_source.warm(gallery_source.where(), who.key)  # the Gallery's first read, in the background
account(who)
api_banner(who.key)
pages = [st.Page(PAGES / file, title=title) for file, title, need in NEEDS if need in who.grants]
if "read" in who.grants:  # opened from the Gallery's grid (and the duplicates finder), not from the menu
    pages.append(st.Page(PAGES / "person.py", title="Person", url_path="person", visibility="hidden"))
st.navigation(pages).run()

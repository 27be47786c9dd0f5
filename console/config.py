"""Where the API is, who is signed in (their API key, in this browser session only), and (when
local) the data dir for read-only analytics.

The console acts with the key of the person using it: a sign-in with an API key, checked against
the service (``GET /v1/health`` says a valid key's name, scope and grants), kept in Streamlit's
session state (one browser tab; never written anywhere), dropped on sign-out. A console listening on
loopback may sign the local admin in by itself with the key ``make run`` hands it
(``MANYANGLES_API_KEY``); a console listening on any other address always asks.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from console.client import ApiClient, ApiError

SIGNED_IN = "signed_in"  # session state: the SignedIn of this browser session
SIGNED_OUT = "signed_out"  # session state: signed out on purpose (no automatic sign-in again)


@dataclass(frozen=True)
class ConsoleConfig:
    api_url: str
    api_key: str  # the local admin's key (make run's); used only to sign in on loopback
    data_dir: Path | None  # the service's data dir when it is on this machine


@dataclass(frozen=True)
class SignedIn:
    """The key this browser session acts with, as the service described it."""

    key: str
    name: str
    scope: str
    grants: frozenset[str]  # admin, enroll, read, identify

    @property
    def masked_key(self) -> str:
        return (self.key[:4] + "..." + self.key[-2:]) if len(self.key) > 8 else "set"


def _secret(name: str) -> Any:
    try:
        return st.secrets.get(name)
    except Exception:  # noqa: BLE001 - no secrets file is the normal case
        return None


def load_config() -> ConsoleConfig:
    url = os.environ.get("MANYANGLES_API_URL") or _secret("api_url") or "http://127.0.0.1:8000"
    key = os.environ.get("MANYANGLES_API_KEY") or _secret("api_key") or ""
    data = os.environ.get("MANYANGLES_DATA_DIR") or _secret("data_dir")
    if not key and data and (Path(data) / "api_key").is_file():
        key = (Path(data) / "api_key").read_text().strip()
    data_dir = Path(data) if data and (Path(data) / "gallery.db").is_file() else None
    return ConsoleConfig(url, key, data_dir)


def on_loopback() -> bool:
    """Whether this console listens on loopback only (``--server.address 127.0.0.1``, as make
    run starts it); unset means every address."""
    address = str(st.get_option("server.address") or "")
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@st.cache_resource(max_entries=32)
def client(api_url: str, api_key: str) -> ApiClient:
    """One HTTP client per signed-in key (a bounded cache: keys that signed out fall out of it)."""
    return ApiClient(api_url, api_key)


def check_key(key: str) -> SignedIn:
    """The key as the service knows it; ``ApiError`` when the service refuses it or is down. A
    client of its own: a key typed wrong is not kept."""
    checking = ApiClient(load_config().api_url, key, timeout_s=10.0)
    try:
        answer = checking.health()
    finally:
        checking.close()
    known = answer.get("key")
    if not known:
        raise ApiError(401, "unauthorized", "this API key is not valid for this service")
    return SignedIn(key, str(known["name"]), str(known["scope"]), frozenset(known["grants"]))


def sign_in(key: str) -> SignedIn:
    who = check_key(key.strip())
    st.session_state[SIGNED_IN] = who
    st.session_state.pop(SIGNED_OUT, None)
    return who


def sign_out() -> None:
    st.session_state.pop(SIGNED_IN, None)
    st.session_state[SIGNED_OUT] = True


def signed_in() -> SignedIn | None:
    """Who this browser session acts as; on loopback, the local admin unless they signed out."""
    who: SignedIn | None = st.session_state.get(SIGNED_IN)
    if who is not None or st.session_state.get(SIGNED_OUT):
        return who
    config = load_config()
    if config.api_key and on_loopback():
        try:
            return sign_in(config.api_key)
        except ApiError:
            return None
    return None


def grants() -> frozenset[str]:
    """What the signed-in key may do (none when nobody is signed in)."""
    who = st.session_state.get(SIGNED_IN)
    return who.grants if who is not None else frozenset()


def api() -> ApiClient:
    """The API client of the signed-in key."""
    who = st.session_state.get(SIGNED_IN)
    return client(load_config().api_url, who.key if who is not None else "")


def current_key() -> str:
    who = st.session_state.get(SIGNED_IN)
    return who.key if who is not None else ""

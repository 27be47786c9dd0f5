"""Where the API is, the key, and (when local) the data dir for read-only analytics."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from console.client import ApiClient


@dataclass(frozen=True)
class ConsoleConfig:
    api_url: str
    api_key: str
    data_dir: Path | None  # the service's data dir when it is on this machine

    @property
    def masked_key(self) -> str:
        return (
            (self.api_key[:4] + "..." + self.api_key[-2:])
            if len(self.api_key) > 8
            else ("set" if self.api_key else "not set")
        )


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


@st.cache_resource
def client(api_url: str, api_key: str) -> ApiClient:
    return ApiClient(api_url, api_key)


def api() -> ApiClient:
    config = load_config()
    return client(config.api_url, config.api_key)

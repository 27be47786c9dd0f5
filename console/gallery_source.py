"""The console's one snapshot of the gallery per process, and its warm-up at start.

The Gallery page queries it; ``warm`` reads it on a background thread when the console starts, so
that the first visit does not wait for the first read of every table (seconds at a million
embeddings).
"""

from __future__ import annotations

import logging
import sqlite3
import threading

import duckdb
import streamlit as st

from console.analytics import RemoteTables, Snapshot, SnapshotCache
from console.client import ApiError
from console.config import api, current_key, load_config
from console.local_tables import LocalTables

log = logging.getLogger(__name__)


@st.cache_resource(max_entries=2)
def snapshots(where: str, api_key: str) -> SnapshotCache:
    """The gallery tables (no vectors) in memory, queried page by page and kept up to date from
    the change log: the local store's checked at every read (one SQLite lookup), a remote
    service's every 30 s (one request); only the persons that changed are read again."""
    config = load_config()
    if config.data_dir is not None:
        return SnapshotCache(LocalTables(config.data_dir), max_age_s=0.0)
    return SnapshotCache(RemoteTables(api()), max_age_s=30.0)


def where() -> str:
    config = load_config()
    return str(config.data_dir or config.api_url)


def current() -> SnapshotCache:
    return snapshots(where(), current_key())


def source() -> Snapshot:
    """The local store when the data dir is here, else the API's Parquet exports."""
    return current().get()


def _read(cache: SnapshotCache) -> None:
    try:
        cache.get()
    except (ApiError, OSError, sqlite3.Error, duckdb.Error) as exc:  # the Gallery page will say what is wrong
        log.info("gallery snapshot not warmed: %s", exc)


@st.cache_resource
def warm(where: str, api_key: str) -> threading.Thread:
    """Start the first read in the background, once per console process and gallery."""
    thread = threading.Thread(target=_read, args=(snapshots(where, api_key),), name="gallery-warm", daemon=True)
    thread.start()
    return thread

"""The background search for faces enrolled twice, as the API and the console report it."""

from __future__ import annotations

import httpx

from conftest import AUTH, dead_pid, off_process


def test_the_api_and_the_console_say_a_killed_search_failed(console_env: httpx.Client):
    """GET /v1/duplicates/audit and GET /v1/jobs/{id} reap a job whose process is gone, rather
    than show it running until the next search starts; the System page says so."""
    from console.text import plain

    from console_pages import page

    api = console_env
    script = """
import json, socket, sys
from core.store.gallery import GalleryStore
from core.store.sqlutil import utc_now
args = json.loads(sys.argv[1])
with GalleryStore(args["data_dir"]).write_lock() as conn:  # a search whose process was killed
    job = conn.execute(
        "INSERT INTO jobs(kind, model, state, total, done, skipped, pid, host, started_at, updated_at) "
        "VALUES ('duplicates', 'dlib-resnet-v1-flip', 'running', 10, 3, 0, ?, ?, ?, ?)",
        (args["pid"], socket.gethostname(), utc_now(), utc_now()),
    ).lastrowid
print(job)
"""
    job = off_process(script, data_dir=api.data_dir, pid=dead_pid())  # type: ignore[attr-defined]
    audit = api.get("/v1/duplicates/audit", headers=AUTH).json()
    assert audit["job"]["id"] == job and audit["job"]["state"] == "failed", audit["job"]
    assert api.get(f"/v1/jobs/{job}", headers=AUTH).json()["message"] == "interrupted (its process ended)"
    at = page("system")
    assert not at.exception and not at.error
    assert plain(f"background search {job} failed: interrupted (its process ended)") in [w.value for w in at.warning]

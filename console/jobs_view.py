"""The System page's batch jobs: re-embeddings (started with `manyangles reembed` or
`POST /v1/models/reembed`) and background searches for faces enrolled twice, newest first."""

from __future__ import annotations

from typing import Any

import streamlit as st

from console.client import ApiError
from console.config import api
from console.text import plain


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def job_rows(jobs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """A JobOut list as table rows: what each job is doing and how far it got."""
    rows = []
    for j in jobs:
        unit = "photos searched" if j["kind"] == "duplicates" else "images"
        counted = f"{j['done'] + j['skipped']:,} of {j['total']:,} {unit}" if j["total"] else ""
        rows.append(
            {
                "job": str(j["id"]),
                "kind": j["kind"],
                "model": j["model"],
                "state": j["state"],
                "progress": f"{counted} ({j['fraction']:.0%})" if counted else "",
                "left": _seconds(j["eta_s"]) if j["state"] == "running" else "",
                "message": j["message"] or "",
                "started": j["started_at"][:19].replace("T", " "),
            }
        )
    return rows


def jobs_section() -> None:
    st.subheader("Batch jobs")
    st.caption("re-embeddings and background searches for faces enrolled twice, newest first (times in UTC)")
    try:
        jobs = api().jobs()
    except ApiError as exc:
        st.caption(plain(exc.friendly()))
        return
    if not jobs:
        st.caption("No batch job has run on this gallery.")
        return
    st.dataframe(job_rows(jobs), hide_index=True, width="stretch")
    if any(j["state"] == "running" for j in jobs):
        st.button("Refresh the jobs")

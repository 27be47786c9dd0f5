"""The System page's search for faces enrolled twice: at once (up to the API's size limit) or
as a background job (any size), and the newest background search's pairs."""

from __future__ import annotations

from typing import Any

import streamlit as st

from console.client import ApiError
from console.config import api
from console.text import plain

SEARCH_NOW = "Search the gallery for faces enrolled twice"
SEARCH_IN_BACKGROUND = "Search in the background (any gallery size)"
MERGE_LINKS = 20  # pairs offered a merge button (the table lists them all)
FOUND_NOW = "duplicates_found_now"  # session state: the last search made at once


def pairs_table(found: dict[str, Any]) -> None:
    """A DuplicatesResponse's pairs, or the line saying there are none."""
    if not found["pairs"]:
        st.success(f"No two persons share a face at {found['match_mode']} >= {found['threshold']:.4f}.")
        return
    rows = [
        {"person": f"{p['name']} ({p['person_id']})", "and": f"{p['other']} ({p['other_id']})", "score": p["score"]}
        for p in found["pairs"]
    ]
    st.dataframe(rows, hide_index=True, width="stretch")
    st.caption("The same face twice? Open the pair and merge one into the other (their photos and views move).")
    for pair in found["pairs"][:MERGE_LINKS]:
        label = f"Merge {plain(pair['other'])} ({pair['other_id']}) into {plain(pair['name'])} ({pair['person_id']})…"
        if st.button(label, key=f"merge-{found.get('job_id', 'now')}-{pair['person_id']}-{pair['other_id']}"):
            st.switch_page(
                "app_pages/person.py", query_params={"id": str(pair["person_id"]), "merge": str(pair["other_id"])}
            )


def _search_now() -> None:
    """Search, and keep the answer for the page's next runs (its Merge buttons work on them)."""
    st.session_state.pop(FOUND_NOW, None)
    try:
        st.session_state[FOUND_NOW] = api().duplicates()
    except ApiError as exc:
        st.error(plain(exc.friendly()))
        if exc.code == "too_large_for_request":
            st.info(f"Use “{SEARCH_IN_BACKGROUND}”: it searches any gallery, in a process of its own.")


def _found_now() -> None:
    found = st.session_state.get(FOUND_NOW)
    if found is not None:
        st.caption(f"searched now: every original photo, at {found['match_mode']} >= {found['threshold']:.4f}")
        pairs_table(found)


def _start_job() -> None:
    try:
        job = api().start_duplicates_job()
    except ApiError as exc:
        st.error(plain(exc.friendly()))
    else:
        st.toast(f"background search {job['id']} started")


def _newest_audit() -> None:
    """The newest background search: its progress while it runs, how it failed, the pairs found."""
    try:
        audit = api().duplicates_audit()
    except ApiError as exc:
        st.caption(f"background searches: {plain(exc.friendly())}")
        return
    job, result = audit["job"], audit["result"]
    if job is None:
        st.caption("No background search has run yet.")
        return
    if job["state"] == "running":
        done, total = job["done"], job["total"]
        counted = f"{done:,} of {total:,} photos" if total else "counting the photos"
        st.progress(job["fraction"], text=f"background search {job['id']}: {counted} ({job['message'] or 'starting'})")
        st.button("Refresh")
    elif job["state"] == "failed":
        st.warning(plain(f"background search {job['id']} failed: {job['message']}"))
    if result is not None:
        st.caption(
            f"background search {result['job_id']}, finished {result['finished_at']}: {result['photos']:,} original "
            f"photos searched ({result['model']}); persons deleted since are left out"
        )
        if result["total_pairs"] > len(result["pairs"]):
            st.caption(
                f"the {len(result['pairs']):,} highest-scoring of {result['total_pairs']:,} pairs "
                "(all of them: GET /v1/duplicates/audit with offset, or `manyangles duplicates --json`)"
            )
        pairs_table(result)


def duplicates_section() -> None:
    st.subheader("Faces enrolled twice")
    st.caption(
        "pairs of persons one of whose photos is identified as the other: a face enrolled twice (with force, "
        "or imported without the face check), or twins; review each, then merge the two on the person's page (a button per pair below)"
    )
    now, background = st.columns(2)
    if now.button(SEARCH_NOW):
        _search_now()
    _found_now()
    if background.button(SEARCH_IN_BACKGROUND):
        _start_job()
    _newest_audit()

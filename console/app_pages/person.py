"""One person, opened from the Gallery (``?id=N``): their photo groups (each photo, then the views
made from it), add a photo, rename, merge another person into them (a face enrolled twice: the
duplicates finder links here with ``&merge=M``), delete, who did what to them, their embeddings in
2-D. Opening the page is what the access log records as viewing them."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from console import gallery_source
from console.access_view import access_rows
from console.analytics import names_of, persons_page, projection
from console.client import ApiError, Upload
from console.config import api, current_key, grants
from console.photo_groups import show_groups
from console.text import plain

HISTORY = 50  # the person's newest access-log entries
GALLERY = "app_pages/gallery.py"


def _expire() -> None:
    st.cache_data.clear()
    gallery_source.current().expire()


def _changed(notice: str) -> None:
    """The person changed: read them again, with ``notice``."""
    _expire()
    st.session_state["person_notice"] = notice
    st.rerun()


def _query_id(name: str) -> int | None:
    value = st.query_params.get(name)
    return int(value) if value is not None and str(value).isdigit() else None


def _back() -> None:
    if st.button("← Gallery"):
        st.switch_page(GALLERY)


def _add_photo(person_id: int, name: str) -> None:
    with st.expander("Add a photo of this person", key="open-add-photo"):
        extra = st.file_uploader("Another photo", type=["jpg", "jpeg", "png", "webp"], key=f"add-{person_id}")
        with_views = st.checkbox("Generate views of it too (the default set)", key=f"views-{person_id}")
        pending = st.session_state.get("add_refused")
        if st.button("Add photo"):
            if extra is None:
                st.error("Choose a photo first.")
                return
            upload = Upload(extra.name or "photo.jpg", extra.getvalue(), extra.type or "image/jpeg")
            _send_photo(person_id, upload, with_views, force=False)
        elif pending is not None and pending["person_id"] == person_id:
            who = pending["match"] or {}
            if pending["code"] == "not_this_person":
                st.warning(
                    f"This face does not look like {plain(name)}: it scores {who.get('score', 0):.3f} against "
                    f"them, and {who.get('threshold', 0):.3f} is needed. Nothing was stored. Add it anyway?"
                )
            else:
                st.warning(
                    f"This face is identified as {plain(who.get('name', 'someone else'))} (score "
                    f"{who.get('score', 0):.3f}), not as {plain(name)}. Nothing was stored. Add it anyway?"
                )
            yes, no = st.columns(2)
            if yes.button(f"Add it to {plain(name)} anyway"):
                _send_photo(person_id, pending["upload"], pending["views"], force=True)
            if no.button("Cancel", key="cancel-add"):
                st.session_state.pop("add_refused", None)
                st.rerun()


def _send_photo(person_id: int, upload: Upload, with_views: bool, force: bool) -> None:
    st.session_state.pop("add_refused", None)
    try:
        added = api().add_photo(person_id, upload, augment=with_views, force=force)
    except ApiError as exc:
        if exc.code in ("not_this_person", "matches_another_person") and not force:
            st.session_state["add_refused"] = {
                "person_id": person_id,
                "code": exc.code,
                "match": exc.match,
                "upload": upload,
                "views": with_views,
            }
            st.rerun()
        st.error(plain(exc.friendly()))
        if exc.code == "multiple_faces":
            st.caption("Crop the photo to their face and add it again.")
        return
    kept = sum(v["accepted"] for v in added["views"])
    _changed(f"Added a photo: {added['num_embeddings']} embedding(s), {kept} of {len(added['views'])} view(s) kept")


def _rename(person_id: int, name: str) -> None:
    with st.expander("Rename", key="open-rename"):
        new_name = st.text_input("New name", value=name, key=f"rename-{person_id}")
        if st.button("Rename") and new_name != name:
            try:
                api().rename(person_id, new_name)
            except ApiError as exc:
                st.error(plain(exc.friendly()))
            else:
                _changed(f"Renamed to {plain(new_name)}")


def _others(person_id: int, search: str) -> list[dict[str, Any]]:
    frame, _ = persons_page(gallery_source.source(), search, "name", 0, 50)
    return [r for r in frame.to_dict("records") if int(r["id"]) != person_id]


def _merge(person_id: int, name: str) -> None:
    wanted = _query_id("merge")
    with st.expander("Merge another person into this one", expanded=wanted is not None, key="open-merge"):
        st.caption(
            f"For a face enrolled twice: the other person's photos, views and history become {plain(name)}'s, "
            "and the other person is deleted. The Faces enrolled twice search (System page) links here."
        )
        search = st.text_input("Find the other person", key="merge-search", placeholder="any part of a name")
        ids, names = _merge_candidates(person_id, search, wanted)
        if not ids:
            st.caption("Nobody else matches.")
            return
        other = st.selectbox(
            "Person to merge in",
            ids,
            index=0,
            format_func=lambda i: f"{names.get(i, 'person')} ({i})",
            key="merge-other",
        )
        pair = (person_id, other)
        other_name = plain(names.get(other, f"person {other}"))
        refused: dict[str, Any] = st.session_state.get("merge_refused") or {}
        force = refused.get("pair") == pair  # refused for this very pair: the admin may merge anyway
        if force:
            who = refused.get("match") or {}
            st.warning(
                f"{other_name}'s photo does not look like {plain(name)}: it scores {who.get('score', 0):.3f}, and "
                f"{who.get('threshold', 0):.3f} is needed. Merge them all the same?"
            )
        if st.session_state.get("merge_asked") != pair:
            if st.button(f"Merge {other_name} into {plain(name)}…"):
                st.session_state["merge_asked"] = pair
                st.rerun()
            return
        _confirm_merge(person_id, name, other, other_name, force)


def _merge_candidates(person_id: int, search: str, wanted: int | None) -> tuple[list[int], dict[int, str]]:
    """The persons that may be merged into ``person_id`` (ids, and their names): those matching
    ``search``; with no search, the duplicates finder's pair (``wanted``) first."""
    others = _others(person_id, search)
    ids = [int(r["id"]) for r in others]
    names = {int(r["id"]): str(r["name"]) for r in others}
    if wanted is not None and wanted != person_id and not search:
        names |= names_of(gallery_source.source(), [wanted])
        ids = ([wanted] if wanted in names else []) + [i for i in ids if i != wanted]
    return ids, names


def _confirm_merge(person_id: int, name: str, other: int, other_name: str, force: bool) -> None:
    """The asked merge, once more in words, with Yes and Cancel; a refused merge (the photo does
    not verify as the person kept) comes back here with ``force``."""
    pair = (person_id, other)
    st.warning(
        f"{other_name} (person {other}) will be deleted and their photos, views and history become "
        f"{plain(name)}'s. This cannot be undone."
    )
    yes, no = st.columns(2)
    if yes.button("Yes, merge them" + (" anyway" if force else ""), type="primary"):
        st.session_state.pop("merge_asked", None)
        try:
            merged = api().merge(person_id, other, force=force)
        except ApiError as exc:
            if exc.code in ("not_this_person", "model_not_ready", "not_calibrated") and not force:
                st.session_state["merge_refused"] = {"pair": pair, "match": exc.match}
                st.session_state["merge_asked"] = pair
                st.rerun()
            st.error(plain(exc.friendly()))
        else:
            st.session_state.pop("merge_refused", None)
            st.query_params.pop("merge", None)
            _changed(
                f"Merged person {merged['merged']} into {plain(name)}: {merged['images']} image(s), "
                f"{merged['embeddings']} embedding(s) moved"
            )
    if no.button("Cancel", key="cancel-merge"):
        st.session_state.pop("merge_asked", None)
        st.session_state.pop("merge_refused", None)
        st.rerun()


def _delete(person_id: int, name: str) -> None:
    with st.expander("Delete this person", key="open-delete"):
        if st.checkbox(f"I want to delete {plain(name)} and every image and embedding of theirs"):
            if st.button("Delete", type="primary"):
                try:
                    gone = api().delete(person_id)
                except ApiError as exc:
                    st.error(plain(exc.friendly()))
                else:
                    _expire()
                    st.session_state["gallery_notice"] = (
                        f"Deleted {plain(name)}: {gone['images']} image(s), {gone['embeddings']} embedding(s)"
                    )
                    st.switch_page(GALLERY)


def _history(person_id: int) -> None:
    with st.expander("Who did what to this person (access log)", key="open-history"):
        try:
            history = api().access_log(limit=HISTORY, person_id=person_id)
        except ApiError as exc:
            st.caption(plain(exc.friendly()))
            return
        rows = [{k: v for k, v in row.items() if k != "person"} for row in access_rows(history["entries"])]
        if history["total"] > len(rows):
            st.caption(f"the newest {len(rows)} of {history['total']:,} (the System page has them all)")
        st.dataframe(rows, hide_index=True, width="stretch")


def projection_chart(points: pd.DataFrame) -> alt.Chart:
    """The PCA points: each original photo a larger circle and each generated view a small
    triangle, so a view that drifted from its person stands out."""
    shown = points.assign(image=["original" if s == "original" else "generated view" for s in points["source"]])
    kinds = ["original", "generated view"]
    return (
        alt.Chart(shown, title="Embeddings of this person in 2-D (PCA)")
        .mark_point(filled=True, opacity=0.8)
        .encode(
            x=alt.X("x:Q", title="PCA 1"),
            y=alt.Y("y:Q", title="PCA 2"),
            color=alt.Color("person:N", title="person"),
            shape=alt.Shape("image:N", title="image", scale=alt.Scale(domain=kinds, range=["circle", "triangle-up"])),
            size=alt.Size("image:N", title="image", scale=alt.Scale(domain=kinds, range=[200, 80])),
            tooltip=["person:N", "source:N", alt.Tooltip("x:Q", format=".3f"), alt.Tooltip("y:Q", format=".3f")],
        )
    )


def _projection(person_id: int) -> None:
    with st.expander("Embeddings in 2-D (PCA)", key="open-projection"):
        st.caption("Each photo a circle, each generated view a triangle: a view far from its photos drifted.")
        points = projection(gallery_source.source(), [person_id])
        st.session_state["projection"] = points
        if len(points):
            st.altair_chart(projection_chart(points), width="stretch")


person_id = _query_id("id")
if person_id is None:
    st.info("Open a person from the Gallery.")
    _back()
    st.stop()
assert person_id is not None
try:
    detail = api().person(person_id)  # the access log's "view": this person was opened
except ApiError as exc:
    st.error(plain(exc.friendly()) if exc.code != "person_not_found" else f"Person {person_id} is not enrolled.")
    _back()
    st.stop()
allowed = grants()
_back()
st.title(plain(detail["name"]))
notice_box = st.container()  # always there: the elements below keep their places (and expanders their state)
if notice := st.session_state.pop("person_notice", None):
    notice_box.success(notice)
photos = sum(i["source"] == "original" for i in detail["images"])
by_model = {m: sum(c.values()) for m, c in detail["embedding_counts"].items()}
st.caption(
    f"person {person_id} · enrolled {detail['created_at'][:10]} · {photos} photo(s), "
    f"{len(detail['images']) - photos} view(s) · " + ", ".join(f"{n} embedding(s) of {m}" for m, n in by_model.items())
)
st.session_state["person_counts"] = pd.DataFrame(detail["embedding_counts"]).fillna(0).astype(int)
show_groups(person_id, detail["images"], current_key(), "admin" in allowed, _changed)
if "enroll" in allowed:
    _add_photo(person_id, detail["name"])
if "admin" in allowed:
    _rename(person_id, detail["name"])
    _merge(person_id, detail["name"])
    _delete(person_id, detail["name"])
    _history(person_id)
_projection(person_id)

"""Who is enrolled, from which sources; a person's images (remove one, add a photo); rename,
delete; a 2-D projection."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from console import gallery_source
from console.access_view import access_rows
from console.analytics import SORTS, counts_by_source, persons_page, projection
from console.client import ApiError, Upload
from console.config import api, load_config
from console.text import plain

PAGE_SIZE = 25
GRID = 5  # images per row of a person's images: thumbnails, whatever their number
HISTORY = 50  # a person's newest access-log entries shown with them


@st.cache_data(ttl=5)
def _page(where: str, search: str, sort: str, page: int) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    snapshot = gallery_source.source()  # one freshness check for both queries
    persons, total = persons_page(snapshot, search, sort, page, PAGE_SIZE)
    counts = counts_by_source(snapshot, [int(i) for i in persons["id"]]) if len(persons) else pd.DataFrame()
    return persons, counts, total


@st.cache_data(ttl=5)  # as the page's tables: asked at most every 5 s, not on each rerun
def _active_model() -> str | None:
    active: str | None = api().models()["active"]
    return active


def projection_chart(points: pd.DataFrame) -> alt.Chart:
    """The PCA points: a colour per person, each original photo a larger circle and each
    generated view a small triangle, so a view that drifted from its person stands out."""
    shown = points.assign(image=["original" if s == "original" else "generated view" for s in points["source"]])
    return (
        alt.Chart(shown)
        .mark_point(filled=True, opacity=0.8)
        .encode(
            x=alt.X("x:Q", title="PCA 1"),
            y=alt.Y("y:Q", title="PCA 2"),
            color=alt.Color("person:N", title="person"),
            shape=alt.Shape(
                "image:N",
                title="image",
                scale=alt.Scale(domain=["original", "generated view"], range=["circle", "triangle-up"]),
            ),
            size=alt.Size(  # the same field and title as the shape: one legend for both
                "image:N", title="image", scale=alt.Scale(domain=["original", "generated view"], range=[200, 80])
            ),
            tooltip=["person:N", "source:N", alt.Tooltip("x:Q", format=".3f"), alt.Tooltip("y:Q", format=".3f")],
        )
    )


def one_model(counts: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
    """With vectors of several models stored (a re-embedding under way, or a retired model not
    yet removed), the counts of the active model only, and a line saying so; else as they are."""
    models = sorted(set(counts["model"]))
    if len(models) < 2:
        return counts, None
    try:
        active = _active_model()
    except ApiError:
        active = None
    if active not in models:
        return counts, f"vectors of {len(models)} models are stored ({', '.join(models)}): each is counted"
    line = (
        f"vectors of {len(models)} models are stored ({', '.join(models)}): the source columns count those of "
        f"{active}, the active model identification uses; the embeddings column counts every model's (remove a "
        "retired model's on the System page)"
    )
    return counts[counts["model"] == active], line


def photo_first(source: str) -> tuple[bool, str]:
    """Sort key of source tags: the photo's (``original``) before its views'."""
    return source != "original", source


def _expire() -> None:
    """The gallery changed: read it again."""
    st.cache_data.clear()
    gallery_source.current().expire()


def _changed(notice: str) -> None:
    """The open person changed: read the gallery again and show them anew, with ``notice``."""
    _expire()
    st.session_state["gallery_notice"] = notice
    st.rerun()


st.title("Gallery")
config = load_config()
where = gallery_source.where()
st.caption(
    f"reading {'the local store ' + where if config.data_dir else 'Parquet snapshots from ' + where} with DuckDB"
)
if st.button("Refresh", help="re-read the gallery now (a remote snapshot is checked for changes every 30 s)"):
    _expire()
search = st.text_input("Search by name")
sort = st.selectbox("Sort", list(SORTS))
page = int(st.number_input("Page", min_value=1, value=1, step=1)) - 1
try:
    persons, counts, total = _page(where, search, sort, page)
except ApiError as exc:
    st.error(plain(exc.friendly()))
    st.stop()
if not counts.empty:  # one column per source tag: original, augmented_left, ...
    counts, models_line = one_model(counts)
    if models_line:
        st.caption(models_line)
    wide = counts.pivot_table(index="person_id", columns="source", values="embeddings", aggfunc="sum", fill_value=0)
    wide = wide[sorted(wide.columns, key=photo_first)]
    persons = persons.merge(wide, left_on="id", right_index=True, how="left")
st.caption(f"{total} person(s); page {page + 1} of {max(1, -(-total // PAGE_SIZE))}")
shown = persons.assign(created_at=persons["created_at"].astype(str).str[:19].str.replace("T", " "))
st.dataframe(shown.rename(columns={"created_at": "enrolled (UTC)"}), hide_index=True, use_container_width=True)
st.session_state["gallery_rows"] = persons.to_dict("records")

if len(persons):
    records = persons.to_dict("records")
    chosen = st.selectbox("Open a person", [f"{r['id']}: {r['name']}" for r in records])
    person_id = int(chosen.split(":", 1)[0])
    try:
        detail = api().person(person_id)
    except ApiError as exc:
        st.error(plain(exc.friendly()))
        st.stop()
    st.subheader(plain(detail["name"]))
    by_source = pd.DataFrame(detail["embedding_counts"]).fillna(0).astype(int).rename_axis("source")
    if notice := st.session_state.pop("gallery_notice", None):
        st.success(notice)
    st.dataframe(
        by_source.loc[sorted(by_source.index, key=photo_first)],
        use_container_width=True,
    )
    editing = st.toggle("Remove images", help="a Remove button under each image; the person's last photo stays")
    images = detail["images"]  # in the order stored: each photo, then its views
    for row in range(0, len(images), GRID):
        for column, image in zip(st.columns(GRID), images[row : row + GRID]):
            with column:
                st.image(api().image(image["url"]), use_container_width=True)
                st.caption(f"**{image['source']}**  \n{plain(image['display_name'])}")
                if editing and st.button("Remove", key=f"remove-{image['id']}"):
                    try:
                        gone = api().delete_image(person_id, image["id"])
                        _changed(f"Removed {plain(image['display_name'])} and {gone['embeddings']} embedding(s)")
                    except ApiError as exc:
                        st.error(plain(exc.friendly()))
    with st.expander("Add a photo of this person"):
        extra = st.file_uploader("Another photo", type=["jpg", "jpeg", "png", "webp"], key=f"add-{person_id}")
        with_views = st.checkbox("Generate views of it too (the generator's default set)", key=f"views-{person_id}")
        force = st.checkbox("Add it even if it is identified as someone else", key=f"force-{person_id}")
        if st.button("Add photo"):
            if extra is None:
                st.error("Choose a photo.")
            else:
                upload = Upload(extra.name or "photo.jpg", extra.getvalue(), extra.type or "image/jpeg")
                try:
                    added = api().add_photo(person_id, upload, augment=with_views, force=force)
                    accepted = sum(v["accepted"] for v in added["views"])
                    _changed(
                        f"Added a photo of {plain(added['name'])}: {added['num_embeddings']} embedding(s), "
                        f"{accepted} of {len(added['views'])} view(s) kept"
                    )
                except ApiError as exc:
                    st.error(plain(exc.friendly()))
                    if exc.code == "matches_another_person":
                        st.caption("If it is them, tick 'Add it even if it is identified as someone else'.")
                    elif exc.code == "multiple_faces":
                        st.caption("Crop the photo to their face and add it again.")
    new_name = st.text_input("New name", value=detail["name"], key=f"rename-{person_id}")
    if st.button("Rename") and new_name != detail["name"]:
        try:
            api().rename(person_id, new_name)
            _expire()
            st.success(f"Renamed to {plain(new_name)}")
        except ApiError as exc:
            st.error(plain(exc.friendly()))
    if st.checkbox(f"I want to delete {plain(detail['name'])} and every image and embedding of theirs"):
        if st.button("Delete", type="primary"):
            try:
                gone = api().delete(person_id)
                _expire()
                st.success(
                    f"Deleted: {gone['images']} image(s), {gone['embeddings']} embedding(s), {gone['files']} file(s)"
                )
            except ApiError as exc:
                st.error(plain(exc.friendly()))
    with st.expander("Who did what to this person (access log)"):
        try:
            history = api().access_log(limit=HISTORY, person_id=person_id)
        except ApiError as exc:  # a key that is not an admin's cannot read the log
            st.caption(plain(exc.friendly()))
        else:
            rows = [{k: v for k, v in row.items() if k != "person"} for row in access_rows(history["entries"])]
            if history["total"] > len(rows):
                st.caption(f"the newest {len(rows)} of {history['total']:,} (the System page has them all)")
            st.dataframe(rows, hide_index=True, use_container_width=True)

    st.subheader("Embeddings in 2-D (PCA)")
    picked = st.multiselect("Persons", [f"{r['id']}: {r['name']}" for r in records], default=[chosen])
    if picked:
        points = projection(gallery_source.source(), [int(p.split(":", 1)[0]) for p in picked])
        st.session_state["projection"] = points
        st.altair_chart(projection_chart(points), use_container_width=True)
        st.dataframe(points, hide_index=True)

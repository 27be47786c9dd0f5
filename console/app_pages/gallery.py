"""Who is enrolled, from which sources; a person's images; rename and delete."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from console.analytics import SORTS, counts_by_source, persons_page
from console.client import ApiError
from console.config import api, load_config

PAGE_SIZE = 25


@st.cache_data(ttl=5)
def _page(data_dir: str, search: str, sort: str, page: int) -> tuple[pd.DataFrame, int]:
    from pathlib import Path

    return persons_page(Path(data_dir), search, sort, page, PAGE_SIZE)


@st.cache_data(ttl=5)
def _counts(data_dir: str, ids: tuple[int, ...]) -> pd.DataFrame:
    from pathlib import Path

    return counts_by_source(Path(data_dir), list(ids))


st.title("Gallery")
config = load_config()
search = st.text_input("Search by name")
sort = st.selectbox("Sort", list(SORTS))
page = int(st.number_input("Page", min_value=1, value=1, step=1)) - 1
try:
    if config.data_dir is not None:  # local store: DuckDB over SQLite, paged in SQL
        persons, total = _page(str(config.data_dir), search, sort, page)
        counts = _counts(str(config.data_dir), tuple(int(i) for i in persons["id"]))
        if not counts.empty:
            wide = counts.pivot_table(
                index="person_id", columns="source", values="embeddings", aggfunc="sum", fill_value=0
            )
            persons = persons.merge(wide, left_on="id", right_index=True, how="left")
    else:  # a remote service: the API's list
        rows = [p for p in api().persons() if search.lower() in p["name"].lower()]
        total = len(rows)
        persons = pd.DataFrame(rows[page * PAGE_SIZE : (page + 1) * PAGE_SIZE])
except ApiError as exc:
    st.error(exc.friendly())
    st.stop()
st.caption(f"{total} person(s); page {page + 1} of {max(1, -(-total // PAGE_SIZE))}")
st.dataframe(persons, hide_index=True, use_container_width=True)
st.session_state["gallery_rows"] = persons.to_dict("records")

if len(persons):
    chosen = st.selectbox("Open a person", [f"{r['id']}: {r['name']}" for r in persons.to_dict("records")])
    person_id = int(chosen.split(":", 1)[0])
    detail = api().person(person_id)
    st.subheader(detail["name"])
    st.dataframe(
        pd.DataFrame(detail["embedding_counts"]).fillna(0).astype(int).rename_axis("source"),
        use_container_width=True,
    )
    by_source: dict[str, list[dict]] = {}
    for image in detail["images"]:
        by_source.setdefault(image["source"], []).append(image)
    for column, (source, images) in zip(st.columns(max(1, len(by_source))), by_source.items()):
        with column:
            st.caption(source)
            for image in images:
                st.image(api().image(image["url"]), use_container_width=True)
    if st.checkbox(f"I want to delete {detail['name']} and every image and embedding of theirs"):
        if st.button("Delete", type="primary"):
            gone = api().delete(person_id)
            st.cache_data.clear()
            st.success(
                f"Deleted: {gone['images']} image(s), {gone['embeddings']} embedding(s), {gone['files']} file(s)"
            )

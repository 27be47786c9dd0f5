"""Who is enrolled: a grid of faces (each person's first photo as the cover, the name under it),
searched by name, a page at a time; a click opens the person's page (console/app_pages/person.py).

Covers are thumbnails (``?thumbnail=``): the access log records one ``browse`` entry for them and
names nobody; a person is logged as viewed when their page is opened."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import streamlit as st

from console import gallery_source
from console.analytics import SORTS, persons_page
from console.client import ApiError
from console.config import api, current_key, load_config
from console.text import plain

COLUMNS = 5
PAGE_SIZE = 4 * COLUMNS
COVER_PX = 192
PERSON_PAGE = "app_pages/person.py"


@st.cache_data(ttl=5)
def _page(where: str, search: str, sort: str, page: int) -> tuple[pd.DataFrame, int]:
    return persons_page(gallery_source.source(), search, sort, page, PAGE_SIZE)


@st.cache_data(ttl=300, show_spinner=False)
def _covers(key: str, covers: tuple[tuple[int, int], ...]) -> dict[int, bytes | None]:
    """The cover thumbnails of one page of persons, fetched side by side (cached per key: each key's
    browsing is its own in the access log)."""

    client = api()  # here: the threads below have no Streamlit session to find the signed-in key in

    def one(pair: tuple[int, int]) -> bytes | None:
        try:
            return client.thumbnail(pair[0], pair[1], COVER_PX)
        except ApiError:  # deleted meanwhile: no cover
            return None

    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(zip((p for p, _ in covers), pool.map(one, covers)))


def _reset_page() -> None:
    st.session_state["gallery_page"] = 0


def _expire() -> None:
    st.cache_data.clear()
    gallery_source.current().expire()


st.title("Gallery")
config = load_config()
where = gallery_source.where()
notice_box = st.container()  # always there: the elements below keep their places
if notice := st.session_state.pop("gallery_notice", None):
    notice_box.success(notice)
search_column, sort_column, refresh_column = st.columns([3, 1, 1], vertical_alignment="bottom")
search = search_column.text_input("Search by name", on_change=_reset_page, placeholder="any part of a name")
sort = sort_column.selectbox("Sort", list(SORTS), on_change=_reset_page)
if refresh_column.button("Refresh", help="read the gallery again now (a remote one is re-checked every 30 s)"):
    _expire()
try:
    persons, total = _page(where, search, sort, int(st.session_state.get("gallery_page", 0)))
except ApiError as exc:
    st.error(plain(exc.friendly()))
    st.stop()
pages = max(1, -(-total // PAGE_SIZE))
page = min(int(st.session_state.get("gallery_page", 0)), pages - 1)
if page != st.session_state.get("gallery_page", 0):  # the gallery shrank under this page: its last page
    st.session_state["gallery_page"] = page
    persons, total = _page(where, search, sort, page)
st.session_state["gallery_rows"] = persons.to_dict("records")

if total == 0:
    st.info("Nobody matches this search." if search.strip() else "Nobody is enrolled yet: enroll someone first.")
    st.stop()
records = persons.to_dict("records")
covers = _covers(current_key(), tuple((int(r["id"]), int(r["cover"])) for r in records if pd.notna(r["cover"])))
for row in range(0, len(records), COLUMNS):
    for column, person in zip(st.columns(COLUMNS), records[row : row + COLUMNS]):
        with column.container(border=True):
            cover = covers.get(int(person["id"]))
            if cover is not None:
                st.image(cover, width="stretch")
            else:
                st.caption("no photo")
            if st.button(plain(person["name"]), key=f"open-{person['id']}", width="stretch", help="open this person"):
                st.switch_page(PERSON_PAGE, query_params={"id": str(person["id"])})
            photos = int(person["photos"])
            views = int(person["images"]) - photos
            st.caption(f"{photos} photo{'s' * (photos != 1)} · {views} view{'s' * (views != 1)}")

previous, status, following = st.columns([1, 3, 1], vertical_alignment="center")
if previous.button("Previous", disabled=page == 0, width="stretch"):
    st.session_state["gallery_page"] = page - 1
    st.rerun()
status.markdown(
    f"<div style='text-align:center'>page {page + 1} of {pages} · {total:,} person(s)"
    f"{' matching' if search.strip() else ''}</div>",
    unsafe_allow_html=True,
)
if following.button("Next", disabled=page >= pages - 1, width="stretch"):
    st.session_state["gallery_page"] = page + 1
    st.rerun()
st.caption(
    f"reading {'the local store ' + where if config.data_dir else 'Parquet snapshots from ' + where} with DuckDB"
)

"""A person's images as an admin reads them: each uploaded photo followed by the views made from
it (``source_image_id``), and the views whose photo is gone; each group removable behind a
confirmation, each view alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from console.client import ApiError
from console.config import api
from console.text import plain

VIEWS_PER_ROW = 5
CONFIRM = "confirm_remove"  # session state: the photo whose removal waits for a yes


@dataclass(frozen=True)
class PhotoGroup:
    photo: dict[str, Any] | None  # None: views not linked to a photo (stored before views were)
    views: list[dict[str, Any]]


def photo_groups(images: list[dict[str, Any]]) -> list[PhotoGroup]:
    """Photos in the order stored, each with its views; unlinked views last."""
    photos = [i for i in images if i["source"] == "original"]
    views_of: dict[int | None, list[dict[str, Any]]] = {}
    for image in images:
        if image["source"] != "original":
            parent = image.get("source_image_id")
            views_of.setdefault(parent if parent in {p["id"] for p in photos} else None, []).append(image)
    groups = [PhotoGroup(p, views_of.get(p["id"], [])) for p in photos]
    if views_of.get(None):
        groups.append(PhotoGroup(None, views_of[None]))
    return groups


def view_name(source: str) -> str:
    """``augmented_left_2`` -> ``left (2)``: the view, without the storage prefix."""
    name = source.removeprefix("augmented_")
    stem, _, number = name.rpartition("_")
    return f"{stem} ({number})" if stem and number.isdigit() else name


@st.cache_data(ttl=300, show_spinner=False)
def _image(key: str, url: str) -> bytes:
    return api().image(url)


def show_groups(
    person_id: int, images: list[dict[str, Any]], key: str, can_remove: bool, changed: Callable[[str], None]
) -> None:
    """Every photo group of the person; ``changed`` is told what was removed."""
    groups = photo_groups(images)
    photos = sum(g.photo is not None for g in groups)
    for number, group in enumerate(groups, start=1):
        with st.container(border=True):
            if group.photo is None:
                st.markdown(f"**Views not linked to a photo** · {len(group.views)}")
                st.caption(
                    "made before views were linked to their photo (a photo removed before, or an import); "
                    "remove them one by one"
                )
            else:
                _photo_row(person_id, number, group, key, can_remove and photos > 1, can_remove, changed)
            _views(person_id, group.views, key, can_remove, changed)


def _photo_row(
    person_id: int,
    number: int,
    group: PhotoGroup,
    key: str,
    removable: bool,
    admin: bool,
    changed: Callable[[str], None],
) -> None:
    photo = group.photo
    assert photo is not None
    picture, about = st.columns([1, 3])
    picture.image(_image(key, photo["url"]), width="stretch")
    about.markdown(f"**Photo {number}** · {plain(photo['display_name'])} · {photo['width']}x{photo['height']}")
    about.caption(f"added {photo['created_at'][:19].replace('T', ' ')} UTC · {len(group.views)} view(s) made from it")
    if not admin:
        return
    if not removable:
        about.caption("The only photo: to remove it, delete the person.")
        return
    if st.session_state.get(CONFIRM) != photo["id"]:
        if about.button(f"Remove photo {number} and its {len(group.views)} view(s)", key=f"ask-{photo['id']}"):
            st.session_state[CONFIRM] = photo["id"]
            st.rerun()
        return
    about.warning(
        f"Remove photo {number} and the {len(group.views)} view(s) made from it, with all their embeddings? "
        "This cannot be undone."
    )
    yes, no = about.columns(2)
    if yes.button("Yes, remove them", type="primary", key=f"yes-{photo['id']}"):
        st.session_state.pop(CONFIRM, None)
        try:
            gone = api().delete_image(person_id, photo["id"])
        except ApiError as exc:
            about.error(plain(exc.friendly()))
        else:
            changed(f"Removed photo {number} and {gone['views']} view(s): {gone['embeddings']} embedding(s)")
    if no.button("Cancel", key=f"no-{photo['id']}"):
        st.session_state.pop(CONFIRM, None)
        st.rerun()


def _views(
    person_id: int, views: list[dict[str, Any]], key: str, can_remove: bool, changed: Callable[[str], None]
) -> None:
    for row in range(0, len(views), VIEWS_PER_ROW):
        for column, view in zip(st.columns(VIEWS_PER_ROW), views[row : row + VIEWS_PER_ROW]):
            with column:
                st.image(_image(key, view["url"]), width="stretch")
                st.caption(plain(view_name(view["source"])))
                if can_remove and st.button("Remove view", key=f"remove-{view['id']}"):
                    try:
                        gone = api().delete_image(person_id, view["id"])
                    except ApiError as exc:
                        st.error(plain(exc.friendly()))
                    else:
                        changed(f"Removed the {view_name(view['source'])} view ({gone['embeddings']} embedding(s))")

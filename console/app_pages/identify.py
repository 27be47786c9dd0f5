"""Who is in this photo? Every face boxed and numbered on the photo, drawn at a readable size,
with its name (or `unknown`) and its candidates, each with their cover photo when the key may
read the gallery; is a photo an enrolled person (a claimed identity); are two photos the same
person?

Each answer is kept in the session with the photo (or photos) it answers, so that another widget
on the page does not erase it; sending a new photo replaces it. A refusal is shown under the
button that asked, until an answer arrives."""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import streamlit as st

from console import gallery_source
from console.analytics import cover_images
from console.client import ApiError, Upload
from console.config import api, grants
from console.drawing import boxed
from console.text import plain

log = logging.getLogger(__name__)

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp"]
PROBE_PX = 640  # a smaller probe is enlarged to this width before its boxes and labels are drawn
THUMB_PX = 96  # a candidate's cover


def _digest(*photos: bytes) -> str:
    """Which photo(s) an answer belongs to."""
    return "-".join(hashlib.sha256(p).hexdigest() for p in photos)


def _upload(file: Any) -> Upload:
    return Upload(file.name, file.getvalue(), file.type or "image/jpeg")


def _threshold(verdict: dict[str, Any]) -> str:
    """A one-to-one verdict's threshold, and the false match rate it is set at."""
    fmr = verdict.get("target_fmr")
    return f"threshold {verdict['threshold']:.4f}" + ("" if fmr is None else f" (FMR {fmr:g})")


def _remember(name: str, answered: str, result: dict[str, Any] | None, error: str | None = None) -> None:
    """Keep an answer (``result``) or a refusal (``error``) for the photo(s) ``answered``: an
    answer replaces the one before and clears the refusal; a refusal leaves the last answer be."""
    if result is not None:
        st.session_state[f"{name}_result"] = result
        st.session_state[f"{name}_for"] = answered
        st.session_state.pop(f"{name}_error", None)
    else:
        st.session_state[f"{name}_error"] = (answered, error)


def _kept(name: str, answered: str) -> tuple[dict[str, Any] | None, str | None]:
    """The kept answer and refusal for the photo(s) ``answered`` (None: none, or of other photos)."""
    same = st.session_state.get(f"{name}_for") == answered
    result = st.session_state.get(f"{name}_result") if same else None
    error = st.session_state.get(f"{name}_error")
    return result, error[1] if error is not None and error[0] == answered else None


def _thumbnails(found: dict[str, Any]) -> dict[int, str]:
    """Each candidate's cover (their first photo) as a data URI, for a key that may read the
    gallery. Read as thumbnails (logged as browsing, naming no one), the covers found in the
    gallery snapshot, so that no person's record is opened."""
    if "read" not in grants():
        return {}
    ids = sorted({int(c["person_id"]) for face in found["faces"] for c in face["candidates"]})
    if not ids:
        return {}
    try:
        covers = cover_images(gallery_source.source(), ids)
    except Exception as exc:  # noqa: BLE001 - no snapshot here (a remote service, a key that may not export): names only
        log.info("no covers for the candidates: %s", exc)
        return {}
    shown: dict[int, str] = {}
    for person, image in covers.items():
        try:
            data = api().thumbnail(person, image, THUMB_PX)
        except ApiError:  # deleted meanwhile: no cover
            continue
        shown[person] = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    return shown


def _identify(probe: Any, top_k: int) -> None:
    """Send the probe; keep the answer, its covers and the gallery's size warning, or the refusal."""
    data = probe.getvalue()
    try:
        with st.spinner("Searching the gallery..."):
            found = api().identify(_upload(probe), top_k)
            found["covers"] = _thumbnails(found)
            try:  # a gallery past what its threshold holds names strangers more often: say so here too
                found["outgrown"] = api().thresholds()["warnings"]
            except ApiError:  # an identify-only key may not read the thresholds
                found["outgrown"] = []
    except ApiError as exc:
        _remember("identify", _digest(data), None, plain(exc.friendly()))
    else:
        _remember("identify", _digest(data), found)


def _candidates(face: dict[str, Any], threshold: float, covers: dict[int, str]) -> None:
    rows = []
    for c in face["candidates"]:
        row: dict[str, Any] = {"photo": covers.get(int(c["person_id"]))} if covers else {}
        rows.append(
            row
            | {
                "name": c["name"],
                "score": round(float(c["score"]), 4),
                "clears threshold": c["score"] >= threshold,
                "person id": c["person_id"],
            }
        )
    if not rows:
        st.caption("no one at or over the threshold")  # an identify-only key sees only those
        return
    config: dict[str, Any] = {
        "score": st.column_config.NumberColumn("score", format="%.4f", width="small"),
        "clears threshold": st.column_config.CheckboxColumn(
            "≥ threshold", width="small", help="at or over the threshold: would be named"
        ),
        "person id": st.column_config.NumberColumn("id", width="small", help="the person's id"),
    }
    if covers:
        config["photo"] = st.column_config.ImageColumn("photo", width="small")
    st.dataframe(rows, hide_index=True, column_config=config, row_height=56 if covers else None)


def _show_identified(data: bytes, found: dict[str, Any]) -> None:
    faces = found["faces"]
    colors = ["lime" if face["identity"] else "red" for face in faces]
    labels = [f"{i + 1}: {face['label']}" for i, face in enumerate(faces)]
    drawn = boxed(data, [f["bbox"] for f in faces], labels, colors, min_width=PROBE_PX)
    picture, answer = st.columns([5, 4], gap="medium")
    picture.image(drawn, width="stretch", caption="green: named; red: unknown (under the threshold)")
    with answer:
        if not faces:
            st.warning("No face found in the photo.")
        for warning in found.get("outgrown", []):
            st.warning(plain(warning))
        if faces:
            st.caption(
                f"a face is named when its best score is at least {found['threshold']:.4f} "
                f"(matching rule {found['match_mode']})"
            )
        for i, face in enumerate(faces):
            identity = face["identity"]
            said = f" (score {identity['score']:.4f})" if identity else ""
            st.markdown(f"**Face {i + 1}: {plain(face['label'])}**{said}")
            _candidates(face, found["threshold"], found.get("covers", {}))


st.title("Identify and verify")
st.subheader("Identify: who is in this photo?")
probe = st.file_uploader("Probe photo", type=IMAGE_TYPES, key="probe")
top_k = st.slider("Candidates per face", 1, 10, 5)
if probe is not None and st.button("Identify", type="primary"):
    _identify(probe, top_k)
if probe is not None:
    found, refused = _kept("identify", _digest(probe.getvalue()))
    if refused:
        st.error(refused)
    if found is not None:
        _show_identified(probe.getvalue(), found)

st.divider()
st.subheader("Verify: is this an enrolled person?")
st.caption(
    "the photo's largest face against everything stored of the person, scored as Identify ranks them, and decided "
    "at the service's one-to-one false match rate"
)
prefix = st.text_input("Their name starts with", key="claim-prefix")
try:
    matches = api().persons(limit=50, prefix=prefix or None)["persons"]
    chosen = st.selectbox(
        "Person",
        [(p["id"], p["name"]) for p in matches],
        format_func=lambda choice: f"{plain(choice[1])} ({choice[0]})",
        key="claim-person",
    )
    claimed_id = None if chosen is None else int(chosen[0])
except ApiError as exc:
    if exc.status != 403:  # the service is down, or refused the key: nothing to verify against
        st.error(plain(exc.friendly()))
        st.stop()
    st.caption("this key may not list persons: give the person's id")  # an identify-only key
    claimed_id = int(st.number_input("Person id", min_value=1, step=1, key="claim-id"))
claim = st.file_uploader("Photo", type=IMAGE_TYPES, key="claim-photo")
if claim is not None and claimed_id is not None:
    asked = f"{claimed_id}:{_digest(claim.getvalue())}"
    if st.button("Verify against them"):
        try:
            _remember("claim", asked, api().verify_person(claimed_id, _upload(claim)))
        except ApiError as exc:
            _remember("claim", asked, None, plain(exc.friendly()))
    claimed, refused = _kept("claim", asked)
    if refused:
        st.error(refused)
    if claimed is not None:
        who = plain(claimed["name"] or f"person {claimed['person_id']}")  # no name for a key that may not read
        text = f"Same person as {who}" if claimed["same_person"] else f"Not {who}"
        st.metric(text, f"{claimed['score']:.4f}", _threshold(claimed), delta_color="off")

st.divider()
st.subheader("Verify: same person?")
a = st.file_uploader("Photo A", type=IMAGE_TYPES, key="a")
b = st.file_uploader("Photo B", type=IMAGE_TYPES, key="b")
if a is not None and b is not None:
    asked = _digest(a.getvalue(), b.getvalue())
    if st.button("Verify"):
        try:
            _remember("pair", asked, api().verify(_upload(a), _upload(b)))
        except ApiError as exc:
            _remember("pair", asked, None, plain(exc.friendly()))
    verdict, refused = _kept("pair", asked)
    if refused:
        st.error(refused)
    if verdict is not None:
        text = "Same person" if verdict["same_person"] else "Different persons"
        st.metric(text, f"{verdict['score']:.4f}", _threshold(verdict), delta_color="off")

"""Enroll a person from one photo; generation progress streams live, then the preview grid.

When the photo shows several faces the API refuses with ``multiple_faces``; the page then draws
every face numbered on the photo and enrolls the one the admin picks (index 0 = largest).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, replace
from typing import Any

import streamlit as st
from PIL import Image, ImageDraw, ImageOps

from console.client import ApiError, Upload
from console.config import api

VIEWS = ["left", "right", "up", "down", "smiling", "serious"]


@dataclass(frozen=True)
class EnrollRequest:
    name: str
    photo: Upload
    augment: bool
    views: list[str]
    seed: int
    face: str = "single"


def _eta(request: EnrollRequest) -> str:
    """What will generate, and roughly how long, from recent per-view latencies."""
    total = len(request.views) if request.augment else 0
    if not total:
        return ""
    try:
        generator = api().health()["deployments"]["generator"]
        recent = [v["latency_s"] for run in api().generation_runs(limit=50) for v in run["views"]]
    except ApiError:
        return ""
    eta = f" with {generator.get('generator')} on {generator.get('device')}"
    if recent:
        eta += f", about {sorted(recent)[len(recent) // 2] * total:.1f} s for {total} view(s)"
    return eta


def _enroll(request: EnrollRequest) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Stream one enrollment into a status box; (result, error)."""
    result, error = None, None
    with st.status(f"Enrolling{_eta(request)}...", expanded=True) as status:
        bar = st.progress(0.0, text="Uploading")
        try:
            lines = api().enroll_stream(
                request.name, request.photo, request.augment, request.views, request.seed, request.face
            )
            for line in lines:
                if line["type"] == "progress":
                    if line["stage"] == "generated":
                        bar.progress(
                            line["index"] / max(line["total"], 1) * 0.8,
                            text=f"Generating synthetic angles ({line['index']}/{line['total']})...",
                        )
                    elif line["stage"] == "stored":
                        bar.progress(1.0, text="Stored")
                    st.write(line["message"])
                elif line["type"] == "result":
                    result = line
                else:
                    error = line["error"]
        except ApiError as exc:
            error = {"code": exc.code, "message": exc.friendly()}
        if result is not None:
            bar.progress(1.0, text="Done")
            status.update(label=f"Enrolled {result['name']} ({result['num_embeddings']} embeddings)", state="complete")
        else:
            status.update(label="Enrollment failed", state="error")
    return result, error


def _grid(photo: Upload, result: dict[str, Any]) -> None:
    """The original and every generated view, accepted or rejected, with its verdict."""
    tiles: list[tuple[str, bytes, dict[str, Any] | None]] = [("original", photo.data, None)]
    tiles += [(v["source"], base64.b64decode(v["preview_jpeg_base64"]), v) for v in result["views"]]
    for row in range(0, len(tiles), 4):
        for column, (source_tag, image, view) in zip(st.columns(4), tiles[row : row + 4]):
            with column:
                st.image(image, use_container_width=True)
                st.markdown(f"**{source_tag}**")
                if view is None:
                    st.caption("the uploaded photo")
                elif view["accepted"]:
                    st.caption(f":green[accepted] - similarity {view['similarity']:.3f}")
                else:
                    sim = "" if view["similarity"] is None else f" - similarity {view['similarity']:.3f}"
                    st.caption(f":red[rejected] ({view['reason']}){sim}")


def _numbered_faces(photo: Upload, faces: list[dict[str, Any]]) -> Image.Image:
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(photo.data))).convert("RGB")
    draw = ImageDraw.Draw(image)
    width = max(2, image.width // 200)
    for index, face in enumerate(faces):
        x1, y1, x2, y2 = face["bbox"]
        draw.rectangle((x1, y1, x2, y2), outline="yellow", width=width)
        draw.text((x1 + width + 2, y1 + width + 2), str(index), fill="yellow")
    return image


def _run(request: EnrollRequest) -> None:
    result, error = _enroll(request)
    if error is not None and error.get("code") == "multiple_faces":
        faces = error.get("faces")  # the boxes come with the refusal (an enroll-scoped key may not embed)
        if not faces:
            try:
                faces = api().faces(request.photo)
            except ApiError as exc:
                st.error(exc.friendly())
                return
        st.session_state["choose_face"] = (request, faces)
        st.rerun()
    if error is not None:
        st.error(error["message"] if error.get("code") == "api_down" else f"{error['message']} ({error['code']})")
        return
    assert result is not None
    st.session_state.pop("choose_face", None)
    st.session_state["last_enrollment"] = result
    st.success(f"Enrolled {result['name']} as person {result['person_id']} in {result['elapsed_s']:.1f} s")
    _grid(request.photo, result)


st.title("Enroll a person")
name = st.text_input("Name")
uploaded = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "webp"])
camera = st.camera_input("...or take a photo") if st.toggle("Use the camera") else None
augment = st.checkbox("Use AI augmentation (recommended)", value=True)
views = st.multiselect("Views to generate", VIEWS, default=VIEWS[:5], disabled=not augment)
custom = st.text_input("Custom view (optional, e.g. 'wearing glasses')", disabled=not augment)
with st.expander("Advanced"):
    seed = int(st.number_input("Seed", min_value=0, value=0, step=1))
    face = st.selectbox("Several faces in the photo", ["single", "largest", "0", "1", "2", "3"])

if st.button("Enroll", type="primary"):
    source = uploaded or camera
    if not name.strip() or source is None:
        st.error("Give a name and a photo.")
        st.stop()
    st.session_state.pop("choose_face", None)
    photo = Upload(source.name or "photo.jpg", source.getvalue(), source.type or "image/jpeg")
    wanted = views + ([custom.strip()] if custom.strip() else [])
    _run(EnrollRequest(name, photo, augment, wanted if augment else [], seed, face))
elif "choose_face" in st.session_state:
    pending, faces = st.session_state["choose_face"]
    st.warning(f"The photo shows {len(faces)} faces. Which one is {pending.name}?")
    st.image(_numbered_faces(pending.photo, faces))
    picked = st.radio("Face", list(range(len(faces))), format_func=lambda i: f"face {i}", horizontal=True)
    if st.button(f"Enroll face {picked}"):
        _run(replace(pending, face=str(picked)))

"""Enroll a person from one photo; generation progress streams live, then the preview grid.

When the photo shows several faces the API refuses with ``multiple_faces``; the page then draws
every face numbered on the photo and enrolls the one the admin picks (index 0 = largest). When the
name is already enrolled (``person_exists``) it offers to add the photo to that person instead,
and when such a photo is not that person (``not_this_person``: it does not verify as them;
``matches_another_person``: it is identified as someone else), asks before adding it anyway.
A face already enrolled under another name (``already_enrolled``): add the photo to that person,
or enroll the new name anyway.
"""

from __future__ import annotations

import base64
import unicodedata
from dataclasses import dataclass, replace
from typing import Any

import streamlit as st
from PIL import Image

from console.client import ApiError, Upload
from console.config import api, load_config
from console.drawing import boxed, upright
from console.estimates import describe_eta, enrollment_eta
from console.photo_groups import view_name
from console.text import plain

# Offered when the service cannot say what its generator draws (it decides in the end).
FALLBACK_VIEWS = ["left", "right", "up", "down", "smiling", "serious"]
GENERATORS = {  # what the augmentation option says it will use
    "sd15-img2img": "Stable Diffusion 1.5 (img2img)",
    "classic": "classic warps: no generative model configured",
}
HOW_TO_SD = (
    "To generate views with Stable Diffusion, give the service a local SD 1.5 folder: "
    "`MANYANGLES_SD_MODEL=/path/to/stable-diffusion-v1-5 make run` "
    "(docs/models.md, 'Synthetic views'); nothing is downloaded."
)


@dataclass(frozen=True)
class ViewChoice:
    """What the running generator draws: every name it knows, its default set, custom prompts or not."""

    known: list[str]
    defaults: list[str]
    custom: bool
    generator: str | None  # None: the service did not say (unreachable, or its generator is down)


@st.cache_data(ttl=60, show_spinner=False)
def _generator(api_url: str) -> dict[str, Any]:
    """The Generator's health (cached a minute per API; a failure is not cached)."""
    generator = api().health()["deployments"]["generator"]
    if generator.get("status") != "ok" or not generator.get("views"):
        raise ApiError(503, "generator_unavailable", generator.get("error") or "the generator is not ready")
    return generator


def _view_choice() -> ViewChoice:
    try:
        generator = _generator(load_config().api_url)
    except ApiError:
        return ViewChoice(FALLBACK_VIEWS, [], True, None)
    return ViewChoice(
        generator["views"], generator["default_views"], bool(generator["custom_views"]), generator["generator"]
    )


@dataclass(frozen=True)
class EnrollRequest:
    name: str
    photo: Upload
    augment: bool
    views: list[str]
    seed: int
    face: str = "single"
    into: int | None = None  # the photo is added to this enrolled person
    force: bool = False  # ...even if it is identified as someone else


def _eta(request: EnrollRequest) -> str:
    """Which generator on which device, and roughly how long, from recent enrollments."""
    try:
        generator = _generator(load_config().api_url)
        runs = api().enrollment_runs(limit=50)
    except ApiError:
        return ""
    views = (len(request.views) or len(generator["default_views"])) if request.augment else 0
    where = f" with {generator['generator']} on {generator['device']}" if views else ""
    return where + describe_eta(enrollment_eta(views, runs))


def _enroll(request: EnrollRequest) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Stream one enrollment into a status box; (result, error)."""
    result, error = None, None
    with st.status(f"Enrolling{_eta(request)}...", expanded=True) as status:
        bar = st.progress(0.0, text="Uploading")
        try:
            lines = api().enroll_stream(
                request.name,
                request.photo,
                request.augment,
                request.views,
                request.seed,
                request.face,
                request.into,
                request.force,
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
            done = "Enrolled" if request.into is None else "Added a photo of"
            status.update(
                label=f"{done} {plain(result['name'])} ({result['num_embeddings']} embeddings)", state="complete"
            )
        else:
            status.update(label="Enrollment failed", state="error")
    return result, error


def _grid(photo: Upload, result: dict[str, Any]) -> None:
    """The original and every generated view, accepted or rejected, with its verdict."""
    tiles: list[tuple[str, bytes | Image.Image, dict[str, Any] | None]] = [("original", upright(photo.data), None)]
    tiles += [(v["source"], base64.b64decode(v["preview_jpeg_base64"]), v) for v in result["views"]]
    for row in range(0, len(tiles), 4):
        for column, (source_tag, image, view) in zip(st.columns(4), tiles[row : row + 4]):
            with column:
                st.image(image, width="stretch")
                st.markdown(f"**{'uploaded photo' if view is None else plain(view_name(source_tag))}**")
                if view is None:
                    st.caption("as uploaded")
                elif view["accepted"]:
                    st.caption(f":green[accepted] - similarity {view['similarity']:.3f}")
                else:
                    sim = "" if view["similarity"] is None else f" - similarity {view['similarity']:.3f}"
                    st.caption(f":red[rejected] ({view['reason']}){sim}")


def _numbered_faces(photo: Upload, faces: list[dict[str, Any]]) -> Image.Image:
    return boxed(photo.data, [f["bbox"] for f in faces], [str(i) for i in range(len(faces))], ["yellow"] * len(faces))


def _person_named(name: str) -> int | None:
    """The id of the person enrolled under ``name`` (as the service stores names: NFC, trimmed)."""
    wanted = unicodedata.normalize("NFC", name).strip()
    try:
        page = api().persons(limit=10, prefix=wanted)
    except ApiError as exc:
        st.error(plain(exc.friendly()))
        return None
    return next((int(p["id"]) for p in page["persons"] if p["name"] == wanted), None)


def _run(request: EnrollRequest) -> None:
    result, error = _enroll(request)
    if error is not None and error.get("code") == "multiple_faces":
        faces = error.get("faces")  # the boxes come with the refusal (an enroll-scoped key may not embed)
        if not faces:
            try:
                faces = api().faces(request.photo)
            except ApiError as exc:
                st.error(plain(exc.friendly()))
                return
        st.session_state["choose_face"] = (request, faces)
        st.rerun()
    offers = {
        "person_exists": request.into is None,
        "matches_another_person": not request.force,
        "not_this_person": not request.force,
        "already_enrolled": not request.force,
    }
    if error is not None and offers.get(error.get("code", "")):
        st.session_state["offer"] = (request, error)  # add to the existing person / add anyway
        st.rerun()
    if error is not None:
        st.error(
            plain(error["message"] if error.get("code") == "api_down" else f"{error['message']} ({error['code']})")
        )
        return
    assert result is not None
    st.session_state.pop("choose_face", None)
    st.session_state.pop("offer", None)
    st.session_state["last_enrollment"] = result
    done = "Enrolled" if request.into is None else "Added a photo of"
    st.success(f"{done} {plain(result['name'])} as person {result['person_id']} in {result['elapsed_s']:.1f} s")
    _grid(request.photo, result)


def _ask() -> EnrollRequest | None:
    """The question a refused enrollment left (which face; add to the person; anyway?), and the
    request the admin's answer makes (None: not answered yet)."""
    if "choose_face" in st.session_state:
        pending, faces = st.session_state["choose_face"]
        st.warning(f"The photo shows {len(faces)} faces. Which one is {plain(pending.name)}?")
        st.image(_numbered_faces(pending.photo, faces))
        picked = st.radio("Face", list(range(len(faces))), format_func=lambda i: f"face {i}", horizontal=True)
        if st.button(f"Enroll face {picked}"):
            return replace(pending, face=str(picked))
    if "offer" in st.session_state:
        pending, refusal = st.session_state["offer"]
        if refusal["code"] == "person_exists":
            st.warning(f"{plain(pending.name)} is already enrolled. Add this photo (and its views) to them instead?")
            if st.button(f"Add the photo to {plain(pending.name)}"):
                person = _person_named(pending.name)
                if person is None:
                    st.session_state.pop("offer", None)
                    st.error(f"No person named {plain(pending.name)} any more.")
                else:
                    return replace(pending, into=person)
        elif refusal["code"] == "already_enrolled":
            who = refusal.get("match") or {}
            known = plain(who.get("name", "someone"))
            same = bool(who.get("same_photo"))
            found = f"This face is already enrolled as {known} (person {who.get('person_id')}, score {who.get('score', 0):.3f})"
            if same:
                st.warning(f"{found}, with this very photo. Is {plain(pending.name)} someone else?")
            else:
                st.warning(f"{found}. Add the photo to {known}, or is {plain(pending.name)} someone else?")
            add, anyway = st.columns(2)
            if not same and add.button(f"Add the photo to {known}") and who.get("person_id") is not None:
                return replace(pending, into=int(who["person_id"]))
            if anyway.button(f"Enroll {plain(pending.name)} as a new person"):
                return replace(pending, force=True)
        elif refusal["code"] == "not_this_person":
            who = refusal.get("match") or {}
            st.warning(
                f"This face does not look like {plain(pending.name)}: it scores {who.get('score', 0):.3f} against "
                f"them, and {who.get('threshold', 0):.3f} is needed to verify as them. Nothing was stored. Is it "
                f"{plain(pending.name)} all the same (a very different photo of them)?"
            )
            anyway, cancel = st.columns(2)
            if anyway.button(f"Add it to {plain(pending.name)} anyway"):
                return replace(pending, force=True)
            if cancel.button("Cancel"):
                st.session_state.pop("offer", None)
                st.rerun()
        else:
            who = refusal.get("match") or {}
            st.warning(
                f"This photo is identified as {plain(who.get('name', 'someone else'))} (score "
                f"{who.get('score', 0):.3f}), not as {plain(pending.name)}. Is it {plain(pending.name)} all the same?"
            )
            if st.button(f"Add it to {plain(pending.name)} anyway"):
                return replace(pending, force=True)
    return None


st.title("Enroll a person")
name = st.text_input("Name")
uploaded = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "webp"])
camera = st.camera_input("...or take a photo") if st.toggle("Use the camera") else None
choice = _view_choice()
using = GENERATORS.get(choice.generator or "", choice.generator or "the service's generator")
augment = st.checkbox(f"Generate extra views of the face with {using} (recommended)", value=True)
if choice.generator == "classic":
    st.caption(HOW_TO_SD)
views = st.multiselect(
    "Views to generate",
    choice.known,
    default=choice.defaults,
    disabled=not augment,
    help="Leave it empty for the service's default set.",
)
if choice.generator is None:
    st.caption("The service did not say which views its generator draws; it will refuse any it cannot.")
else:
    st.caption(f"Preselected: the {len(choice.defaults)} views chosen for this model; leave empty for the same.")
custom = st.text_input("Custom view (optional, e.g. 'wearing glasses')", disabled=not augment) if choice.custom else ""
with st.expander("Advanced"):
    seed = int(st.number_input("Seed", min_value=0, value=0, step=1))
    face = st.selectbox("Several faces in the photo", ["single", "largest", "0", "1", "2", "3"])

if st.button("Enroll", type="primary"):
    source = uploaded or camera
    if not name.strip() or source is None:
        st.error("Give a name and a photo.")
        st.stop()
    st.session_state.pop("choose_face", None)
    st.session_state.pop("offer", None)
    photo = Upload(source.name or "photo.jpg", source.getvalue(), source.type or "image/jpeg")
    wanted = views + ([custom.strip()] if custom.strip() else [])
    _run(EnrollRequest(name, photo, augment, wanted if augment else [], seed, face))
elif "choose_face" in st.session_state or "offer" in st.session_state:
    question = st.empty()
    with question.container():
        answer = _ask()
    if answer is not None:
        question.empty()  # answered: its buttons go before the enrollment draws its result
        _run(answer)

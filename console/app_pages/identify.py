"""Who is in this photo? Every face boxed with its label and candidates; is a photo an enrolled
person (a claimed identity); are two photos the same person?"""

from __future__ import annotations

from typing import Any

import streamlit as st

from console.client import ApiError, Upload
from console.config import api
from console.drawing import boxed
from console.text import plain


def _threshold(verdict: dict[str, Any]) -> str:
    """A one-to-one verdict's threshold, and the false match rate it is set at."""
    fmr = verdict.get("target_fmr")
    return f"threshold {verdict['threshold']:.4f}" + ("" if fmr is None else f" (FMR {fmr:g})")


st.title("Identify and verify")
probe = st.file_uploader("Probe photo", type=["jpg", "jpeg", "png", "webp"], key="probe")
top_k = st.slider("Candidates per face", 1, 10, 5)
if probe is not None and st.button("Identify", type="primary"):
    try:
        found = api().identify(Upload(probe.name, probe.getvalue(), probe.type or "image/jpeg"), top_k)
    except ApiError as exc:
        st.error(plain(exc.friendly()))
        st.stop()
    st.session_state["identify_result"] = found
    faces = found["faces"]
    colors = ["lime" if face["identity"] else "red" for face in faces]
    st.image(boxed(probe.getvalue(), [f["bbox"] for f in faces], [f["label"] for f in faces], colors))
    if not found["faces"]:
        st.warning("No face found in the photo.")
    try:  # a gallery past what its threshold holds names strangers more often: say so here too
        outgrown = api().thresholds()["warnings"]
    except ApiError:  # an identify-only key may not read the thresholds
        outgrown = []
    for warning in outgrown:
        st.warning(plain(warning))
    for i, face in enumerate(found["faces"]):
        st.markdown(
            f"**Face {i}: {plain(face['label'])}** (threshold {found['threshold']:.4f}, rule {found['match_mode']})"
        )
        rows = [{**c, "clears threshold": c["score"] >= found["threshold"]} for c in face["candidates"]]
        st.dataframe(rows, hide_index=True)

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
claim = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "webp"], key="claim-photo")
if claim is not None and claimed_id is not None and st.button("Verify against them"):
    try:
        claimed = api().verify_person(claimed_id, Upload(claim.name, claim.getvalue(), claim.type or "image/jpeg"))
    except ApiError as exc:
        st.error(plain(exc.friendly()))
        st.stop()
    st.session_state["claim_result"] = claimed
    who = plain(claimed["name"] or f"person {claimed['person_id']}")  # no name for a key that may not read
    text = f"Same person as {who}" if claimed["same_person"] else f"Not {who}"
    st.metric(text, f"{claimed['score']:.4f}", _threshold(claimed), delta_color="off")

st.divider()
st.subheader("Verify: same person?")
a = st.file_uploader("Photo A", type=["jpg", "jpeg", "png", "webp"], key="a")
b = st.file_uploader("Photo B", type=["jpg", "jpeg", "png", "webp"], key="b")
if a is not None and b is not None and st.button("Verify"):
    try:
        verdict = api().verify(Upload(a.name, a.getvalue()), Upload(b.name, b.getvalue()))
    except ApiError as exc:
        st.error(plain(exc.friendly()))
        st.stop()
    text = "Same person" if verdict["same_person"] else "Different persons"
    st.metric(text, f"{verdict['score']:.4f}", _threshold(verdict), delta_color="off")
